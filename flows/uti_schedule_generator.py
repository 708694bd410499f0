"""uti-schedule-generator: the Cn285 UTI Schedule Generator daemon as a Prefect flow.

Collects the pending usage of UTI items stamped before *Process Now* (Pending -> Collected)
into ``calculated``, immediate Invoicing Schedule lines, batch by batch; the Billing daemon
then invoices them. See billing/uti.py and docs/daemons.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.context import get_run_context
from prefect.tasks import exponential_backoff

from billing import uti
from billing.db import unit_of_work
from billing.uti import UtiResult
from flows.runtime import DaemonFailed, engine_for, now_if_none, transient_only

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


@flow(name="uti-schedule-generator")
def uti_schedule_generator(
    process_now: datetime | None = None,
    database_block: str = "default",
    per_batch: int = 2_000,
) -> dict[str, Any]:
    """Cn285 UTI Schedule Generator: usage before process_now becomes calculated IS lines.

    process_now: Cn285 "Process Now" (naive UTC); it must be later than the usage to collect.
    per_batch: accounts per transaction.
    """
    process_now = now_if_none(process_now)
    logger = get_run_logger()
    run_id = str(get_run_context().flow_run.id)
    ids = find_uti_accounts(database_block, process_now)
    logger.info("UTI schedule generator as of %s: %s account(s) with usage", process_now, len(ids))
    total = UtiResult()
    for number, start in enumerate(range(0, len(ids), per_batch), start=1):
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
    summary = _report(process_now, total)
    if total.failed:
        names = ", ".join(str(a) for a in sorted(total.failed)[:20])
        raise DaemonFailed(f"{len(total.failed)} account(s) failed: {names}. See billing_issues.")
    return summary


def _report(process_now: datetime, result: UtiResult) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log): what changed, with counts."""
    rows: list[dict[str, Any]] = [
        {"measure": "process_now", "value": process_now.isoformat()},
        {"measure": "accounts", "value": result.accounts},
        {"measure": "usage collected", "value": result.collected},
        {"measure": "IS lines calculated", "value": result.charges},
        {"measure": "failed", "value": len(result.failed)},
    ]
    rows += [
        {"measure": f"failed account {a}", "value": why} for a, why in sorted(result.failed.items())
    ]
    create_table_artifact(
        rows,
        key="uti-schedule-generator-summary",
        description=f"UTI schedule generator {process_now.isoformat()}",
    )
    return {row["measure"]: row["value"] for row in rows}
