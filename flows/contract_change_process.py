"""contract-change-process: the Cn285 Contract Change Process daemon as a Prefect flow.

Applies the pending change requests effective by *Process Now* (quantity, price, item swap,
termination), batch by batch; see billing/ops/changes.py for the rules and docs/daemons.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff

from billing.ops import changes
from billing.ops.changes import ChangeResult
from billing.ops.run_report import share, shown, total_applied
from billing.store.db import unit_of_work
from flows.report import Measures, RunProgress
from flows.runtime import (
    NOT_GIVEN,
    RunMoment,
    engine_for,
    run_moment,
    timed_run_name,
    transient_only,
)

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


@flow(name="contract-change-process", flow_run_name=timed_run_name)
def contract_change_process(
    process_now: RunMoment = NOT_GIVEN,
    database_block: str = "default",
    per_batch: int = 500,
) -> dict[str, Any]:
    """Cn285 Contract Change Process: apply the change requests due by process_now.

    Args:
        process_now: Cn285 "Process Now", the run's only clock (UTC). Leave it empty for the
            moment the run was scheduled for (now, for a run started by hand).
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
        per_batch: Change requests applied per transaction.
    """
    process_now = run_moment(process_now)
    logger = get_run_logger()
    progress = RunProgress(
        "contract-change-process-progress", f"{TITLE} {shown(process_now)}", PROGRESS
    )
    ids = find_due_change_requests(database_block, process_now)
    progress.step("finding requests", note=f"{len(ids)} request(s) due")
    logger.info("contract change process as of %s: %s request(s) due", process_now, len(ids))
    total = ChangeResult()
    batches = range(0, len(ids), per_batch)
    for number, start in enumerate(batches, start=1):
        batch = ids[start : start + per_batch]
        done = apply_change_batch.with_options(name=f"apply_change_batch-{number}")(
            database_block, batch, process_now
        )
        logger.info(
            "batch %s: %s applied, %s rejected, %s adjustment(s), %s item(s) created",
            number,
            total_applied(done.applied),
            len(done.rejected),
            done.adjustments,
            done.items_created,
        )
        for ref, reason in sorted(done.rejected.items()):
            logger.warning("change request %s rejected: %s", ref, reason)
        total = total.merge(done)
        progress.step("applying", share(number, len(batches)), note=f"batch {number} applied")
    summary = _report(process_now, len(ids), total)
    progress.done()
    return summary


TITLE = "Contract change process"
PROGRESS = (("finding requests", 5), ("applying", 95))


def _report(process_now: datetime, due: int, result: ChangeResult) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("requests due", due)
    measures.add("applied", total_applied(result.applied))
    for kind, how_many in sorted(result.applied.items()):
        measures.add(f"applied {kind}", how_many)
    measures.add("rejected", len(result.rejected))
    measures.add("adjustment charges", result.adjustments)
    measures.add("cancellation credits", result.credits)
    measures.add("items created", result.items_created)
    for ref, why in sorted(result.rejected.items()):
        measures.add(f"rejected {ref}", why)
    return measures.publish("contract-change-process-summary", f"{TITLE} {shown(process_now)}")
