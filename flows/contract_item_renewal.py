"""contract-item-renewal: the Cn285 Contract Item Renewal daemon as a Prefect flow.

Renews the auto-renewing contracts past their notice deadline and forecasts the new term's
Invoicing Schedules; ends the others at their term end; then retires forecast lines that bill
day has materialized. See billing/ops/renewal.py for the rules and docs/daemons.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff

from billing.ops import renewal
from billing.ops.renewal import RenewalResult
from billing.ops.run_report import share, shown
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
    logger = get_run_logger()
    progress = RunProgress(
        "contract-item-renewal-progress", f"{TITLE} {shown(process_now)}", PROGRESS
    )
    ids = find_due_contracts(database_block, process_now)
    progress.step("finding contracts", note=f"{len(ids)} contract(s) due")
    logger.info("contract item renewal as of %s: %s contract(s) due", process_now, len(ids))
    total = RenewalResult()
    batches = range(0, len(ids), per_batch)
    for number, start in enumerate(batches, start=1):
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
        progress.step("renewing", share(number, len(batches)), note=f"batch {number} done")
    total.retired_lines = retire_planned_schedules(database_block)
    progress.step("retiring forecasts", note=f"{total.retired_lines} forecast line(s) retired")
    logger.info("%s forecast line(s) retired", total.retired_lines)
    summary = _report(process_now, len(ids), total)
    progress.done()
    return summary


TITLE = "Contract item renewal"
PROGRESS = (("finding contracts", 5), ("renewing", 85), ("retiring forecasts", 10))


def _report(process_now: datetime, due: int, result: RenewalResult) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("contracts due", due)
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
