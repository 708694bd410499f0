"""uti-schedule-generator: the Cn285 UTI Schedule Generator daemon as a Prefect flow.

Collects the pending usage of UTI items stamped before *Process Now* (Pending -> Collected)
into ``calculated``, immediate Invoicing Schedule lines, batch by batch; the Billing daemon
then invoices them. See billing/ops/uti.py and docs/daemons.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.context import get_run_context
from prefect.tasks import exponential_backoff

from billing.ops import uti
from billing.ops.run_report import share, shown
from billing.ops.uti import UtiResult
from billing.store.db import unit_of_work
from flows.report import Measures, RunProgress
from flows.runtime import (
    NOT_GIVEN,
    DaemonFailed,
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


@task(name="find_uti_accounts", **RETRIES)
def find_uti_accounts(database: str | None, process_now: datetime) -> list[int]:
    """List the accounts with pending UTI usage stamped before process_now."""
    with unit_of_work(engine_for(database)) as session:
        return uti.pending_uti_accounts(session, process_now)


@task(name="collect_uti_batch", **RETRIES)
def collect_uti_batch(
    database: str | None, account_ids: list[int], process_now: datetime, run_id: str
) -> UtiResult:
    """Collect one batch of accounts' UTI usage into immediate charges."""
    return uti.uti_batch(engine_for(database), account_ids, process_now, run_id)


@flow(name="uti-schedule-generator", flow_run_name=timed_run_name)
def uti_schedule_generator(
    process_now: RunMoment = NOT_GIVEN,
    database_block: str = "default",
    per_batch: int = 2_000,
) -> dict[str, Any]:
    """Cn285 UTI Schedule Generator: usage before process_now becomes calculated IS lines.

    Args:
        process_now: Cn285 "Process Now" (UTC); it must be later than the usage to collect.
            Leave it empty for the moment the run was scheduled for (now, by hand).
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
        per_batch: Accounts collected per transaction.
    """
    process_now = run_moment(process_now)
    logger = get_run_logger()
    progress = RunProgress(
        "uti-schedule-generator-progress", f"{TITLE} {shown(process_now)}", PROGRESS
    )
    run_id = str(get_run_context().flow_run.id)
    ids = find_uti_accounts(database_block, process_now)
    progress.step("finding usage", note=f"{len(ids)} account(s) with usage")
    logger.info("UTI schedule generator as of %s: %s account(s) with usage", process_now, len(ids))
    total = UtiResult()
    batches = range(0, len(ids), per_batch)
    for number, start in enumerate(batches, start=1):
        done = collect_uti_batch.with_options(name=f"collect_uti_batch-{number}")(
            database_block, ids[start : start + per_batch], process_now, run_id
        )
        logger.info(
            "batch %s: %s usage record(s) collected into %s IS line(s), %s account(s) failed",
            number,
            done.collected,
            done.charges,
            len(done.failed),
        )
        total = total.merge(done)
        progress.step("collecting", share(number, len(batches)), note=f"batch {number} done")
    summary = _report(process_now, total)
    if total.failed:
        names = ", ".join(str(a) for a in sorted(total.failed)[:20])
        failure = DaemonFailed(
            f"{len(total.failed)} account(s) failed: {names}. See billing_issues."
        )
        progress.note(f"stopped: {failure}")
        raise failure
    progress.done()
    return summary


TITLE = "UTI schedule generator"
PROGRESS = (("finding usage", 5), ("collecting", 95))


def _report(process_now: datetime, result: UtiResult) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("accounts", result.accounts)
    measures.add("usage collected", result.collected)
    measures.add("IS lines calculated", result.charges)
    measures.add("failed", len(result.failed))
    for account, why in sorted(result.failed.items()):
        measures.add(f"failed account {account}", why)
    return measures.publish("uti-schedule-generator-summary", f"{TITLE} {shown(process_now)}")
