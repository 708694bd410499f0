"""Seed benchmark: time ``billing.ingest.synthetic.seed`` on PostgreSQL in a throw-away schema.

    .venv/bin/python bench/seed.py --accounts 1000000 --usage-per-account 10

The database is ``BILLING_BENCH_POSTGRES_URL`` (default: the local trust-auth server). The
schema ``bench_seed`` is created fresh, migrated, seeded and dropped. Prints the seconds, the
rows per second and the peak RSS of this process (the PostgreSQL server is not counted).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import date

from benchkit import bench_url, schema_url
from sqlalchemy import Engine, text

from billing.ingest.synthetic import seed
from billing.store.db import make_engine
from billing.store.migrate import upgrade

SCHEMA = "bench_seed"


def recreate_schema(admin: Engine, *, drop_only: bool = False) -> None:
    """Drop the benchmark schema, and create it empty again unless ``drop_only``."""
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        if not drop_only:
            conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark once and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--usage-per-account", type=int, default=10)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    url = bench_url()
    admin = make_engine(url)
    recreate_schema(admin)
    engine = make_engine(schema_url(url, SCHEMA))
    try:
        upgrade(engine)
        began = time.perf_counter()
        done = 0

        def show(accounts: int) -> None:
            nonlocal done
            done += accounts
            elapsed = time.perf_counter() - began
            print(f"  {done:>10,} accounts  {elapsed:8.1f} s", file=sys.stderr, flush=True)

        report = seed(
            engine,
            accounts=args.accounts,
            usage_per_account=args.usage_per_account,
            start=args.start,
            seed=args.seed,
            progress=show,
        )
        seconds = time.perf_counter() - began
    finally:
        engine.dispose()
        recreate_schema(admin, drop_only=True)
        admin.dispose()
    rows = (
        report.accounts
        + report.bill_units
        + report.contracts
        + report.contract_items
        + report.usage_records
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"accounts        {report.accounts:>12,}")
    print(f"bill units      {report.bill_units:>12,}")
    print(f"contracts       {report.contracts:>12,}")
    print(f"contract items  {report.contract_items:>12,}")
    print(f"usage records   {report.usage_records:>12,}")
    print(f"rows            {rows:>12,}")
    print(f"seconds         {seconds:>12.1f}")
    print(f"rows per second {rows / seconds:>12,.0f}")
    print(f"peak RSS (MiB)  {peak_mib:>12,.0f}")


if __name__ == "__main__":
    main()
