"""contract-item-renewal: the Cn285 Contract Item Renewal daemon as a Prefect flow.

Renews the auto-renewing contracts past their notice deadline and forecasts the new term's
Invoicing Schedules; ends the others at their term end; then retires forecast lines that bill
day has materialized. See billing/renewal.py for the rules and docs/daemons.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.tasks import exponential_backoff

from billing import renewal
from billing.db import unit_of_work
from billing.renewal import RenewalResult
from flows.runtime import engine_for, now_if_none, transient_only

RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": transient_only,
}


@task(name="find_due_contracts", **RETRIES)
def find_due_contracts(database: str | None, process_now: datetime) -> list[int]:
    """List the active contracts due to renew or to end by process_now."""
    with unit_of_work(engine_for(database)) as session:
        return renewal.due_contract_ids(session, process_now.date())


@task(name="renew_contract_batch", **RETRIES)
def renew_contract_batch(
    database: str | None, contract_ids: list[int], process_now: datetime
) -> RenewalResult:
    """Renew or end one batch of contracts in one transaction."""
    return renewal.renewal_batch(engine_for(database), contract_ids, process_now.date())


@task(name="retire_planned_schedules", **RETRIES)
def retire_planned_schedules(database: str | None) -> int:
    """Cancel forecast Invoicing Schedule lines that are materialized or no longer hold."""
    return renewal.retire_forecasts(engine_for(database))


@flow(name="contract-item-renewal")
def contract_item_renewal(
    process_now: datetime | None = None,
    database_block: str = "default",
    per_batch: int = 1_000,
) -> dict[str, Any]:
    """Cn285 Contract Item Renewal: renew or end the contracts due by process_now.

    process_now: Cn285 "Process Now", the run's only clock (naive UTC); now when empty.
    per_batch: contracts per transaction.
    """
    process_now = now_if_none(process_now)
    logger = get_run_logger()
    ids = find_due_contracts(database_block, process_now)
    logger.info("contract item renewal as of %s: %s contract(s) due", process_now, len(ids))
    total = RenewalResult()
    for number, start in enumerate(range(0, len(ids), per_batch), start=1):
        done = renew_contract_batch.with_options(name=f"renew_contract_batch-{number}")(
            database_block, ids[start : start + per_batch], process_now
        )
        logger.info(
            "batch %s: %s renewed, %s ended, %s planned line(s), %s failed",
            number,
            len(done.renewed),
            len(done.ended),
            done.planned_lines,
            len(done.failed),
        )
        for ref, reason in sorted(done.failed.items()):
            logger.warning("contract %s not processed: %s", ref, reason)
        total = total.merge(done)
    total.retired_lines = retire_planned_schedules(database_block)
    logger.info("%s forecast line(s) retired", total.retired_lines)
    return _report(process_now, len(ids), total)


def _report(process_now: datetime, due: int, result: RenewalResult) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    rows: list[dict[str, Any]] = [
        {"measure": "process_now", "value": process_now.isoformat()},
        {"measure": "contracts due", "value": due},
        {"measure": "renewed", "value": len(result.renewed)},
        {"measure": "ended", "value": len(result.ended)},
        {"measure": "planned IS lines", "value": result.planned_lines},
        {"measure": "items ended", "value": result.items_ended},
        {"measure": "end-of-term credits", "value": result.credits},
        {"measure": "planned IS lines retired", "value": result.retired_lines},
        {"measure": "failed", "value": len(result.failed)},
    ]
    rows += [
        {"measure": f"renewed {ref}", "value": f"until {end.isoformat()}"}
        for ref, end in sorted(result.renewed.items())
    ]
    rows += [
        {"measure": f"ended {ref}", "value": f"on {end.isoformat()}"}
        for ref, end in sorted(result.ended.items())
    ]
    rows += [
        {"measure": f"failed {ref}", "value": why} for ref, why in sorted(result.failed.items())
    ]
    create_table_artifact(
        rows,
        key="contract-item-renewal-summary",
        description=f"Contract item renewal {process_now.isoformat()}",
    )
    return {row["measure"]: row["value"] for row in rows}
