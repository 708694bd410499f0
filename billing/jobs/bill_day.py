"""Bill day's steps as plain Python: each step owns its unit of work.

The Prefect flow ``flows/bill_day.py`` runs these same functions as tasks (batches in
parallel); ``run_bill_day`` runs them in order for callers without Prefect, and for tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine

from billing.failpoints import failpoint
from billing.ops.billrun import BatchResult, bill_batch, due_unit_ids
from billing.ops.cycle_fees import CycleFeesResult, cycle_fees
from billing.ops.deferred import DeferredResult, run_deferred_actions
from billing.ops.numbering import Numbered, assign_bill_numbers
from billing.store.db import retry_transient, unit_of_work
from billing.store.sqlkit import refresh_statistics

BILLED_TABLES = (
    "accounts",
    "bill_lines",
    "bill_units",
    "bills",
    "billing_issues",
    "charges",
    "payments",
    "usage_records",
)
"""The tables billing rewrites: the steps after it plan their joins on fresh statistics."""

MAX_PASSES = 120


def deferred_actions(engine: Engine, as_of: date) -> DeferredResult:
    """pin_deferred_act: actions due by ``as_of``."""

    def work() -> DeferredResult:
        with unit_of_work(engine) as session:
            return run_deferred_actions(session, as_of)

    return retry_transient(work)


def due_batches(
    engine: Engine,
    as_of: date,
    *,
    fetch_size: int,
    per_batch: int,
    account_refs: Sequence[str] | None = None,
    exclude: Sequence[int] = (),
) -> Iterator[list[int]]:
    """Due bill units in batches of ``per_batch``, fetched ``fetch_size`` ids at a time.

    A fetch retries transient database errors: the flow calls this in its own body, where no
    task retry would cover a connection lost between two batches.
    """
    after = 0
    while True:

        def fetch(after: int = after) -> list[int]:
            with unit_of_work(engine) as session:
                return due_unit_ids(
                    session,
                    as_of,
                    after_id=after,
                    limit=fetch_size,
                    account_refs=account_refs,
                    exclude=exclude,
                )

        ids = retry_transient(fetch)
        if not ids:
            return
        for start in range(0, len(ids), per_batch):
            yield ids[start : start + per_batch]
        after = ids[-1]


def analyze_billed_tables(engine: Engine) -> None:
    """Statistics of what billing just wrote, before the steps that join on it (PostgreSQL)."""
    retry_transient(lambda: refresh_statistics(engine, BILLED_TABLES))


def number_bills(engine: Engine) -> list[Numbered]:
    """pin_inv_accts: gapless numbers for every unnumbered bill."""

    def work() -> list[Numbered]:
        with unit_of_work(engine, isolation="REPEATABLE READ") as session:
            numbered = assign_bill_numbers(session)
            failpoint("numbering.before_commit")
            return numbered

    return retry_transient(work)


def apply_cycle_fees(engine: Engine, as_of: date, run_id: str) -> CycleFeesResult:
    """pin_cycle_fees: cancellations due and forward fees of mid-cycle purchases."""

    def work() -> CycleFeesResult:
        with unit_of_work(engine) as session:
            result = cycle_fees(session, as_of, run_id)
            failpoint("cycle_fees.before_commit")
            return result

    return retry_transient(work)


@dataclass
class BillDayResult:
    deferred: DeferredResult
    billing: BatchResult
    numbered: list[Numbered] = field(default_factory=list)
    cycle_fees: CycleFeesResult | None = None


def _bill_with_retries(
    engine: Engine, batch: list[int], as_of: date, run_id: str, dry_run: bool
) -> BatchResult:
    return retry_transient(lambda: bill_batch(engine, batch, as_of, run_id, dry_run=dry_run))


def bill_accounts(
    engine: Engine,
    as_of: date,
    run_id: str,
    *,
    fetch_size: int = 150_000,
    per_batch: int = 20_000,
    account_refs: Sequence[str] | None = None,
    dry_run: bool = False,
) -> BatchResult:
    """pin_bill_accts, in passes until every due unit is billed or has failed (catch-up)."""
    total = BatchResult()
    for _ in range(1 if dry_run else MAX_PASSES):
        done = BatchResult()
        for batch in due_batches(
            engine,
            as_of,
            fetch_size=fetch_size,
            per_batch=per_batch,
            account_refs=account_refs,
            exclude=sorted(total.failed_units),
        ):
            done = done.merge(_bill_with_retries(engine, batch, as_of, run_id, dry_run))
            failpoint("billday.between_batches")
        total = total.merge(done)
        if done.billed == 0:
            break
    return total


def run_bill_day(
    engine: Engine,
    as_of: date,
    run_id: str,
    *,
    per_batch: int = 20_000,
    fetch_size: int = 150_000,
    account_refs: Sequence[str] | None = None,
    dry_run: bool = False,
) -> BillDayResult:
    """The whole bill day in order, without Prefect: the same steps the flow runs."""
    if dry_run:
        return BillDayResult(
            DeferredResult(),
            bill_accounts(
                engine,
                as_of,
                run_id,
                fetch_size=fetch_size,
                per_batch=per_batch,
                account_refs=account_refs,
                dry_run=True,
            ),
        )
    deferred = deferred_actions(engine, as_of)
    failpoint("billday.after_deferred")
    billing = bill_accounts(
        engine, as_of, run_id, fetch_size=fetch_size, per_batch=per_batch, account_refs=account_refs
    )
    analyze_billed_tables(engine)
    numbered = number_bills(engine)
    failpoint("billday.after_numbering")
    return BillDayResult(deferred, billing, numbered, apply_cycle_fees(engine, as_of, run_id))
