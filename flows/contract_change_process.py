"""contract-change-process: the Cn285 Contract Change Process daemon as a Prefect flow.

The job (``billing.jobs.contract_change_process``) applies the pending change requests
effective by *Process Now* (quantity, price, item swap, termination), batch by batch; see
billing/ops/changes.py for the rules and docs/daemons.md. This flow is its thin adapter:
parameters in, the job run by ``PrefectRunner``, artifacts out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from billing.jobs.contract_change_process import (
    PROGRESS,
    ChangeProcessJob,
    ChangeProcessResult,
)
from billing.jobs.contract_change_process import (
    contract_change_process as change_process_job,
)
from billing.ops.run_report import shown, total_applied
from flows.jobs import PrefectRunner
from flows.report import Measures, RunProgress
from flows.runtime import NOT_GIVEN, RunMoment, resolve_database_url, run_moment, timed_run_name

TITLE = "Contract change process"


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
    progress = RunProgress(
        "contract-change-process-progress", f"{TITLE} {shown(process_now)}", PROGRESS
    )
    job = ChangeProcessJob(resolve_database_url(database_block), process_now, per_batch)
    result = change_process_job(PrefectRunner(progress), job, get_run_logger())
    summary = _report(process_now, result)
    progress.done()
    return summary


def _report(process_now: datetime, run: ChangeProcessResult) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    result = run.result
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("requests due", run.due)
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
