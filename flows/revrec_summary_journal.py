"""revrec-summary-journal: the Cn285 RevRec Summary Journal daemon as a Prefect flow.

For a year and month (the seed's ``model.summary_journal_daemon(year, month)``; by default the
month before today), it gives every newly invoiced bill line its monthly revenue shares, batch
by batch, then writes the month's summary journal (draft), and posts it when asked. The rules
live in billing/revrec.py; see docs/revrec.md.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.tasks import exponential_backoff

from billing import revrec
from billing.db import unit_of_work
from billing.revrec import JournalResult, ScheduleResult
from flows.runtime import DaemonFailed, engine_for, today_if_none, transient_only

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


@flow(name="revrec-summary-journal")
def revrec_summary_journal(
    year: int | None = None,
    month: int | None = None,
    post: bool = False,
    database_block: str = "default",
    per_batch: int = 20_000,
) -> dict[str, Any]:
    """Cn285 RevRec Summary Journal: recognize revenue by day and write a month's journal.

    year, month: the month to journal; both empty means the month before today.
    post: post (lock) the month; it refuses while an earlier month with revenue is open.
    per_batch: bill lines scheduled per transaction.
    """
    if (year is None) != (month is None):
        raise ValueError("give both year and month, or neither (the previous month)")
    if year is None or month is None:
        year, month = revrec.previous_month(today_if_none(None))
    revrec.check_month(year, month)
    logger = get_run_logger()
    scheduled = _schedule(database_block, per_batch)
    posted_on = today_if_none(None) if post else None
    journal = write_summary_journal(database_block, year, month, post, posted_on)
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
        raise DaemonFailed(
            f"{len(scheduled.failed)} bill line(s) could not be scheduled: {names}. "
            "Their revenue is missing until they are fixed."
        )
    return summary


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
    rows: list[dict[str, Any]] = [
        {"measure": "month", "value": period},
        {"measure": "status", "value": journal.status},
        {"measure": "locked", "value": journal.locked},
        {"measure": "lines scheduled", "value": scheduled.lines},
        {"measure": "shares scheduled", "value": scheduled.shares},
        {"measure": "lines failed", "value": len(scheduled.failed)},
        {"measure": "shares in journal", "value": journal.shares},
        {"measure": "catch-up shares", "value": journal.catch_up},
        {"measure": "journal entries", "value": len(journal.entries)},
    ]
    rows += [
        {"measure": f"recognized {currency}", "value": str(amount)}
        for currency, amount in sorted(journal.recognized.items())
    ]
    rows += [
        {"measure": f"deferred after {period} {currency}", "value": str(amount)}
        for currency, amount in sorted(journal.deferred.items())
    ]
    rows += [
        {"measure": f"failed line {line}", "value": why}
        for line, why in sorted(scheduled.failed.items())
    ]
    create_table_artifact(
        rows,
        key="revrec-summary-journal-summary",
        description=f"RevRec summary journal {period} ({journal.status})",
    )
    create_table_artifact(
        [
            {
                "gl_account": e.gl_account,
                "product": e.product or "",
                "currency": e.currency,
                "debit": str(e.debit),
                "credit": str(e.credit),
                "description": e.description,
            }
            for e in journal.entries
        ],
        key="revrec-summary-journal-entries",
        description=f"RevRec summary journal entries {period} ({journal.status})",
    )
    return {row["measure"]: row["value"] for row in rows}
