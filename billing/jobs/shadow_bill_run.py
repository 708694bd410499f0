"""The shadow bill run, defined once: bill day's billing as a dry run over the whole due
population, compared account by account with the previous cycle.

    find_due_units -> shadow_batch-1, shadow_batch-2, ... (at most ``children`` at once)
      -> compare (pure) -> the CSV

Each ``shadow_batch`` reads its units' previous cycle (``billing.ops.shadow.previous_cycle``),
then bills them with the real bill run's code (``billing.ops.billrun.bill_batch`` with
``dry_run=True``): same claim, snapshot, plan and write, in one transaction that reads back
the bills it made and rolls back. Nothing is committed; on PostgreSQL the id sequences the
write drew from have moved on (``nextval`` is not transactional), which leaves gaps in ids and
nothing else. Deferred actions due on the date are not run (a dry run never runs them), so
the shadow bills what is due before them.

The comparison (``billing.domain.shadow``) names the accounts new, missing, changed beyond
the thresholds, or failed, and the totals per currency. ``shadow_gate`` puts it in front of
a real bill day (``BillDayJob.gate``): over the limits, the run stops before any step writes.

The Prefect flow ``flows/shadow_bill_run.py`` runs this job with ``PrefectRunner``;
``run_shadow_bill_run`` and ``billing shadow`` run it in process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from billing.domain.shadow import (
    Billed,
    GateLimits,
    ShadowReport,
    Thresholds,
    compare,
    gate_problem,
)
from billing.jobs.bill_day import BillDayJob, find_due_units
from billing.jobs.database import Database, engine_of
from billing.jobs.runner import Call, InProcessRunner, Runner
from billing.ops import run_report
from billing.ops.billrun import BatchResult, bill_batch
from billing.ops.shadow import billed_in_run, previous_cycle, write_csv
from billing.store.db import unit_of_work

PROGRESS = (("shadow billing", 90), ("shadow comparison", 10))
CSV_NAME = "shadow-bill-run.csv"


class ShadowGateStopped(RuntimeError):
    """The shadow run found more changes than the gate allows: the real run wrote nothing."""


@dataclass(frozen=True)
class ShadowJob:
    """What a shadow run needs: the database, the date, bill day's batching, the accounts
    (None: every due account), whose VAT rules apply, the thresholds, and where the CSV goes
    (None: no file)."""

    database: Database
    as_of: date
    run_id: str
    per_batch: int = 20_000
    children: int = 1
    fetch_size: int = 150_000
    account_refs: Sequence[str] | None = None
    seller_country: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    csv_path: Path | None = None


@dataclass(frozen=True)
class ShadowBatch:
    """One batch: what its dry run did, its units' previous cycle, and what it billed now."""

    billing: BatchResult
    previous: tuple[Billed, ...]
    now: tuple[Billed, ...]


@dataclass(frozen=True)
class ShadowResult:
    """The dry run's counts and totals (every bill, immediate ones too), the comparison, and
    the CSV written (or None)."""

    billing: BatchResult
    report: ShadowReport
    csv_path: Path | None = None


def shadow_run_id(run_id: str) -> str:
    """The run id the dry run's bills carry: never one a real run's bills have."""
    return f"shadow:{run_id}"


# ---- the step: reads, then a dry run that commits nothing ----


def shadow_batch(
    database: Database,
    unit_ids: list[int],
    as_of: date,
    run_id: str,
    seller_country: str | None = None,
) -> ShadowBatch:
    """The previous cycle of a batch of due units, then the batch billed as a dry run."""
    engine = engine_of(database)
    with unit_of_work(engine) as session:
        previous = previous_cycle(session, unit_ids, as_of)
    now: list[Billed] = []

    def read_back(session: Session) -> None:
        now.extend(billed_in_run(session, run_id))  # each half's, when the batch is bisected

    billing = bill_batch(
        engine,
        unit_ids,
        as_of,
        run_id,
        dry_run=True,
        seller_country=seller_country,
        read_back=read_back,
    )
    return ShadowBatch(billing, tuple(previous), tuple(now))


# ---- the job ----


def _batch_calls(runner: Runner, job: ShadowJob, run_id: str) -> Iterator[Call]:
    """The batches as calls, made lazily as bill day makes them: due units fetched
    ``fetch_size`` ids at a time, ``per_batch`` to a batch."""
    after, number = 0, 0
    while True:
        ids = runner.step(
            Call(
                "find_due_units",
                find_due_units,
                (job.database, job.as_of, after, job.fetch_size, job.account_refs, ()),
            )
        )
        if not ids:
            return
        for start in range(0, len(ids), job.per_batch):
            number += 1
            yield Call(
                f"shadow_batch-{number}",
                shadow_batch,
                (
                    job.database,
                    ids[start : start + job.per_batch],
                    job.as_of,
                    run_id,
                    job.seller_country,
                ),
            )
        after = ids[-1]


def shadow_bill_run(runner: Runner, job: ShadowJob) -> ShadowResult:
    """Dry-run every due unit in batches, compare with the previous cycle, write the CSV."""
    run_id = shadow_run_id(job.run_id)
    billing = BatchResult()
    previous: list[Billed] = []
    now: list[Billed] = []
    for batch in runner.fan_out(_batch_calls(runner, job, run_id), at_most=job.children):
        billing = billing.merge(batch.billing)
        previous.extend(batch.previous)
        now.extend(batch.now)
        runner.progress(
            "shadow billing",
            run_report.batch_share(billing),
            f"shadow: {run_report.count(billing.billed)} of "
            f"{run_report.count(billing.units)} bill unit(s) billed (dry run)",
        )
    report = compare(job.as_of, previous, now, billing.failed, job.thresholds)
    path = write_csv(report, job.csv_path) if job.csv_path is not None else None
    runner.progress("shadow comparison", note=outcome(report))
    return ShadowResult(billing, report, path)


def outcome(report: ShadowReport) -> str:
    """``12 account(s) compared: 1 failed, 0 missing, 2 changed, 3 new``."""
    kinds = ", ".join(f"{run_report.count(n)} {kind}" for kind, n in report.counts.items())
    return f"{run_report.count(report.compared)} account(s) compared: {kinds}"


def run_shadow_bill_run(
    database: Database, as_of: date, run_id: str, **settings: Any
) -> ShadowResult:
    """The shadow run in this process, without Prefect."""
    return shadow_bill_run(InProcessRunner(), ShadowJob(database, as_of, run_id, **settings))


# ---- the gate in front of a real bill day ----


def shadow_gate(
    limits: GateLimits | None = None,
    thresholds: Thresholds | None = None,
    csv_dir: Path | None = None,
    publish: Callable[[ShadowResult], None] | None = None,
) -> Callable[[Runner, BillDayJob], None]:
    """``BillDayJob.gate``: the shadow run of the bill day's date, population and batching;
    ``publish`` is given its result (the flow's artifacts), then the run stops with
    ``ShadowGateStopped`` when the comparison is over ``limits``. The CSV goes to
    ``csv_dir/shadow-bill-run.csv`` when ``csv_dir`` is given."""

    def gate(runner: Runner, job: BillDayJob) -> None:
        shadow = ShadowJob(
            database=job.database,
            as_of=job.as_of,
            run_id=job.run_id,
            per_batch=job.per_batch,
            children=job.children,
            fetch_size=job.fetch_size,
            account_refs=job.account_refs,
            seller_country=job.vat_country,
            thresholds=thresholds or Thresholds(),
            csv_path=csv_dir / CSV_NAME if csv_dir is not None else None,
        )
        result = shadow_bill_run(runner, shadow)
        if publish is not None:
            publish(result)
        problem = gate_problem(result.report, limits or GateLimits())
        if problem is not None:
            raise ShadowGateStopped(problem)

    return gate
