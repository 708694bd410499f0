"""Bill day, defined once: its steps and their order, run by any ``Runner``.

    deferred_actions -> apply_cancellations -> (notify_provisioning) -> bill_accounts_batch
    (fanned out, at most ``children`` at once, in catch-up passes) -> analyze_billed_tables
    -> number_invoices -> apply_wallets
      -+-> apply_cycle_fees  -+
       +-> collect_payments  -+-> post_billing_checks (gate) -> find_invoices_to_render
       +-> refund_payments   -+                               -> render_invoice_documents

``bill_day(runner, job)`` is the only place that states this order. The Prefect flow
(``flows/bill_day.py``) runs it with ``flows.jobs.PrefectRunner`` (a task run per step);
Python callers, the tests and the crash tests run it with ``InProcessRunner``.

Each step below is a plain function that opens its own unit of work and commits before it
returns; none retries by itself: the ``Retry`` of its ``Call`` is the only retry layer. What a
step needs from outside ``billing/`` (the Great Expectations gate, the provisioning webhook) is
given to the job as a callable.

``invoices`` runs alone before the three steps after it: numbering rewrites every new bill in
one statement and holds each bill's row lock until it commits, and a payment inserted beside
it checks its bill under a key-share lock, so collection beside numbering deadlocked
(1,000,000 accounts). Numbered bills also give the SEPA remittance texts their numbers.

``apply_wallets`` (prepaid credits, ``billing.ops.wallets``) runs alone after numbering, for
the same reason, and before collection: the credits pay the issued invoices first, and
collection collects only what they left due.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from billing.documents.model import invoice_ids
from billing.documents.render import RenderSettings, render_in_processes
from billing.documents.seller import Seller
from billing.failpoints import failpoint
from billing.jobs.batch_workers import BatchWorkers, WorkerLost, batch_processes
from billing.jobs.database import Database, engine_of
from billing.jobs.runner import (
    NO_RETRY,
    Call,
    InProcessRunner,
    Retry,
    Runner,
    transient_database_error,
)
from billing.ops import run_report
from billing.ops.billrun import BatchResult, bill_batch, due_unit_ids
from billing.ops.cycle_fees import CycleFeesResult, cancellations, cycle_fees
from billing.ops.deferred import DeferredResult, StatusChange, run_deferred_actions
from billing.ops.numbering import Numbered, assign_bill_numbers
from billing.ops.run_report import CurrencyTotals
from billing.ops.wallets import PAGE_SIZE, WalletsResult, apply_wallets_page, wallet_accounts
from billing.payments import collect, refund
from billing.payments.config import PaymentConfig
from billing.payments.errors import GatewayUnavailable
from billing.payments.gateway import PaymentGateway
from billing.store.db import unit_of_work
from billing.store.sqlkit import refresh_statistics

BILLED_TABLES = (
    "accounts",
    "bill_units",
    "bills",
    "billing_issues",
    "charges",
    "payments",
    "usage_records",
)
"""The tables billing rewrites: the steps after it plan their joins on fresh statistics."""

MAX_PASSES = 120


PROGRESS = (  # bill day's steps and their share of the progress bar (roughly, their time)
    ("deferred actions", 4),
    ("billing", 44),
    ("numbering", 4),
    ("prepaid credits", 2),
    ("cycle fees", 4),
    ("collection", 8),
    ("refunds", 4),
    ("checks", 12),
    ("documents", 14),
    ("e-mail queueing", 4),
)


class BillDayFailed(RuntimeError):
    """Some accounts failed: the run ends Failed and names them; the next run retries them."""


class PostBillingChecksFailed(RuntimeError):
    """The accuracy checks found bad rows: nothing is rendered or sent."""


class DocumentsFailed(RuntimeError):
    """Some invoices could not be rendered: the run ends Failed and names them."""


class ProcessorStillTransient(GatewayUnavailable):
    """A payment step's processor answered transiently for some payments: run the step again
    (their charges are stored pending, the rerun replays them under the same keys). After the
    last run the step's summary is kept and the next bill day resumes them."""

    def __init__(self, step: str, summary: dict[str, Any]) -> None:
        names = ", ".join(summary["transient"][:20])
        super().__init__(f"{step}: the processor failed transiently for {names}")
        self.summary = summary


def transient_batch_error(error: BaseException) -> bool:
    """A lost database connection, or a batch worker process that died: run the batch again
    (what it committed is no longer due)."""
    return transient_database_error(error) or isinstance(error, WorkerLost)


BATCH_RETRY = Retry(transient=transient_batch_error)


def transient_or_processor(error: BaseException) -> bool:
    """A lost database connection, or a card processor that failed transiently."""
    return transient_database_error(error) or isinstance(error, GatewayUnavailable)


def _summary_so_far(error: BaseException) -> Any:
    if isinstance(error, ProcessorStillTransient):
        return error.summary
    raise error


PAYMENT_RETRY = Retry(transient=transient_or_processor, exhausted=_summary_so_far)
"""Collection and refunds: again after a transient database or processor error; after the
last run, what is still pending is reported (the next run resumes it)."""

WEBHOOK_RETRY = Retry(first_delay=2.0, transient=lambda error: isinstance(error, Exception))
"""The provisioning webhook: an outside HTTP service, tried again whatever it failed with."""


class ChecksReport(Protocol):
    """What the post-billing checks gate answers (``expectations.runner.CheckReport``)."""

    @property
    def success(self) -> bool: ...

    @property
    def passed(self) -> int: ...

    @property
    def failed(self) -> Sequence[Any]: ...  # each with ``name`` and ``unexpected_count``

    @property
    def results(self) -> Sequence[Any]: ...  # every check, in rule order

    @property
    def data_docs(self) -> Path: ...


PostBillingChecks = Callable[[Database, date, Path], ChecksReport]
"""The checks gate: ``(database, as_of, output_dir) -> report``; ``engine_of(database)`` is
its engine. Given by the caller: it lives in ``expectations/``, outside billing."""


@dataclass(frozen=True)
class Payments:
    """Collection and refunds: the processor and the payment settings."""

    gateway: PaymentGateway
    config: PaymentConfig


@dataclass(frozen=True)
class Documents:
    """The documents step: where the XML and PDF go, the seller printed on them, the pool.

    ``dask_scheduler``: the address of a Dask scheduler whose workers render the batches
    (``billing.documents.dask_render``); None: ``processes`` local worker processes."""

    store_url: str
    seller: Seller
    processes: int | None = None
    per_batch: int = 50
    schematron: str = "sample"
    dask_scheduler: str | None = None


@dataclass(frozen=True)
class BillDayJob:
    """What bill day runs: the database, the date, and which optional steps are on.

    ``database`` is an Engine or a URL. ``children`` bounds the batches in flight. A step whose
    setting is None does not run: ``notify`` (the provisioning webhook, given the status
    changes), ``payments`` (collection and refunds), ``checks`` (the gate, writing its Data
    Docs under ``checks_dir``), ``documents`` (render and queue the e-mails).
    """

    database: Database
    as_of: date
    run_id: str
    per_batch: int = 20_000
    children: int = 1
    batch_processes: int | None = 0
    """Worker processes billing the batches (``billing.jobs.batch_workers``): 0 none, the
    batches run in the runner's threads; None: ``batch_processes``' choice (one per CPU on
    PostgreSQL, at most ``children``)."""
    fetch_size: int = 150_000
    account_refs: Sequence[str] | None = None
    dry_run: bool = False
    notify: Callable[[list[StatusChange]], int] | None = None
    payments: Payments | None = None
    checks: PostBillingChecks | None = None
    checks_dir: Path | None = None
    documents: Documents | None = None
    seller_country: str | None = None
    """Whose VAT rules the bills follow (``billing.domain.vat``): by default the documents'
    seller's country, else the demo seller's. It cannot differ from the documents' seller."""
    gate: Callable[[Runner, BillDayJob], None] | None = None
    """Runs first, before any step writes, and raises to stop the run: the shadow bill run's
    gate (``billing.jobs.shadow_bill_run.shadow_gate``). Not run by a dry run."""

    def __post_init__(self) -> None:
        printed = self.documents.seller.country if self.documents else None
        if self.seller_country and printed and self.seller_country != printed:
            raise ValueError(
                f"seller_country {self.seller_country!r} differs from the country of the seller "
                f"printed on the documents ({printed!r}): one seller bills and issues"
            )

    @property
    def vat_country(self) -> str | None:
        """The seller country the bills' VAT is determined for (None: the default seller)."""
        return self.seller_country or (self.documents.seller.country if self.documents else None)

    @property
    def database_url(self) -> str:
        if isinstance(self.database, str):
            return self.database
        return engine_of(self.database).url.render_as_string(hide_password=False)


@dataclass
class BillDayResult:
    deferred: DeferredResult
    billing: BatchResult
    numbered: list[Numbered] = field(default_factory=list)
    cancellations: CycleFeesResult | None = None
    wallets: WalletsResult | None = None
    cycle_fees: CycleFeesResult | None = None
    collect: dict[str, Any] | None = None
    refund: dict[str, Any] | None = None
    checks: ChecksReport | None = None
    documents: dict[str, Any] | None = None
    notified: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per step, for the run's report."""
    batch_processes: int = 0
    """Worker processes that billed the batches (0: the runner's threads)."""

    @property
    def items_cancelled(self) -> int:
        """Items cancelled by this run: before billing and in cycle fees."""
        steps = (self.cancellations, self.cycle_fees)
        return sum(step.cancelled_items for step in steps if step is not None)

    @property
    def cancellation_credits(self) -> int:
        """Cancellation credits written by this run: before billing and in cycle fees."""
        steps = (self.cancellations, self.cycle_fees)
        return sum(step.credits for step in steps if step is not None)

    @property
    def failed(self) -> dict[str, str]:
        """Accounts that failed cancellations, billing or cycle fees: account ref -> why."""
        return {
            **(self.cancellations.failed if self.cancellations else {}),
            **self.billing.failed,
            **(self.cycle_fees.failed if self.cycle_fees else {}),
        }

    @property
    def problem(self) -> Exception | None:
        """Why the run must end Failed, or None: failed accounts first, then the checks gate,
        then invoices that could not be rendered."""
        if self.failed:
            names = ", ".join(sorted(self.failed)[:20])
            return BillDayFailed(
                f"{len(self.failed)} account(s) failed: {names}. See billing_issues."
            )
        if self.checks is not None and not self.checks.success:
            return PostBillingChecksFailed(
                f"post-billing checks failed: {', '.join(checks_failed(self.checks))}; "
                f"nothing is rendered or sent. Data Docs: {self.checks.data_docs}"
            )
        if self.documents and self.documents["failed"]:
            failed = self.documents["failed"]
            names = ", ".join(sorted(failed)[:20])
            return DocumentsFailed(f"{len(failed)} invoice(s) not rendered: {names}")
        return None


def checks_failed(report: ChecksReport) -> list[str]:
    """Each failed check as ``name (offending rows)``."""
    return [f"{r.name} ({r.unexpected_count})" for r in report.failed]


# ---- the steps: each opens its unit of work and commits before it returns; none retries ----


def deferred_actions(database: Database, as_of: date) -> DeferredResult:
    """pin_deferred_act: actions due by ``as_of``."""
    with unit_of_work(engine_of(database)) as session:
        return run_deferred_actions(session, as_of)


def apply_cancellations(database: Database, as_of: date, run_id: str) -> CycleFeesResult:
    """Cancellations due by ``as_of`` (a termination, a deferred ``cancel_item``), before
    billing: their credits are on the bill this run makes (``billing.ops.cycle_fees``)."""
    with unit_of_work(engine_of(database)) as session:
        return cancellations(session, as_of, run_id)


def find_due_units(
    database: Database,
    as_of: date,
    after_id: int,
    limit: int,
    account_refs: Sequence[str] | None,
    exclude: Sequence[int],
) -> list[int]:
    """The next ``limit`` due bill units after ``after_id``."""
    with unit_of_work(engine_of(database)) as session:
        return due_unit_ids(
            session,
            as_of,
            after_id=after_id,
            limit=limit,
            account_refs=account_refs,
            exclude=exclude,
        )


def bill_accounts_batch(
    database: Database,
    unit_ids: list[int],
    as_of: date,
    run_id: str,
    dry_run: bool,
    seller_country: str | None = None,
    workers: BatchWorkers | None = None,
) -> BatchResult:
    """pin_bill_accts: one batch of bill units in one transaction (VAT of a seller in
    ``seller_country``: ``billing.domain.vat``), in one of ``workers``' processes when given,
    else in this thread."""
    if workers is not None:
        return workers.bill(unit_ids, as_of, run_id, dry_run=dry_run, seller_country=seller_country)
    return bill_batch(
        engine_of(database),
        unit_ids,
        as_of,
        run_id,
        dry_run=dry_run,
        seller_country=seller_country,
    )


def analyze_billed_tables(database: Database) -> None:
    """Statistics of what billing just wrote, before the steps that join on it (PostgreSQL)."""
    refresh_statistics(engine_of(database), BILLED_TABLES)


def number_bills(database: Database) -> list[Numbered]:
    """pin_inv_accts: gapless numbers for every unnumbered bill."""
    with unit_of_work(engine_of(database), isolation="REPEATABLE READ") as session:
        numbered = assign_bill_numbers(session)
        failpoint("numbering.before_commit")
        return numbered


def apply_wallets(
    database: Database, as_of: date, run_id: str, page_size: int = PAGE_SIZE
) -> WalletsResult:
    """Prepaid credits before collection (``billing.ops.wallets``): expiry, consumption by the
    issued invoices still due, top-ups; ``page_size`` accounts with wallets per transaction."""
    engine = engine_of(database)
    total = WalletsResult()
    after = 0
    while True:
        with unit_of_work(engine) as session:
            account_ids = wallet_accounts(session, after=after, limit=page_size)
            if not account_ids:
                return total
            total = total.merge(apply_wallets_page(session, account_ids, as_of, run_id))
        after = account_ids[-1]


def apply_cycle_fees(database: Database, as_of: date, run_id: str) -> CycleFeesResult:
    """pin_cycle_fees: cancellations due and forward fees of mid-cycle purchases."""
    with unit_of_work(engine_of(database)) as session:
        result = cycle_fees(session, as_of, run_id)
        failpoint("cycle_fees.before_commit")
        return result


def _answered(step: str, result: collect.CollectResult | refund.RefundResult) -> dict[str, Any]:
    """A payment step's summary, or ``ProcessorStillTransient`` while the processor answered
    some of its card requests transiently (the step's retry policy runs it again)."""
    summary = result.summary()
    if result.transient:
        raise ProcessorStillTransient(step, summary)
    return summary


def collect_payments(
    database: Database, as_of: date, run_id: str, payments: Payments
) -> dict[str, Any]:
    """pin_collect: open bills by card and SEPA direct debit; raises while some card charges
    are still pending after a transient answer of the processor."""
    result = collect.collect_payments(
        engine_of(database), as_of, payments.gateway, payments.config, run_id=run_id
    )
    return _answered("collect", result)


def refund_payments(
    database: Database, as_of: date, run_id: str, payments: Payments
) -> dict[str, Any]:
    """pin_refund: credit balances by card or SEPA credit transfer; raises while some card
    refunds are still pending after a transient answer of the processor."""
    result = refund.refund_payments(
        engine_of(database), as_of, payments.gateway, payments.config, run_id=run_id
    )
    return _answered("refund", result)


def find_invoices_to_render(
    database: Database,
    run_id: str | None = None,
    bill_dates: tuple[date, date] | None = None,
    bill_nos: list[str] | None = None,
    unqueued_through: date | None = None,
) -> list[int]:
    """The numbered bills of a run, of a date range, with given numbers, or not queued."""
    with unit_of_work(engine_of(database)) as session:
        return invoice_ids(
            session,
            run_id=run_id,
            bill_dates=bill_dates,
            bill_nos=bill_nos,
            unqueued_through=unqueued_through,
        )


def render_invoice_documents(
    settings: RenderSettings,
    bill_ids: list[int],
    processes: int | None,
    per_batch: int,
    dask_scheduler: str | None = None,
) -> dict[str, Any]:
    """Render invoices to the document store, in batches over local worker processes, or
    over the workers of the Dask scheduler at ``dask_scheduler`` when one is given."""
    if dask_scheduler:
        from billing.documents.dask_render import render_on_dask  # imports distributed

        result = render_on_dask(settings, bill_ids, dask_scheduler, per_batch=per_batch)
    else:
        result = render_in_processes(settings, bill_ids, processes=processes, per_batch=per_batch)
    return {
        "rendered": result.rendered,
        "skipped": result.skipped,
        "emails queued": result.queued,
        "failed": result.failed,
    }


def render_settings(
    database_url: str,
    documents: Documents,
    *,
    skip_existing: bool = False,
    enqueue_email: bool = False,
) -> RenderSettings:
    return RenderSettings(
        database_url=database_url,
        store_url=documents.store_url,
        seller=documents.seller.to_dict(),
        schematron=documents.schematron,
        skip_existing=skip_existing,
        enqueue_email=enqueue_email,
        email_domain=documents.seller.mail_domain,
    )


def bills_of_runs(database: Database, run_ids: list[str]) -> dict[str, CurrencyTotals]:
    """Per currency, the count, net, tax and gross of the bills these runs made."""
    if not run_ids:
        return {}
    with unit_of_work(engine_of(database)) as session:
        return run_report.run_totals(session, run_ids)


def numbered_count(numbered: Sequence[Numbered]) -> int:
    """How many bills the numbering step numbered."""
    return sum(n.count for n in numbered)


# ---- the order, stated once ----


def _batch_calls(
    runner: Runner,
    database: Database,
    as_of: date,
    run_id: str,
    pass_number: int,
    *,
    per_batch: int,
    fetch_size: int,
    account_refs: Sequence[str] | None,
    exclude: list[int],
    dry_run: bool,
    seller_country: str | None,
    workers: BatchWorkers | None,
) -> Iterator[Call]:
    """One pass's batches as calls, made lazily: the due units are fetched (a step of its own,
    retried like any other) ``fetch_size`` ids at a time, as slots free up."""
    after, number = 0, 0
    while True:
        ids = runner.step(
            Call(
                "find_due_units",
                find_due_units,
                (database, as_of, after, fetch_size, account_refs, exclude),
            )
        )
        if not ids:
            return
        for start in range(0, len(ids), per_batch):
            number += 1
            yield Call(
                f"bill_accounts_batch-{pass_number}.{number}",
                bill_accounts_batch,
                (
                    database,
                    ids[start : start + per_batch],
                    as_of,
                    run_id,
                    dry_run,
                    seller_country,
                    workers,
                ),
                retry=BATCH_RETRY,
            )
        after = ids[-1]


def bill_batches(
    runner: Runner,
    database: Database,
    as_of: date,
    run_id: str,
    *,
    per_batch: int,
    children: int,
    fetch_size: int,
    account_refs: Sequence[str] | None = None,
    dry_run: bool = False,
    between_batches: bool = True,
    seller_country: str | None = None,
    processes: int = 0,
) -> BatchResult:
    """pin_bill_accts in passes until every due unit is billed or has failed (catch-up):
    due units fetched ``fetch_size`` ids at a time, billed ``per_batch`` at a time, at most
    ``children`` batches in flight, in ``processes`` worker processes (0: in the runner's
    threads; ``billing.jobs.batch_workers``). With ``between_batches``, the failpoint
    ``billday.between_batches`` fires after each batch's result came back (bill day's; the
    Billing daemon has none)."""
    if processes:
        runner.progress("billing", 0, f"batches billed in {processes} worker processes")
    pool = BatchWorkers(database, processes) if processes else nullcontext(None)
    with pool as workers:
        total = BatchResult()
        for pass_number in range(1, 2 if dry_run else MAX_PASSES + 1):
            done = BatchResult()

            calls = _batch_calls(
                runner,
                database,
                as_of,
                run_id,
                pass_number,
                per_batch=per_batch,
                fetch_size=fetch_size,
                account_refs=account_refs,
                exclude=sorted(total.failed_units),
                dry_run=dry_run,
                seller_country=seller_country,
                workers=workers,
            )
            for result in runner.fan_out(calls, at_most=children):
                done = done.merge(result)
                if between_batches:
                    failpoint("billday.between_batches")
                so_far = total.merge(done)
                runner.progress(
                    "billing",
                    run_report.batch_share(so_far),
                    f"pass {pass_number}: {run_report.count(so_far.billed)} of "
                    f"{run_report.count(so_far.units)} bill unit(s) billed",
                )
            total = total.merge(done)
            if done.billed == 0:
                break
        return total


def bill_accounts(
    database: Database,
    as_of: date,
    run_id: str,
    *,
    per_batch: int = 20_000,
    fetch_size: int = 150_000,
    account_refs: Sequence[str] | None = None,
    dry_run: bool = False,
    seller_country: str | None = None,
) -> BatchResult:
    """Billing alone, in this process (batch after batch, in catch-up passes)."""
    return bill_batches(
        InProcessRunner(),
        database,
        as_of,
        run_id,
        per_batch=per_batch,
        children=1,
        fetch_size=fetch_size,
        account_refs=account_refs,
        dry_run=dry_run,
        seller_country=seller_country,
    )


def bill_day(runner: Runner, job: BillDayJob) -> BillDayResult:
    """The whole bill day, in its one order (see the module's docstring)."""
    database, as_of, run_id = job.database, job.as_of, job.run_id
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[step] = now - started
        started = now

    if job.gate is not None and not job.dry_run:
        job.gate(runner, job)  # stops the run before anything is written
        lap("shadow gate")
    deferred = DeferredResult()
    cancelled: CycleFeesResult | None = None
    notified = 0
    if not job.dry_run:
        deferred = runner.step(
            Call("execute_deferred_actions", deferred_actions, (database, as_of))
        )
        cancelled = runner.step(
            Call("apply_cancellations", apply_cancellations, (database, as_of, run_id))
        )
        failpoint("billday.after_deferred")
        if job.notify is not None and deferred.status_changes:
            notified = runner.step(
                Call(
                    "notify_provisioning",
                    job.notify,
                    (deferred.status_changes,),
                    retry=WEBHOOK_RETRY,
                )
            )
        lap("deferred_actions")
        runner.progress(
            "deferred actions", note=f"{run_report.count(deferred.done)} deferred action(s) done"
        )

    processes = batch_processes(job.batch_processes, job.children, database)
    billing = bill_batches(
        runner,
        database,
        as_of,
        run_id,
        per_batch=job.per_batch,
        children=job.children,
        fetch_size=job.fetch_size,
        account_refs=job.account_refs,
        dry_run=job.dry_run,
        seller_country=job.vat_country,
        processes=processes,
    )
    lap("bill_accounts")
    runner.progress("billing", note=f"{run_report.count(billing.bills)} bill(s) made")
    result = BillDayResult(
        deferred,
        billing,
        cancellations=cancelled,
        notified=notified,
        seconds=seconds,
        batch_processes=processes,
    )
    if job.dry_run:
        return result

    runner.step(Call("analyze_billed_tables", analyze_billed_tables, (database,)))
    result.numbered = runner.step(Call("number_invoices", number_bills, (database,)))
    failpoint("billday.after_numbering")
    numbered = numbered_count(result.numbered)
    runner.progress("numbering", note=f"{run_report.count(numbered)} bill(s) numbered")

    result.wallets = runner.step(Call("apply_wallets", apply_wallets, (database, as_of, run_id)))
    runner.progress(
        "prepaid credits",
        note=f"{run_report.count(result.wallets.bills_paid)} bill(s) paid by prepaid credits",
    )

    after = [Call("apply_cycle_fees", apply_cycle_fees, (database, as_of, run_id))]
    if job.payments is not None:
        payments = (database, as_of, run_id, job.payments)
        after += [
            Call("collect_payments", collect_payments, payments, retry=PAYMENT_RETRY),
            Call("refund_payments", refund_payments, payments, retry=PAYMENT_RETRY),
        ]
    done = runner.side_by_side(after)
    result.cycle_fees = done["apply_cycle_fees"]
    result.collect = done.get("collect_payments")
    result.refund = done.get("refund_payments")
    lap("invoices, cycle fees, collect, refund")
    for step in ("cycle fees", "collection", "refunds"):
        runner.progress(step, note=f"{step} done")

    if job.checks is not None:
        output = job.checks_dir or Path("var/output") / as_of.isoformat() / run_id
        result.checks = runner.step(
            Call("post_billing_checks", job.checks, (database, as_of, output), retry=NO_RETRY)
        )
        lap("post_billing_checks")
        runner.progress("checks", note=f"{len(result.checks.failed)} check(s) failed")

    if job.documents is not None and result.problem is None:  # only past the gate
        ids = runner.step(  # with what an interrupted run left unqueued
            Call(
                "find_invoices_to_render",
                find_invoices_to_render,
                (database, run_id, (as_of, as_of), None, as_of),
            )
        )
        settings = render_settings(job.database_url, job.documents, enqueue_email=True)
        result.documents = runner.step(
            Call(
                "render_invoice_documents",
                render_invoice_documents,
                (
                    settings,
                    ids,
                    job.documents.processes,
                    job.documents.per_batch,
                    job.documents.dask_scheduler,
                ),
            )
        )
        result.documents["invoices"] = len(ids)
        lap("documents")
        runner.progress(
            "documents",
            note=f"{run_report.count(result.documents['rendered'])} document(s) rendered",
        )
        runner.progress(
            "e-mail queueing",
            note=f"{run_report.count(result.documents['emails queued'])} e-mail(s) queued",
        )
    return result


def run_bill_day(database: Database, as_of: date, run_id: str, **settings: Any) -> BillDayResult:
    """Bill day in this process, without Prefect: ``bill_day`` with the in-process runner."""
    return bill_day(InProcessRunner(), BillDayJob(database, as_of, run_id, **settings))
