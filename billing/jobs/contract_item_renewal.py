"""The Cn285 Contract Item Renewal daemon, defined once.

    find_due_contracts -> renew_contract_batch-1 -> ... -> retire_planned_schedules

Renews the auto-renewing contracts past their notice deadline and forecasts the new term's
Invoicing Schedules; ends the others at their term end (``per_batch`` contracts per
transaction); then retires the forecast lines that bill day has materialized. The rules are
``billing.ops.renewal`` (docs/daemons.md). The Prefect flow ``flows/contract_item_renewal.py``
runs this job with ``PrefectRunner``; ``run_contract_item_renewal`` runs it in process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from billing.jobs.database import Database, engine_of
from billing.jobs.runner import Call, InProcessRunner, Runner, batches_in_order
from billing.ops import renewal
from billing.ops.renewal import RenewalResult
from billing.store.db import unit_of_work

PROGRESS = (("finding contracts", 5), ("renewing", 85), ("retiring forecasts", 10))
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenewalJob:
    """What a run needs: the database, *Process Now* (its date decides what is due) and how
    many contracts are renewed or ended per transaction."""

    database: Database
    process_now: datetime
    per_batch: int = 1_000


@dataclass
class RenewalRun:
    due: int = 0
    result: RenewalResult = field(default_factory=RenewalResult)


# ---- the steps: each opens its unit of work and commits before it returns; none retries ----


def find_due_contracts(database: Database, process_now: datetime) -> list[int]:
    """The active contracts due to renew or to end by ``process_now``."""
    with unit_of_work(engine_of(database)) as session:
        return renewal.due_contract_ids(session, process_now.date())


def renew_contract_batch(
    database: Database, contract_ids: list[int], process_now: datetime
) -> RenewalResult:
    """Renew or end one batch of contracts in one transaction."""
    return renewal.renewal_batch(engine_of(database), contract_ids, process_now.date())


def retire_planned_schedules(database: Database) -> int:
    """Cancel forecast Invoicing Schedule lines that are materialized or no longer hold."""
    return renewal.retire_forecasts(engine_of(database))


# ---- the job ----


def contract_item_renewal(
    runner: Runner, job: RenewalJob, log: logging.Logger | logging.LoggerAdapter = LOG
) -> RenewalRun:
    """Find the due contracts, renew or end them batch by batch, then retire forecasts."""
    ids = runner.step(
        Call("find_due_contracts", find_due_contracts, (job.database, job.process_now))
    )
    runner.progress("finding contracts", note=f"{len(ids)} contract(s) due")
    log.info("contract item renewal as of %s: %s contract(s) due", job.process_now, len(ids))
    total = RenewalResult()
    for number, done in batches_in_order(
        runner,
        "renew_contract_batch",
        renew_contract_batch,
        ids,
        job.per_batch,
        lambda batch: (job.database, batch, job.process_now),
        "renewing",
    ):
        log.info(
            "batch %s: %s renewed, %s ended, %s planned line(s), %s failed",
            number,
            len(done.renewed),
            len(done.ended),
            done.planned_lines,
            len(done.failed),
        )
        for ref, reason in sorted(done.failed.items()):
            log.warning("contract %s not processed: %s", ref, reason)
        total = total.merge(done)
    total.retired_lines = runner.step(
        Call("retire_planned_schedules", retire_planned_schedules, (job.database,))
    )
    runner.progress("retiring forecasts", note=f"{total.retired_lines} forecast line(s) retired")
    log.info("%s forecast line(s) retired", total.retired_lines)
    return RenewalRun(due=len(ids), result=total)


def run_contract_item_renewal(
    database: Database, process_now: datetime, *, per_batch: int = 1_000
) -> RenewalRun:
    """The whole daemon in this process (no Prefect)."""
    return contract_item_renewal(InProcessRunner(), RenewalJob(database, process_now, per_batch))
