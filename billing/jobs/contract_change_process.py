"""The Cn285 Contract Change Process daemon, defined once.

    find_due_change_requests -> apply_change_batch-1 -> apply_change_batch-2 -> ...

Applies the pending change requests effective by *Process Now* (quantity, price, item swap,
termination), ``per_batch`` per transaction, one batch after the other in the order they
apply (a later request may build on an earlier one). The rules are ``billing.ops.changes``
(docs/daemons.md). The Prefect flow ``flows/contract_change_process.py`` runs this job with
``PrefectRunner``; ``run_contract_change_process`` runs it in process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from billing.jobs.database import Database, engine_of
from billing.jobs.runner import Call, InProcessRunner, Runner, batches_in_order
from billing.ops import changes
from billing.ops.changes import ChangeResult
from billing.ops.run_report import total_applied
from billing.store.db import unit_of_work

PROGRESS = (("finding requests", 5), ("applying", 95))
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangeProcessJob:
    """What a run needs: the database, *Process Now* (its date is the effective date) and
    how many change requests are applied per transaction."""

    database: Database
    process_now: datetime
    per_batch: int = 500


@dataclass
class ChangeProcessResult:
    due: int = 0
    result: ChangeResult = field(default_factory=ChangeResult)


# ---- the steps: each opens its unit of work and commits before it returns; none retries ----


def find_due_change_requests(database: Database, process_now: datetime) -> list[int]:
    """The pending change requests effective by ``process_now``, in the order they apply."""
    with unit_of_work(engine_of(database)) as session:
        return changes.due_request_ids(session, process_now.date())


def apply_change_batch(
    database: Database, request_ids: list[int], process_now: datetime
) -> ChangeResult:
    """One batch of change requests in one transaction."""
    with unit_of_work(engine_of(database)) as session:
        return changes.apply_change_requests(session, request_ids, process_now.date())


# ---- the job ----


def contract_change_process(
    runner: Runner, job: ChangeProcessJob, log: logging.Logger | logging.LoggerAdapter = LOG
) -> ChangeProcessResult:
    """Find the due requests, then apply them batch by batch, in order."""
    ids = runner.step(
        Call("find_due_change_requests", find_due_change_requests, (job.database, job.process_now))
    )
    runner.progress("finding requests", note=f"{len(ids)} request(s) due")
    log.info("contract change process as of %s: %s request(s) due", job.process_now, len(ids))
    total = ChangeResult()
    for number, done in batches_in_order(
        runner,
        "apply_change_batch",
        apply_change_batch,
        ids,
        job.per_batch,
        lambda batch: (job.database, batch, job.process_now),
        "applying",
    ):
        log.info(
            "batch %s: %s applied, %s rejected, %s adjustment(s), %s item(s) created",
            number,
            total_applied(done.applied),
            len(done.rejected),
            done.adjustments,
            done.items_created,
        )
        for ref, reason in sorted(done.rejected.items()):
            log.warning("change request %s rejected: %s", ref, reason)
        total = total.merge(done)
    return ChangeProcessResult(due=len(ids), result=total)


def run_contract_change_process(
    database: Database, process_now: datetime, *, per_batch: int = 500
) -> ChangeProcessResult:
    """The whole daemon in this process (no Prefect)."""
    job = ChangeProcessJob(database, process_now, per_batch)
    return contract_change_process(InProcessRunner(), job)
