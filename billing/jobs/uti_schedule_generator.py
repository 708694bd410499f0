"""The Cn285 UTI Schedule Generator daemon, defined once.

    find_uti_accounts -> collect_uti_batch-1 -> collect_uti_batch-2 -> ...

Collects the pending usage of UTI items stamped before *Process Now* (Pending -> Collected)
into ``calculated``, immediate Invoicing Schedule lines, ``per_batch`` accounts per
transaction, and bills early the usage of accounts past their usage threshold
(``billing.ops.thresholds``); the Billing daemon then invoices them. An account that cannot be
rated is recorded in ``billing_issues`` under the run id and skipped. The rules are
``billing.ops.uti`` (docs/daemons.md). The Prefect flow ``flows/uti_schedule_generator.py``
runs this job with ``PrefectRunner``; ``run_uti_schedule_generator`` runs it in process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from billing.jobs.database import Database, engine_of
from billing.jobs.runner import Call, InProcessRunner, Runner, batches_in_order
from billing.ops import uti
from billing.ops.uti import UtiResult
from billing.store.db import unit_of_work

PROGRESS = (("finding usage", 5), ("collecting", 95))
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class UtiJob:
    """What a run needs: the database, *Process Now* (usage stamped before it is collected),
    the run id its billing issues are recorded under, and accounts per transaction."""

    database: Database
    process_now: datetime
    run_id: str
    per_batch: int = 2_000


# ---- the steps: each opens its unit of work and commits before it returns; none retries ----


def find_uti_accounts(database: Database, process_now: datetime) -> list[int]:
    """The accounts with pending UTI usage stamped before ``process_now``, and those with a
    usage threshold and usage not billed yet (``billing.ops.thresholds``)."""
    with unit_of_work(engine_of(database)) as session:
        return uti.accounts_to_process(session, process_now)


def collect_uti_batch(
    database: Database, account_ids: list[int], process_now: datetime, run_id: str
) -> UtiResult:
    """Collect one batch of accounts' UTI usage into immediate charges."""
    return uti.uti_batch(engine_of(database), account_ids, process_now, run_id)


# ---- the job ----


def uti_schedule_generator(
    runner: Runner, job: UtiJob, log: logging.Logger | logging.LoggerAdapter = LOG
) -> UtiResult:
    """Find the accounts with usage, then collect it batch by batch."""
    ids = runner.step(Call("find_uti_accounts", find_uti_accounts, (job.database, job.process_now)))
    runner.progress("finding usage", note=f"{len(ids)} account(s) with usage")
    log.info("UTI schedule generator as of %s: %s account(s) with usage", job.process_now, len(ids))
    total = UtiResult()
    for number, done in batches_in_order(
        runner,
        "collect_uti_batch",
        collect_uti_batch,
        ids,
        job.per_batch,
        lambda batch: (job.database, batch, job.process_now, job.run_id),
        "collecting",
    ):
        log.info(
            "batch %s: %s usage record(s) collected into %s IS line(s), %s held beyond the late "
            "usage window, %s account(s) past their usage threshold billed early in %s IS "
            "line(s), %s account(s) failed",
            number,
            done.collected,
            done.charges,
            done.held,
            done.threshold_accounts,
            done.threshold_charges,
            len(done.failed),
        )
        total = total.merge(done)
    return total


def run_uti_schedule_generator(
    database: Database, process_now: datetime, run_id: str, *, per_batch: int = 2_000
) -> UtiResult:
    """The whole daemon in this process (no Prefect)."""
    return uti_schedule_generator(
        InProcessRunner(), UtiJob(database, process_now, run_id, per_batch)
    )
