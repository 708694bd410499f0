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
from prefect.artifacts import create_table_artifact
from prefect.context import get_run_context

from billing import billday
from billing.billrun import BatchResult
from flows.bill_day import bill_accounts_batch, number_invoices
from flows.contract_item_renewal import retire_planned_schedules
from flows.runtime import DaemonFailed, engine_for, load_settings, now_if_none


@flow(name="billing")
def billing(
    process_now: datetime | None = None,
    database_block: str = "default",
    settings_block: str = "default",
) -> dict[str, Any]:
    """Cn285 Billing daemon: bill and number every Invoicing Schedule due by process_now.

    process_now: Cn285 "Process Now" (naive UTC); its date is the bill run's as_of.
    settings_block: the BillRunSettings block (per_batch, fetch_size, loglevel).
    """
    process_now = now_if_none(process_now)
    as_of = process_now.date()
    settings = load_settings(settings_block)
    logger = get_run_logger()
    logger.setLevel(settings.log_level)
    run_id = str(get_run_context().flow_run.id)
    logger.info("billing daemon as of %s", process_now)
    total = _bill(database_block, as_of, run_id, settings)
    numbered = number_invoices(database_block)
    retired = retire_planned_schedules(database_block)
    summary = _report(process_now, total, numbered, retired)
    if total.failed:
        names = ", ".join(sorted(total.failed)[:20])
        raise DaemonFailed(f"{len(total.failed)} account(s) failed: {names}. See billing_issues.")
    return summary


def _bill(database: str, as_of: date, run_id: str, settings: Any) -> BatchResult:
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
        total = total.merge(done)
        if done.billed == 0:
            break
    return total


def _report(
    process_now: datetime, result: BatchResult, numbered: list[dict[str, Any]], retired: int
) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    rows: list[dict[str, Any]] = [
        {"measure": "process_now", "value": process_now.isoformat()},
        {"measure": "bill units due", "value": result.units},
        {"measure": "billed", "value": result.billed},
        {"measure": "bills", "value": result.bills},
        {"measure": "usage records rated", "value": result.usage_collected},
        {"measure": "failed", "value": len(result.failed)},
        {"measure": "planned IS lines retired", "value": retired},
    ]
    rows += [{"measure": f"total {c}", "value": str(v)} for c, v in sorted(result.totals.items())]
    for block in numbered:
        first, count = block["first"], block["count"]
        rows.append(
            {"measure": f"numbers {block['series']}", "value": f"{first}..{first + count - 1}"}
        )
    rows += [
        {"measure": f"failed {ref}", "value": why} for ref, why in sorted(result.failed.items())
    ]
    create_table_artifact(
        rows, key="billing-daemon-summary", description=f"Billing daemon {process_now.isoformat()}"
    )
    return {row["measure"]: row["value"] for row in rows}
