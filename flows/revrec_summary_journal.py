"""revrec-summary-journal: the Cn285 RevRec Summary Journal daemon as a Prefect flow.

For a year and month (the seed's ``model.summary_journal_daemon(year, month)``; by default the
month before today), it gives every newly invoiced bill line its monthly revenue shares, batch
by batch, then writes the month's summary journal (draft), and posts it when asked. The rules
live in billing/ops/revrec.py; see docs/revrec.md.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run as current_run
from prefect.tasks import exponential_backoff

from billing.ops import revrec
from billing.ops.revrec import JournalResult, ScheduleResult
from billing.ops.run_report import money, shown
from billing.store.db import unit_of_work
from flows.report import Measures, RunProgress, publish_table
from flows.runtime import (
    NOT_GIVEN,
    Count,
    DaemonFailed,
    engine_for,
    given,
    run_date,
    transient_only,
)

RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": transient_only,
}


@task(name="schedule_revenue_batch", **RETRIES)
def schedule_revenue_batch(
    database: str | None, after_id: int, per_batch: int
) -> tuple[ScheduleResult, int | None]:
    """Give one batch of invoiced lines their monthly revenue shares."""
    with unit_of_work(engine_for(database)) as session:
        return revrec.schedule_lines(session, after_id=after_id, limit=per_batch)


@task(name="write_summary_journal", **RETRIES)
def write_summary_journal(
    database: str | None, year: int, month: int, post: bool, posted_on: date | None
) -> JournalResult:
    """Write the month's summary journal from its shares, and post it if asked."""
    with unit_of_work(engine_for(database)) as session:
        return revrec.summary_journal(session, year, month, post=post, posted_on=posted_on)


def month_run_name() -> str:
    """``revrec-summary-journal 2027-01``: the month it journals (by default the month before
    the scheduled date)."""
    parameters = current_run.parameters
    try:
        year, month = _month(given(parameters.get("year")), given(parameters.get("month")))
    except ValueError:  # the flow itself says why
        return "revrec-summary-journal"
    return f"revrec-summary-journal {year:04d}-{month:02d}" + (
        " (post)" if parameters.get("post") else ""
    )


def _month(year: int | None, month: int | None) -> tuple[int, int]:
    if (year is None) != (month is None):
        raise ValueError("give both year and month, or neither (the previous month)")
    if year is None or month is None:
        return revrec.previous_month(run_date(None))
    return int(year), int(month)


@flow(name="revrec-summary-journal", flow_run_name=month_run_name)
def revrec_summary_journal(
    year: Count = NOT_GIVEN,
    month: Count = NOT_GIVEN,
    post: bool = False,
    database_block: str = "default",
    per_batch: int = 20_000,
) -> dict[str, Any]:
    """Cn285 RevRec Summary Journal: recognize revenue by day and write a month's journal.

    Args:
        year: Year of the month to journal. Leave year and month empty for the month before
            the scheduled date.
        month: Month to journal, 1 to 12 (with year).
        post: Post (lock) the month; refused while an earlier month with revenue is open.
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
        per_batch: Bill lines given their revenue shares per transaction.
    """
    year, month = _month(given(year), given(month))
    revrec.check_month(year, month)
    logger = get_run_logger()
    progress = RunProgress(
        "revrec-summary-journal-progress", f"RevRec summary journal {year:04d}-{month:02d}", STEPS
    )
    scheduled = _schedule(database_block, per_batch)
    progress.step("scheduling revenue", note=f"{scheduled.lines} line(s) scheduled")
    posted_on = run_date(None) if post else None
    journal = write_summary_journal(database_block, year, month, post, posted_on)
    progress.step("journal", note=f"{journal.status}, {len(journal.entries)} entries")
    if journal.locked:
        logger.warning("%04d-%02d is locked (%s): nothing changed", year, month, journal.status)
    logger.info(
        "%04d-%02d %s: %s entries, recognized %s",
        year,
        month,
        journal.status,
        len(journal.entries),
        journal.recognized,
    )
    summary = _report(scheduled, journal)
    if scheduled.failed:
        names = ", ".join(str(line) for line in sorted(scheduled.failed)[:20])
        failure = DaemonFailed(
            f"{len(scheduled.failed)} bill line(s) could not be scheduled: {names}. "
            "Their revenue is missing until they are fixed."
        )
        progress.note(f"stopped: {failure}")
        raise failure
    progress.done()
    return summary


STEPS = (("scheduling revenue", 80), ("journal", 20))


def _schedule(database: str, per_batch: int) -> ScheduleResult:
    """Schedule every invoiced line without shares, one batch per transaction."""
    logger = get_run_logger()
    total = ScheduleResult()
    after: int | None = 0
    number = 0
    while after is not None:
        number += 1
        done, after = schedule_revenue_batch.with_options(name=f"schedule_revenue_batch-{number}")(
            database, after, per_batch
        )
        if done.lines or done.failed:
            logger.info(
                "batch %s: %s line(s) scheduled into %s share(s), %s failed",
                number,
                done.lines,
                done.shares,
                len(done.failed),
            )
        total = total.merge(done)
    return total


def _report(scheduled: ScheduleResult, journal: JournalResult) -> dict[str, Any]:
    """The run's table artifacts (the Cn285 QS / Message log): counts, totals, entries."""
    period = f"{journal.year:04d}-{journal.month:02d}"
    measures = Measures()
    measures.add("month", period)
    measures.add("status", journal.status)
    measures.add("locked", journal.locked)
    measures.add("lines scheduled", scheduled.lines)
    measures.add("shares scheduled", scheduled.shares)
    measures.add("lines failed", len(scheduled.failed))
    measures.add("shares in journal", journal.shares)
    measures.add("catch-up shares", journal.catch_up)
    measures.add("journal entries", len(journal.entries))
    for currency, amount in sorted(journal.recognized.items()):
        measures.money(f"recognized {currency}", amount, currency)
    for currency, amount in sorted(journal.deferred.items()):
        measures.money(f"deferred after {period} {currency}", amount, currency)
    for line, why in sorted(scheduled.failed.items()):
        measures.add(f"failed line {line}", why)
    summary = measures.publish(
        "revrec-summary-journal-summary", f"RevRec summary journal {period} ({journal.status})"
    )
    publish_table(
        [
            {
                "gl_account": e.gl_account,
                "product": e.product or "",
                "currency": e.currency,
                "debit": money(e.debit, e.currency),
                "credit": money(e.credit, e.currency),
                "description": shown(e.description),
            }
            for e in journal.entries
        ],
        key="revrec-summary-journal-entries",
        description=f"RevRec summary journal entries {period} ({journal.status})",
    )
    return summary
