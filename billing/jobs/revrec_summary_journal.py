"""The Cn285 RevRec Summary Journal daemon, defined once.

    schedule_revenue_batch-1 -> schedule_revenue_batch-2 -> ... -> write_summary_journal

For a year and month (the seed's ``model.summary_journal_daemon(year, month)``), every newly
invoiced bill line gets its monthly revenue shares, ``per_batch`` lines per transaction
(keyset batches: each batch says where the next one starts), then the month's summary
journal is written (draft), and posted when asked. The rules are ``billing.ops.revrec``
(docs/revrec.md). The Prefect flow ``flows/revrec_summary_journal.py`` runs this job with
``PrefectRunner``; ``run_revrec_summary_journal`` runs it in process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from billing.jobs.database import Database, engine_of
from billing.jobs.runner import Call, InProcessRunner, Runner
from billing.ops import revrec
from billing.ops.revrec import JournalResult, ScheduleResult
from billing.store.db import unit_of_work

PROGRESS = (("scheduling revenue", 80), ("journal", 20))
LOG = logging.getLogger(__name__)


def month_to_journal(year: int | None, month: int | None, today: date | None) -> tuple[int, int]:
    """The month a run journals: ``year`` and ``month`` when both are given, the month before
    ``today`` when neither is; one without the other is refused."""
    if (year is None) != (month is None):
        raise ValueError("give both year and month, or neither (the previous month)")
    if year is None or month is None:
        if today is None:
            raise ValueError("no year and month, and no date to take the previous month of")
        return revrec.previous_month(today)
    return int(year), int(month)


@dataclass(frozen=True)
class RevRecJob:
    """What a run needs: the database, the month, whether to post it (and the posting date,
    the run's date), and bill lines scheduled per transaction."""

    database: Database
    year: int
    month: int
    post: bool = False
    posted_on: date | None = None
    per_batch: int = 20_000

    def __post_init__(self) -> None:
        revrec.check_month(self.year, self.month)


@dataclass
class RevRecResult:
    scheduled: ScheduleResult
    journal: JournalResult


# ---- the steps: each opens its unit of work and commits before it returns; none retries ----


def schedule_revenue_batch(
    database: Database, after_id: int, per_batch: int
) -> tuple[ScheduleResult, int | None]:
    """Give one batch of invoiced lines their monthly revenue shares; where the next starts."""
    with unit_of_work(engine_of(database)) as session:
        return revrec.schedule_lines(session, after_id=after_id, limit=per_batch)


def journal_month(
    database: Database, year: int, month: int, post: bool, posted_on: date | None
) -> JournalResult:
    """Write the month's summary journal from its shares, and post it if asked."""
    with unit_of_work(engine_of(database)) as session:
        return revrec.summary_journal(session, year, month, post=post, posted_on=posted_on)


# ---- the job ----


def revrec_summary_journal(
    runner: Runner, job: RevRecJob, log: logging.Logger | logging.LoggerAdapter = LOG
) -> RevRecResult:
    """Schedule every invoiced line without shares, batch by batch, then the journal."""
    scheduled = ScheduleResult()
    after: int | None = 0
    number = 0
    while after is not None:
        number += 1
        done, after = runner.step(
            Call(
                f"schedule_revenue_batch-{number}",
                schedule_revenue_batch,
                (job.database, after, job.per_batch),
            )
        )
        if done.lines or done.failed:
            log.info(
                "batch %s: %s line(s) scheduled into %s share(s), %s failed",
                number,
                done.lines,
                done.shares,
                len(done.failed),
            )
        scheduled = scheduled.merge(done)
    runner.progress("scheduling revenue", note=f"{scheduled.lines} line(s) scheduled")
    journal = runner.step(
        Call(
            "write_summary_journal",
            journal_month,
            (job.database, job.year, job.month, job.post, job.posted_on),
        )
    )
    runner.progress("journal", note=f"{journal.status}, {len(journal.entries)} entries")
    if journal.locked:
        log.warning(
            "%04d-%02d is locked (%s): nothing changed", job.year, job.month, journal.status
        )
    log.info(
        "%04d-%02d %s: %s entries, recognized %s",
        job.year,
        job.month,
        journal.status,
        len(journal.entries),
        journal.recognized,
    )
    return RevRecResult(scheduled, journal)


def run_revrec_summary_journal(
    database: Database,
    year: int,
    month: int,
    *,
    post: bool = False,
    posted_on: date | None = None,
    per_batch: int = 20_000,
) -> RevRecResult:
    """The whole daemon in this process (no Prefect)."""
    job = RevRecJob(database, year, month, post, posted_on, per_batch)
    return revrec_summary_journal(InProcessRunner(), job)
