"""Bill day against what storing its output costs: the writes alone, and the old floor.

    bench/bill_day.py --accounts N --events-per-account M

Seeds the population on PostgreSQL (``BILLING_BENCH_POSTGRES_URL``, default the local server;
``postgresql://`` and ``postgresql+psycopg2://`` URLs both work) in a fresh schema, then, on
the same data:
1. the floor: ONE SQL statement that aggregates the events bill day rates (those of due units
   before midnight of their bill date) into per-account totals and inserts one bill row per
   account (into a scratch table, so bill day's data is untouched);
2. the bill-day flow (Prefect, default BillRunSettings: children 5, per_batch 20000, batch
   workers one per CPU), in a child process, without documents (``documents=False``):
   deferred actions, billing, numbering, cycle fees, card and direct-debit collection,
   refunds and the post-billing checks, in a scratch directory (so the sandbox gateway's
   ledger, the SEPA files and the checks' reports under ``var/`` start empty). Its peak memory
   is reported: its own RSS plus that of its billing batch workers, summed every 0.2 s
   (``benchkit.TreePeak``). In production
   the Prefect API is already up, so the child first starts it (a no-op flow run, which starts
   Prefect's temporary local server) and prints that time apart; the clock starts after it;
3. the writes alone: every row the run inserted, inserted again by one plain
   ``INSERT ... SELECT`` per table into an empty copy of its table (same columns, indexes,
   unique keys, checks and foreign keys), and every row it updated, updated again by one plain
   statement per table in a transaction rolled back, with each statement's rows and seconds.
It prints the rows written per bill (the rows of 3., over the bills), and last the ratio of
bill day to the writes alone, beside the ratio to the floor. Not a test: the figures depend on
the machine; docs/benchmarks.md records the ones measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import TreePeak, bench_url, schema_url  # noqa: E402

from billing.ingest.synthetic import seed  # noqa: E402
from billing.store.db import make_engine  # noqa: E402
from billing.store.migrate import upgrade  # noqa: E402

SCHEMA = "bench_bill_day"
START, AS_OF = date(2026, 10, 1), date(2026, 11, 1)

FLOOR = """
CREATE TABLE floor_bills AS
SELECT c.account_id, bu.next_bill_date AS bill_date, count(*) AS events, sum(u.quantity) AS total
FROM usage_records u
JOIN contract_items ci ON ci.id = u.contract_item_id
JOIN contracts c ON c.id = ci.contract_id
JOIN bill_units bu ON bu.account_id = c.account_id
WHERE bu.next_bill_date <= :as_of AND u.occurred_at < bu.next_bill_date
GROUP BY c.account_id, bu.next_bill_date
"""


INSERTED = ("bills", "charges", "payments", "payment_file_entries", "billing_issues")
"""Tables bill day only adds rows to (the run starts with them empty)."""
REWRITTEN = {
    "usage_records": "UPDATE usage_records SET status = status, held_on = held_on, "
    "hold_reason = hold_reason WHERE status <> 'pending'",
    "bill_units": "UPDATE bill_units SET next_bill_date = next_bill_date, "
    "last_bill_date = last_bill_date, billing_state = billing_state, "
    "usage_through_id = usage_through_id "
    "WHERE id IN (SELECT bill_unit_id FROM bills)",
    "accounts": "UPDATE accounts SET balance = balance WHERE id IN (SELECT account_id FROM bills)",
}
"""Rows bill day updates, and a statement that writes them again unchanged."""


def writes_alone(engine) -> dict[str, tuple[int, float]]:  # type: ignore[no-untyped-def]
    """Rows and seconds to store bill day's rows again with nothing computed, per table."""
    done = {}
    for table in INSERTED:
        with engine.begin() as conn:
            copy = f"{table}_again"
            conn.execute(text(f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)"))
            for definition in conn.execute(
                text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE contype = 'f' AND conrelid = CAST(:t AS regclass)"
                ),
                {"t": table},
            ).scalars():
                conn.execute(text(f"ALTER TABLE {copy} ADD {definition}"))
        started = time.perf_counter()
        with engine.begin() as conn:
            rows = conn.execute(text(f"INSERT INTO {copy} SELECT * FROM {table}")).rowcount
        done[f"insert {table}"] = rows, time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {copy}"))
    for table, statement in REWRITTEN.items():
        with engine.connect() as conn:
            started = time.perf_counter()
            rows = conn.execute(text(statement)).rowcount
            done[f"update {table}"] = rows, time.perf_counter() - started
            conn.rollback()
    return done


def _no_op() -> None:
    """A flow body that does nothing: running it starts the Prefect API."""


def child(url: str) -> None:
    """Run the bill-day flow in this process and print its figures as JSON."""
    os.environ["BILLING_DATABASE_URL"] = url
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect's temporary server gets 20 s to answer by default; on a loaded machine it can
    # need more, and the clock has not started yet.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from prefect import flow

    from flows.bill_day import bill_day

    started = time.perf_counter()
    flow(name="bench-warm-up")(_no_op)()
    warm_up = time.perf_counter() - started

    started = time.perf_counter()
    with TreePeak() as tree:
        summary = bill_day(as_of=AS_OF, database_block="", documents=False)
    seconds = time.perf_counter() - started
    peak = tree.mib
    steps = {
        k.removeprefix("seconds "): float(v) for k, v in summary.items() if k.startswith("seconds ")
    }
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mib": peak,
                "bills": summary["bills"],
                "usage": summary["usage records rated"],
                "steps": steps,
                "warm_up": warm_up,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--events-per-account", type=int, default=10)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    base = bench_url()
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"))
    url = schema_url(base, SCHEMA)
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    report = seed(
        engine, accounts=args.accounts, usage_per_account=args.events_per_account, start=START
    )
    print(
        f"seeded {report.accounts:,} accounts, {report.usage_records:,} events "
        f"in {time.perf_counter() - started:.1f} s"
    )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))

    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(FLOOR), {"as_of": AS_OF})
    floor = time.perf_counter() - started
    with engine.begin() as conn:
        floor_bills, events = conn.execute(
            text("SELECT count(*), sum(events) FROM floor_bills")
        ).one()
        conn.execute(text("DROP TABLE floor_bills"))
    print(
        f"floor: one SQL statement, {floor_bills:,} per-account totals of {events:,} events "
        f"in {floor:.2f} s"
    )

    with tempfile.TemporaryDirectory(prefix="bench-bill-day-") as scratch:
        out = subprocess.run(  # in a scratch directory: a fresh sandbox ledger under var/
            [sys.executable, str(Path(__file__).resolve()), "--child", url],
            capture_output=True,
            text=True,
            cwd=scratch,
        )
    if out.returncode != 0:
        sys.exit(f"the bill-day run failed:\n{out.stderr[-5000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"Prefect API start (not timed): {figures['warm_up']:.1f} s")
    for step, seconds in figures["steps"].items():
        print(f"  step {step}: {seconds:.1f} s")
    print(
        f"bill day: {figures['bills']:,} bills, {figures['usage']:,} events rated, "
        f"in {figures['seconds']:.1f} s, peak memory {figures['peak_mib']:.0f} MiB (the flow's "
        "process and its batch workers)"
    )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    stored = writes_alone(engine)
    for what, (rows, seconds) in stored.items():
        print(f"  {what}: {rows:,} rows, {seconds:.1f} s")
    alone = sum(seconds for _, seconds in stored.values())
    written = sum(rows for rows, _ in stored.values())
    print(
        f"rows written: {written:,} = {written / figures['bills']:.1f} per bill "
        f"(each row inserted or updated once; per table above)"
    )
    print(
        f"writes alone (bill day's rows stored again, nothing computed, one statement per "
        f"table): {alone:.1f} s = {alone / floor:.1f}x the floor"
    )
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))
    print(
        f"ratio bill day / writes alone: {figures['seconds'] / alone:.2f}x "
        f"(the old floor: bill day / floor {figures['seconds'] / floor:.1f}x)"
    )


if __name__ == "__main__":
    main()
