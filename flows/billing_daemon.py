"""billing: the Cn285 Billing daemon as a Prefect flow.

The job (``billing.jobs.billing_daemon``) invoices the Invoicing Schedules due by *Process Now*
with bill day's own steps: the due bill units are billed in batches, at most ``children`` at
once (the Bill Run Settings), then numbered, then the forecasts they replaced are retired.
This flow is its thin adapter: blocks in, the job run by ``PrefectRunner``, artifacts out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from billing.jobs.billing_daemon import PROGRESS, BillingJob, billing_daemon
from billing.ops.billrun import BatchResult
from billing.ops.numbering import Numbered
from billing.ops.run_report import number_range, shown
from flows.jobs import BlockDatabase, PrefectRunner
from flows.report import Measures, RunProgress
from flows.runtime import (
    NOT_GIVEN,
    DaemonFailed,
    RunMoment,
    load_seller,
    load_settings,
    run_moment,
    timed_run_name,
)

BATCH_LIMIT = "bill-day-batches"  # the daemon's batches share bill day's limit
SELLER_BLOCK = "default"  # whose VAT rules bill: the Seller Identity block bill day prints


@flow(name="billing", flow_run_name=timed_run_name)
def billing(
    process_now: RunMoment = NOT_GIVEN,
    database_block: str = "default",
    settings_block: str = "default",
) -> dict[str, Any]:
    """Cn285 Billing daemon: bill and number every Invoicing Schedule due by process_now.

    Args:
        process_now: Cn285 "Process Now" (UTC); its date is the bill run's as_of. Leave it
            empty for the moment the run was scheduled for (now, for a run started by hand).
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
        settings_block: Name of the Bill Run Settings block (per_batch, fetch_size, loglevel).
    """
    process_now = run_moment(process_now)
    settings = load_settings(settings_block)
    logger = get_run_logger()
    logger.setLevel(settings.log_level)
    progress = RunProgress("billing-daemon-progress", f"{TITLE} {shown(process_now)}", PROGRESS)
    logger.info("billing daemon as of %s", process_now)
    job = BillingJob(
        database=BlockDatabase(database_block),
        as_of=process_now.date(),
        run_id=str(get_run_context().flow_run.id),
        per_batch=settings.per_batch,
        children=settings.children,
        fetch_size=settings.fetch_size,
        seller_country=load_seller(SELLER_BLOCK).country,
    )
    result = billing_daemon(PrefectRunner(progress, batch_limit=BATCH_LIMIT), job)
    summary = _report(process_now, result.billing, result.numbered, result.retired)
    if result.billing.failed:
        failed = result.billing.failed
        names = ", ".join(sorted(failed)[:20])
        failure = DaemonFailed(f"{len(failed)} account(s) failed: {names}. See billing_issues.")
        progress.note(f"stopped: {failure}")
        raise failure
    progress.done()
    return summary


TITLE = "Billing daemon"


def _report(
    process_now: datetime, result: BatchResult, numbered: list[Numbered], retired: int
) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("bill units due", result.units)
    measures.add("billed", result.billed)
    measures.add("bills", result.bills)
    measures.add("usage records rated", result.usage_collected)
    measures.add("late usage billed", result.late_usage_billed)
    for currency, amount in sorted(result.late_usage_amounts.items()):
        measures.money(f"late usage {currency}", amount, currency)
    measures.add("late usage held", result.late_usage_held)
    measures.add("failed", len(result.failed))
    measures.add("planned IS lines retired", retired)
    for currency, total in sorted(result.totals.items()):
        measures.money(f"total {currency}", total, currency)
    for block in numbered:
        measures.add(f"numbers {block.series}", number_range(block.first, block.count))
    for ref, why in sorted(result.failed.items()):
        measures.add(f"failed {ref}", why)
    return measures.publish("billing-daemon-summary", f"{TITLE} {shown(process_now)}")
