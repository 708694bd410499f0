"""Python CPU per bill unit in one billing batch, and where it goes.

    bench/billing_cpu.py --accounts 20000 [--profile 25]

Seeds ``--accounts`` accounts x 10 events in a fresh schema on PostgreSQL
(``BILLING_BENCH_POSTGRES_URL``, default the local server), then bills every due unit in ONE
batch (``billing.ops.billrun.bill_batch``, the function bill day's batches run), twice on the
same data: once for the clock (wall seconds, this process's CPU seconds, so the database
server's work is left out) and, after a rollback to the seeded state, once under cProfile. It
prints the CPU per unit, then the profile's time grouped by where it goes: our modules by
area, SQLAlchemy, the driver (psycopg2: waiting for the server and converting rows), and the
rest; then the ``--profile`` functions with the most time of their own. Not a test: the
figures depend on the machine; docs/benchmarks.md records the ones measured here.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import bench_url, schema_url  # noqa: E402

from billing.ingest.synthetic import seed  # noqa: E402
from billing.ops.billrun import bill_batch, due_unit_ids  # noqa: E402
from billing.store.db import make_engine, unit_of_work  # noqa: E402
from billing.store.migrate import upgrade  # noqa: E402

SCHEMA = "bench_billing_cpu"
START, AS_OF = date(2026, 10, 1), date(2026, 11, 1)

AREAS = (
    ("billing/ops/rating", "rating (SQL built, rows priced)"),
    ("billing/domain/pricing", "pricing (exact Decimal)"),
    ("billing/domain", "plan: fees, bills, lines, tax (pure)"),
    ("billing/ops/billrun", "read and write the plan"),
    ("billing/store", "bulk writes (COPY text, temp tables)"),
    ("billing/ops", "other ops (units, items, catalogue)"),
    ("sqlalchemy", "SQLAlchemy (statements, rows)"),
    ("psycopg2", "psycopg2 (waiting for the server, converting rows)"),
    ("decimal", "decimal"),
)


def area(filename: str) -> str:
    for part, name in AREAS:
        if part in filename:
            return name
    if filename.startswith("~") or filename.startswith("<"):
        return "built-ins (C calls: database I/O, str, Decimal ops)"
    return "other Python"


def bill_all(engine, run_id: str) -> int:  # type: ignore[no-untyped-def]
    with unit_of_work(engine) as session:
        ids = due_unit_ids(session, AS_OF, limit=10_000_000)
    result = bill_batch(engine, ids, AS_OF, run_id, dry_run=True)
    return result.billed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--profile", type=int, default=25, help="functions listed")
    args = parser.parse_args()
    base = bench_url()
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"))
    engine = make_engine(schema_url(base, SCHEMA))
    try:
        upgrade(engine)
        seed(engine, accounts=args.accounts, usage_per_account=10, start=START)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        bill_all(engine, "warm-up")  # the catalogue, the plans, the statement caches
        wall, cpu = time.perf_counter(), time.process_time()
        units = bill_all(engine, "clock")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"one batch (dry run: computed and written, then rolled back): {units:,} units "
            f"billed in {wall:.1f} s wall, {cpu:.1f} s of this process's CPU = "
            f"{1000 * cpu / units:.3f} ms of Python CPU per unit"
        )
        profiler = cProfile.Profile()
        profiler.enable()
        bill_all(engine, "profile")
        profiler.disable()
        stats = pstats.Stats(profiler)
        own: dict[str, float] = defaultdict(float)
        total = 0.0
        for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            own[area(filename)] += tottime
            total += tottime
        print(f"where it goes (cProfile, own time, {total:.1f} s profiled):")
        for name, seconds in sorted(own.items(), key=lambda kv: -kv[1]):
            print(f"  {name}: {seconds:.1f} s = {100 * seconds / total:.0f} %")
        stats.sort_stats("tottime").print_stats(args.profile)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))


if __name__ == "__main__":
    main()
