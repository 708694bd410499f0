"""billing: the Cn285 Billing daemon as a Prefect flow.

Invoices the Invoicing Schedules due by *Process Now* with bill day's own operations: the
due bill units (a closed cycle, or immediate charges such as UTI lines) are billed batch by
batch by bill day's ``bill_accounts_batch`` task, then ``number_invoices`` numbers the new
bills. There is no second billing code path; deferred actions and cycle fees stay bill day's.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from billing.jobs import bill_day as billday
from billing.ops.billrun import BatchResult
from billing.ops.run_report import batch_share as billday_share
from billing.ops.run_report import number_range, shown
from flows.bill_day import bill_accounts_batch, number_invoices
from flows.contract_item_renewal import retire_planned_schedules
from flows.report import Measures, RunProgress
from flows.runtime import (
    NOT_GIVEN,
    DaemonFailed,
    RunMoment,
    engine_for,
    load_settings,
    run_moment,
    timed_run_name,
)


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
    as_of = process_now.date()
    settings = load_settings(settings_block)
    logger = get_run_logger()
    logger.setLevel(settings.log_level)
    progress = RunProgress("billing-daemon-progress", f"{TITLE} {shown(process_now)}", PROGRESS)
    run_id = str(get_run_context().flow_run.id)
    logger.info("billing daemon as of %s", process_now)
    total = _bill(database_block, as_of, run_id, settings, progress)
    numbered = number_invoices(database_block)
    progress.step("numbering")
    retired = retire_planned_schedules(database_block)
    progress.step("retiring forecasts", note=f"{retired} forecast line(s) retired")
    summary = _report(process_now, total, numbered, retired)
    if total.failed:
        names = ", ".join(sorted(total.failed)[:20])
        failure = DaemonFailed(
            f"{len(total.failed)} account(s) failed: {names}. See billing_issues."
        )
        progress.note(f"stopped: {failure}")
        raise failure
    progress.done()
    return summary


TITLE = "Billing daemon"
PROGRESS = (("billing", 85), ("numbering", 10), ("retiring forecasts", 5))


def _bill(
    database: str, as_of: date, run_id: str, settings: Any, progress: RunProgress
) -> BatchResult:
    """Bill the due units batch by batch, in catch-up passes like bill day."""
    logger = get_run_logger()
    total = BatchResult()
    for pass_number in range(1, billday.MAX_PASSES + 1):
        done = BatchResult()
        batches = billday.due_batches(
            engine_for(database),
            as_of,
            fetch_size=settings.fetch_size,
            per_batch=settings.per_batch,
            exclude=sorted(total.failed_units),
        )
        for number, batch in enumerate(batches, start=1):
            result = bill_accounts_batch.with_options(
                name=f"bill_accounts_batch-{pass_number}.{number}"
            )(database, batch, as_of, run_id, False)
            logger.info(
                "pass %s batch %s: %s unit(s) billed, %s bill(s), %s failed",
                pass_number,
                number,
                result.billed,
                result.bills,
                len(result.failed),
            )
            done = done.merge(result)
            progress.step(
                "billing",
                billday_share(total.merge(done)),
                note=f"pass {pass_number} batch {number} billed",
            )
        total = total.merge(done)
        if done.billed == 0:
            break
    return total


def _report(
    process_now: datetime, result: BatchResult, numbered: list[dict[str, Any]], retired: int
) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("bill units due", result.units)
    measures.add("billed", result.billed)
    measures.add("bills", result.bills)
    measures.add("usage records rated", result.usage_collected)
    measures.add("failed", len(result.failed))
    measures.add("planned IS lines retired", retired)
    for currency, total in sorted(result.totals.items()):
        measures.money(f"total {currency}", total, currency)
    for block in numbered:
        measures.add(f"numbers {block['series']}", number_range(block["first"], block["count"]))
    for ref, why in sorted(result.failed.items()):
        measures.add(f"failed {ref}", why)
    return measures.publish("billing-daemon-summary", f"{TITLE} {shown(process_now)}")
