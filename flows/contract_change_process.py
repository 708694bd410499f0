"""contract-change-process: the Cn285 Contract Change Process daemon as a Prefect flow.

Applies the pending change requests effective by *Process Now* (quantity, price, item swap,
termination), batch by batch; see billing/changes.py for the rules and docs/daemons.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.tasks import exponential_backoff

from billing import changes
from billing.changes import ChangeResult
from billing.db import unit_of_work
from flows.runtime import engine_for, now_if_none, transient_only

RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": transient_only,
}


@task(name="find_due_change_requests", **RETRIES)
def find_due_change_requests(database: str | None, process_now: datetime) -> list[int]:
    """List the pending change requests effective by process_now, in the order they apply."""
    with unit_of_work(engine_for(database)) as session:
        return changes.due_request_ids(session, process_now.date())


@task(name="apply_change_batch", **RETRIES)
def apply_change_batch(
    database: str | None, request_ids: list[int], process_now: datetime
) -> ChangeResult:
    """Apply one batch of change requests in one transaction."""
    with unit_of_work(engine_for(database)) as session:
        return changes.apply_change_requests(session, request_ids, process_now.date())


@flow(name="contract-change-process")
def contract_change_process(
    process_now: datetime | None = None,
    database_block: str = "default",
    per_batch: int = 500,
) -> dict[str, Any]:
    """Cn285 Contract Change Process: apply the change requests due by process_now.

    process_now: Cn285 "Process Now", the run's only clock (naive UTC); now when empty.
    per_batch: change requests per transaction.
    """
    process_now = now_if_none(process_now)
    logger = get_run_logger()
    ids = find_due_change_requests(database_block, process_now)
    logger.info("contract change process as of %s: %s request(s) due", process_now, len(ids))
    total = ChangeResult()
    for number, start in enumerate(range(0, len(ids), per_batch), start=1):
        batch = ids[start : start + per_batch]
        done = apply_change_batch.with_options(name=f"apply_change_batch-{number}")(
            database_block, batch, process_now
        )
        logger.info(
            "batch %s: %s applied, %s rejected, %s adjustment(s), %s item(s) created",
            number,
            sum(done.applied.values()),
            len(done.rejected),
            done.adjustments,
            done.items_created,
        )
        for ref, reason in sorted(done.rejected.items()):
            logger.warning("change request %s rejected: %s", ref, reason)
        total = total.merge(done)
    return _report(process_now, len(ids), total)


def _report(process_now: datetime, due: int, result: ChangeResult) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    rows: list[dict[str, Any]] = [
        {"measure": "process_now", "value": process_now.isoformat()},
        {"measure": "requests due", "value": due},
        {"measure": "applied", "value": sum(result.applied.values())},
    ]
    rows += [
        {"measure": f"applied {kind}", "value": count}
        for kind, count in sorted(result.applied.items())
    ]
    rows += [
        {"measure": "rejected", "value": len(result.rejected)},
        {"measure": "adjustment charges", "value": result.adjustments},
        {"measure": "cancellation credits", "value": result.credits},
        {"measure": "items created", "value": result.items_created},
    ]
    rows += [
        {"measure": f"rejected {ref}", "value": why} for ref, why in sorted(result.rejected.items())
    ]
    create_table_artifact(
        rows,
        key="contract-change-process-summary",
        description=f"Contract change process {process_now.isoformat()}",
    )
    return {row["measure"]: row["value"] for row in rows}
