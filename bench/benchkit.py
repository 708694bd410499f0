"""What the PostgreSQL benchmarks share: their server, a schema of their own, and peak memory."""

from __future__ import annotations

import os
import threading
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


def _rss_kib(pid: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it ended meanwhile
        return 0
    rss = (line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(next(rss, 0))


def _workers_of(pid: int) -> list[str]:
    """This process's multiprocessing workers (the billing batch workers, spawned): its
    children whose command line is Python's ``multiprocessing`` entry point. Not the Prefect
    temporary server, another child, which the run does not own in production."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing" in cmdline:
            found.append(child)
    return found


class TreePeak:
    """Peak of this process's RSS plus its worker processes' RSS, summed at each sample
    (every ``every`` seconds, in a thread, Linux): what a run with batch workers holds at
    once. A sample can miss a peak shorter than ``every``; ``peak_mib`` (this process's
    exact ``VmHWM``) is a floor for it."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.every):
            total = _rss_kib(str(me)) + sum(_rss_kib(w) for w in _workers_of(me))
            self.peak_kib = max(self.peak_kib, total)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return max(self.peak_kib / 1024, peak_mib())
