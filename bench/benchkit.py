"""What the PostgreSQL benchmarks share: their server, a schema of their own, and peak memory."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def bench_url() -> str:
    """The server: ``BILLING_BENCH_POSTGRES_URL``, by default the local trust-auth one."""
    return os.environ.get("BILLING_BENCH_POSTGRES_URL", DEFAULT_URL)


def schema_url(url: str, schema: str) -> str:
    """``url`` with ``schema`` as the search path of every connection."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def peak_mib() -> float:
    """This process's own peak RSS (``VmHWM``, Linux).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: in a child started by ``subprocess`` it also
    counts the parent's peak before the exec (the benchmarks' seeding and billing).
    """
    status = Path("/proc/self/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024
