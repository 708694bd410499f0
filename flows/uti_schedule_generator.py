"""uti-schedule-generator: the Cn285 UTI Schedule Generator daemon as a Prefect flow.

The job (``billing.jobs.uti_schedule_generator``) collects the pending usage of UTI items
stamped before *Process Now* (Pending -> Collected) into ``calculated``, immediate Invoicing
Schedule lines, batch by batch, and bills early the usage of accounts past their usage
threshold; the Billing daemon then invoices them. See billing/ops/uti.py
and docs/daemons.md. This flow is its thin adapter: parameters in, the job run by
``PrefectRunner``, artifacts out; the run fails naming the accounts that failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from billing.jobs.uti_schedule_generator import PROGRESS, UtiJob
from billing.jobs.uti_schedule_generator import uti_schedule_generator as uti_job
from billing.ops.run_report import shown
from billing.ops.uti import UtiResult
from flows.jobs import PrefectRunner
from flows.report import Measures, RunProgress
from flows.runtime import (
    NOT_GIVEN,
    DaemonFailed,
    RunMoment,
    resolve_database_url,
    run_moment,
    timed_run_name,
)

TITLE = "UTI schedule generator"


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
    progress = RunProgress(
        "uti-schedule-generator-progress", f"{TITLE} {shown(process_now)}", PROGRESS
    )
    job = UtiJob(
        resolve_database_url(database_block),
        process_now,
        run_id=str(get_run_context().flow_run.id),
        per_batch=per_batch,
    )
    total = uti_job(PrefectRunner(progress), job, get_run_logger())
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


def _report(process_now: datetime, result: UtiResult) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("accounts", result.accounts)
    measures.add("usage collected", result.collected)
    measures.add("IS lines calculated", result.charges)
    measures.add("late usage held", result.held)
    measures.add("accounts over usage threshold", result.threshold_accounts)
    measures.add("threshold IS lines calculated", result.threshold_charges)
    measures.add("threshold usage collected", result.threshold_records)
    for currency, amount in sorted(result.threshold_amounts.items()):
        measures.money(f"threshold usage {currency}", amount, currency)
    measures.add("failed", len(result.failed))
    for account, why in sorted(result.failed.items()):
        measures.add(f"failed account {account}", why)
    return measures.publish("uti-schedule-generator-summary", f"{TITLE} {shown(process_now)}")
