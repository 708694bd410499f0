"""revrec-summary-journal: the Cn285 RevRec Summary Journal daemon as a Prefect flow.

For a year and month (the seed's ``model.summary_journal_daemon(year, month)``; by default the
month before the scheduled date), the job (``billing.jobs.revrec_summary_journal``) gives
every newly invoiced bill line its monthly revenue shares, batch by batch, then writes the
month's summary journal (draft), and posts it when asked. The rules live in
billing/ops/revrec.py; see docs/revrec.md. This flow is its thin adapter: parameters in, the
job run by ``PrefectRunner``, artifacts out.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_run

from billing.jobs.revrec_summary_journal import (
    PROGRESS,
    RevRecJob,
    month_to_journal,
)
from billing.jobs.revrec_summary_journal import revrec_summary_journal as revrec_job
from billing.ops.revrec import JournalResult, ScheduleResult
from billing.ops.run_report import money, shown
from flows.jobs import PrefectRunner
from flows.report import Measures, RunProgress, publish_table
from flows.runtime import NOT_GIVEN, Count, DaemonFailed, given, resolve_database_url, run_date

STEPS = PROGRESS


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
    """The month to journal; the month before the scheduled date when neither is given."""
    today = run_date(None) if year is None and month is None else None
    return month_to_journal(year, month, today)


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
    job = RevRecJob(
        resolve_database_url(database_block),
        year,
        month,
        post=post,
        posted_on=run_date(None) if post else None,
        per_batch=per_batch,
    )
    progress = RunProgress(
        "revrec-summary-journal-progress", f"RevRec summary journal {year:04d}-{month:02d}", STEPS
    )
    result = revrec_job(PrefectRunner(progress), job, get_run_logger())
    scheduled, journal = result.scheduled, result.journal
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
