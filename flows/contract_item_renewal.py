"""contract-item-renewal: the Cn285 Contract Item Renewal daemon as a Prefect flow.

The job (``billing.jobs.contract_item_renewal``) renews the auto-renewing contracts past
their notice deadline and forecasts the new term's Invoicing Schedules, ends the others at
their term end, then retires forecast lines that bill day has materialized; see
billing/ops/renewal.py for the rules and docs/daemons.md. This flow is its thin adapter:
parameters in, the job run by ``PrefectRunner``, artifacts out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import Task, flow, get_run_logger

from billing.jobs import contract_item_renewal as renewal_job
from billing.jobs.contract_item_renewal import PROGRESS, RenewalJob, RenewalRun
from billing.jobs.runner import Call
from billing.ops.run_report import shown
from flows.jobs import PrefectRunner, as_task
from flows.report import Measures, RunProgress
from flows.runtime import NOT_GIVEN, RunMoment, resolve_database_url, run_moment, timed_run_name

TITLE = "Contract item renewal"


def _retire_by_block(database_block: str | None) -> int:
    return renewal_job.retire_planned_schedules(resolve_database_url(database_block))


retire_planned_schedules: Task[..., int] = as_task(
    Call("retire_planned_schedules", _retire_by_block)
)
"""The job's ``retire_planned_schedules`` step as a task taking a database block name, for
flows that call it on their own (the Billing daemon flow before it became a job)."""


@flow(name="contract-item-renewal", flow_run_name=timed_run_name)
def contract_item_renewal(
    process_now: RunMoment = NOT_GIVEN,
    database_block: str = "default",
    per_batch: int = 1_000,
) -> dict[str, Any]:
    """Cn285 Contract Item Renewal: renew or end the contracts due by process_now.

    Args:
        process_now: Cn285 "Process Now", the run's only clock (UTC). Leave it empty for the
            moment the run was scheduled for (now, for a run started by hand).
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
        per_batch: Contracts renewed or ended per transaction.
    """
    process_now = run_moment(process_now)
    progress = RunProgress(
        "contract-item-renewal-progress", f"{TITLE} {shown(process_now)}", PROGRESS
    )
    job = RenewalJob(resolve_database_url(database_block), process_now, per_batch)
    run = renewal_job.contract_item_renewal(PrefectRunner(progress), job, get_run_logger())
    summary = _report(process_now, run)
    progress.done()
    return summary


def _report(process_now: datetime, run: RenewalRun) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    result = run.result
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("contracts due", run.due)
    measures.add("renewed", len(result.renewed))
    measures.add("ended", len(result.ended))
    measures.add("planned IS lines", result.planned_lines)
    measures.add("items ended", result.items_ended)
    measures.add("end-of-term credits", result.credits)
    measures.add("planned IS lines retired", result.retired_lines)
    measures.add("failed", len(result.failed))
    for ref, end in sorted(result.renewed.items()):
        measures.add(f"renewed {ref}", f"until {shown(end)}")
    for ref, end in sorted(result.ended.items()):
        measures.add(f"ended {ref}", f"on {shown(end)}")
    for ref, why in sorted(result.failed.items()):
        measures.add(f"failed {ref}", why)
    return measures.publish("contract-item-renewal-summary", f"{TITLE} {shown(process_now)}")
