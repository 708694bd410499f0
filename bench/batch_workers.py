"""Billing batches in threads against worker processes, on the same data in the same run.

    bench/batch_workers.py --accounts 200000 [--processes 2] [--children 5] [--per-batch 20000]

Seeds ``--accounts`` accounts x 10 events in a fresh schema on PostgreSQL
(``BILLING_BENCH_POSTGRES_URL``, default the local server), then bills every due unit with
``billing.jobs.bill_day.bill_batches`` (what bill day's billing step runs: ``children``
batches in flight, ``per_batch`` units each) as a dry run (each batch computed and written in
its transaction, then rolled back, so both runs bill the same data): first in threads of
this process (``processes`` 0), then in ``--processes`` worker processes. It prints each
run's wall time and units per second, and last the speed-up. Not a test: the figures depend on
the machine; docs/benchmarks.md records the ones measured here.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import bench_url, schema_url  # noqa: E402

from billing.ingest.synthetic import seed  # noqa: E402
from billing.jobs.bill_day import bill_batches  # noqa: E402
from billing.jobs.runner import InProcessRunner  # noqa: E402
from billing.store.db import make_engine  # noqa: E402
from billing.store.migrate import upgrade  # noqa: E402

SCHEMA = "bench_batch_workers"
START, AS_OF = date(2026, 10, 1), date(2026, 11, 1)


def bill(url: str, processes: int, children: int, per_batch: int) -> tuple[int, float]:
    started = time.perf_counter()
    result = bill_batches(
        InProcessRunner(),
        url,
        AS_OF,
        f"bench-{processes}",
        per_batch=per_batch,
        children=children,
        fetch_size=150_000,
        dry_run=True,
        processes=processes,
    )
    return result.billed, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--children", type=int, default=5)
    parser.add_argument("--per-batch", type=int, default=20_000)
    args = parser.parse_args()
    base = bench_url()
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"))
    url = schema_url(base, SCHEMA)
    try:
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        seed(engine, accounts=args.accounts, usage_per_account=10, start=START)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()
        seconds = time.perf_counter() - started
        print(f"seeded {args.accounts:,} accounts x 10 events in {seconds:.1f} s")
        runs = {}
        for processes in (0, args.processes):
            units, seconds = bill(url, processes, args.children, args.per_batch)
            where = "threads of this process" if processes == 0 else f"{processes} worker processes"
            print(
                f"{args.children} batches of {args.per_batch:,} in flight, in {where}: "
                f"{units:,} units billed (dry run) in {seconds:.1f} s = {units / seconds:,.0f}/s"
            )
            runs[processes] = seconds
        print(
            f"speed-up of {args.processes} worker processes over threads: "
            f"{runs[0] / runs[args.processes]:.2f}x"
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))


if __name__ == "__main__":
    main()
