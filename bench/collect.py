"""Collection and refunds on a billed population: seconds and peak memory.

    bench/collect.py --accounts N [--events-per-account M] [--dump FILE | --restore FILE]

Seeds N accounts on PostgreSQL (``BILLING_BENCH_POSTGRES_URL``, default the local server) in
the schema ``collect_bench`` and bills them as of 2026-11-01 with ``run_bill_day`` (deferred
actions, billing, ANALYZE of the billed tables, numbering, cycle fees: bill day without its
payment steps). Then every 50th account records a settled payment of 200.00, applied to no
bill yet (a bank transfer received that day): collection applies it as credit first, and
refunds pay back what is left. The billed tables are analyzed again, as bill day does before
collecting. Then, in a child process working in a scratch directory (a fresh sandbox ledger,
an empty SEPA folder), it times ``collect_payments`` and then ``refund_payments`` with the
default ``PaymentConfig`` and the demo creditor, and prints the seconds of each, the child's
CPU time (Python only: the database server's work is not in it) and its own peak RSS
(``VmHWM``, Linux only), before collecting (imports done) and at the end. The schema is
dropped at the end.

``--dump FILE`` keeps the billed schema as a ``pg_dump`` custom archive, and ``--restore FILE``
starts from such an archive instead of seeding and billing (a long time at 1,000,000
accounts), so several runs, or two versions of the code, collect the very same population.
Not a test: the figures depend on the machine; docs/benchmarks.md records the ones measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import bench_url, peak_mib, schema_url  # noqa: E402

from billing.ingest.synthetic import seed  # noqa: E402
from billing.jobs.bill_day import BILLED_TABLES, run_bill_day  # noqa: E402
from billing.store.db import make_engine  # noqa: E402
from billing.store.migrate import upgrade  # noqa: E402
from billing.store.sqlkit import refresh_statistics  # noqa: E402

SCHEMA = "collect_bench"
START, AS_OF = date(2026, 10, 1), date(2026, 11, 1)
CREDITOR = ("Openbill Demo SA", "FR7630006000011234567890189", "AGRIFRPP", "FR72ZZZ123456")
PREPAID_EVERY, PREPAID = 50, Decimal("200.00")
PREPAY = (
    """
    INSERT INTO payments (idempotency_key, account_id, method, amount, currency, received_on,
                          status, reference)
    SELECT 'bench-prepaid:' || id, id, 'invoice', :amount, currency, :on, 'settled',
           'bench-prepaid:' || id
    FROM accounts WHERE id % :every = 0
    """,
    "UPDATE accounts SET balance = balance - :amount WHERE id % :every = 0",
)
"""Every 50th account has paid 200.00 on bill day (settled, applied to no bill yet)."""


def child(url: str) -> None:
    """Collect, then refund, in this process; print the figures as JSON."""
    from billing.payments.collect import collect_payments
    from billing.payments.config import PaymentConfig
    from billing.payments.refund import refund_payments
    from billing.payments.sandbox import SandboxGateway
    from billing.payments.sepa import Creditor

    engine = make_engine(url)
    # Every open bill in the file, as before the 14-day horizon (due dates are 30 days out):
    # the bench measures a file of the whole population, not the horizon.
    config = PaymentConfig(
        output_dir=Path("out"), creditor=Creditor(*CREDITOR), debit_horizon_days=60
    )
    gateway = SandboxGateway(Path("ledger.sqlite3"))
    with engine.connect() as conn:  # connected before the clock, as a worker would be
        conn.execute(text("SELECT 1"))
    figures: dict[str, object] = {"peak_mib_before": peak_mib()}
    cpu, started = time.process_time(), time.perf_counter()
    collected = collect_payments(engine, AS_OF, gateway, config, run_id="bench")
    figures["collect_seconds"] = time.perf_counter() - started
    refund_started = time.perf_counter()
    refunded = refund_payments(engine, AS_OF, gateway, config, run_id="bench")
    figures["refund_seconds"] = time.perf_counter() - refund_started
    figures["seconds"] = time.perf_counter() - started
    figures["cpu_seconds"] = time.process_time() - cpu
    figures["peak_mib"] = peak_mib()
    figures["collect"] = {
        "collected": collected.collected,
        "debits": collected.debits,
        "files": len(collected.files),
        "skipped": len(collected.skipped),
    }
    figures["refund"] = {
        "refunded": refunded.refunded,
        "transfers": refunded.transfers,
        "files": len(refunded.files),
        "skipped": len(refunded.skipped),
    }
    print(json.dumps(figures))


def prepare(base: str, accounts: int, events: int) -> None:
    """Seed and bill a fresh schema (bill day without collection and refunds)."""
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"))
    engine = make_engine(schema_url(base, SCHEMA))
    upgrade(engine)
    started = time.perf_counter()
    report = seed(engine, accounts=accounts, usage_per_account=events, start=START)
    print(f"seeded {report.accounts:,} accounts in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    billed = run_bill_day(engine, AS_OF, "bench")
    print(f"billed {billed.billing.billed:,} units in {time.perf_counter() - started:.1f} s")
    with engine.begin() as conn:
        for statement in PREPAY:
            values = {"amount": PREPAID, "on": AS_OF, "every": PREPAID_EVERY}
            conn.execute(text(statement), values)
    refresh_statistics(engine, BILLED_TABLES)
    engine.dispose()


def pg_args(base: str) -> list[str]:
    """Connection options for pg_dump and pg_restore, from the SQLAlchemy URL."""
    url = urlsplit(base.replace("postgresql+psycopg2://", "postgresql://"))
    return [
        f"--host={url.hostname or '127.0.0.1'}",
        f"--port={url.port or 5432}",
        f"--username={url.username or 'postgres'}",
        f"--dbname={url.path.lstrip('/') or 'postgres'}",
    ]


def restore(base: str, archive: str) -> None:
    """Recreate the billed schema from a pg_dump archive of it."""
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    started = time.perf_counter()
    subprocess.run(["pg_restore", *pg_args(base), "--jobs=2", archive], check=True)
    refresh_statistics(make_engine(schema_url(base, SCHEMA)), BILLED_TABLES)  # an archive has none
    print(f"restored {archive} in {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--events-per-account", type=int, default=10)
    parser.add_argument("--dump", help="keep the billed schema in this pg_dump archive")
    parser.add_argument("--restore", help="start from this archive instead of seeding")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    base = bench_url()
    if args.restore:
        restore(base, args.restore)
    else:
        prepare(base, args.accounts, args.events_per_account)
    if args.dump:
        dump = ["pg_dump", *pg_args(base), "--format=custom", f"--schema={SCHEMA}"]
        subprocess.run([*dump, f"--file={args.dump}"], check=True)
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as scratch:
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", schema_url(base, SCHEMA)],
            check=True,
            capture_output=True,
            text=True,
            cwd=scratch,
        )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"collect: {figures['collect']} in {figures['collect_seconds']:.1f} s")
    print(f"refund: {figures['refund']} in {figures['refund_seconds']:.1f} s")
    print(
        f"collect + refund: {figures['seconds']:.1f} s, {figures['cpu_seconds']:.1f} s CPU "
        f"(Python), peak RSS {figures['peak_mib']:.0f} MiB "
        f"({figures['peak_mib_before']:.0f} MiB before collecting)"
    )
    with make_engine(base).begin() as conn:
        conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))


if __name__ == "__main__":
    main()
