"""bill-day: BRM's ``pin_bill_day`` as a Prefect flow, run "as of" a virtual date.

The job itself (its steps, their order, what runs side by side, how batches fan out) is
``billing.jobs.bill_day.bill_day``, defined once. This flow is its thin adapter: it reads the
blocks, builds the ``BillDayJob``, runs it with ``PrefectRunner`` (a task run per step, the
steps' retries as task retries, at most ``children`` batches under the global concurrency
limit ``bill-day-batches``, the progress artifact), then publishes the run's artifacts and
ends Failed when the job says why.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.context import get_run_context
from prefect.task_runners import ThreadPoolTaskRunner

from billing.domain.shadow import GateLimits, Thresholds
from billing.jobs import bill_day as job
from billing.jobs import shadow_bill_run as shadow_job
from billing.jobs.bill_day import (
    BillDayFailed,
    BillDayJob,
    BillDayResult,
    ChecksReport,
    PostBillingChecksFailed,
    engine_of,
)
from billing.jobs.runner import Call
from billing.jobs.shadow_bill_run import ShadowGateStopped, ShadowResult
from billing.ops import run_report
from billing.ops.run_report import CurrencyTotals, StepCount, number_range
from flows.document_steps import documents_setup, publish_documents
from flows.jobs import BlockDatabase, PrefectRunner, provisioning
from flows.payment_steps import payments_setup, publish_payments
from flows.report import Measures, RunProgress, file_markdown, file_text, publish_markdown
from flows.runtime import (
    NOT_GIVEN,
    RunDate,
    TextList,
    dated_run_name,
    given,
    load_seller,
    load_settings,
    run_date,
)
from flows.shadow_bill_run import Limit, Threshold, publish_shadow

__all__ = ["BillDayFailed", "PostBillingChecksFailed", "ShadowGateStopped", "bill_day"]

BATCH_LIMIT = "bill-day-batches"
STEPS = job.PROGRESS
SHADOW_STEPS = shadow_job.PROGRESS
SELLER_BLOCK = "default"
"""The Seller Identity block: its country's VAT rules bill, its identity is printed."""


def run_checks(database: Any, as_of: date, output_dir: Path) -> ChecksReport:
    """The post-billing checks gate: the Great Expectations suites over the billed data."""
    from expectations.runner import run_post_billing_checks  # GE takes seconds to import

    return run_post_billing_checks(engine_of(database), as_of, output_dir)


@flow(name="bill-day", flow_run_name=dated_run_name)
def bill_day(
    as_of: RunDate = NOT_GIVEN,
    dry_run: bool = False,
    accounts: TextList = NOT_GIVEN,
    settings_block: str = "default",
    database_block: str = "default",
    webhook_block: str = "provisioning",
    documents: bool = True,
    shadow_gate: bool = False,
    shadow_threshold_amount: Threshold = Decimal("1.00"),
    shadow_threshold_percent: Threshold = Decimal("5"),
    shadow_max_missing: Limit = 0,
    shadow_max_changed: Limit = 0,
    shadow_max_new: Limit = NOT_GIVEN,
) -> dict[str, Any]:
    """BRM pin_bill_day as of a virtual date: bill due accounts, number, cycle fees.

    Args:
        as_of: The run's only clock (BRM pin_virtual_time), a date. Leave it empty for the
            date the run was scheduled for (today, for a run started by hand).
        dry_run: Compute and report what would be billed, and write nothing.
        accounts: Account refs: bill only these accounts (to re-run them). Empty: every
            account that is due.
        settings_block: Name of the Bill Run Settings block (children, per_batch, fetch_size,
            loglevel, simulate_agent, output_dir, files_url); its defaults when none exists.
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
        webhook_block: Name of the Provisioning Webhook block told about status changes.
        documents: Render each new invoice's XML and Factur-X PDF after the checks passed
            and queue its e-mail. Off: a billing-only run; render-invoices renders later.
        shadow_gate: Run the shadow bill run first (a dry run compared with the previous
            cycle) and stop before anything is written when it finds more missing, changed
            or new accounts than the limits below (shadow-bill-run's tables, its CSV).
        shadow_threshold_amount: Shadow gate: an account has changed when its gross moved
            by more than this amount and more than shadow_threshold_percent.
        shadow_threshold_percent: Shadow gate: ...and more than this percentage.
        shadow_max_missing: Shadow gate: accounts billed last cycle and not now that it lets
            through (empty: any number).
        shadow_max_changed: Shadow gate: changed accounts it lets through (empty: any).
        shadow_max_new: Shadow gate: accounts billed now and not last cycle that it lets
            through (empty: any number, the default).
    """
    as_of = run_date(as_of)
    settings = load_settings(settings_block)
    logger = get_run_logger()
    logger.setLevel(settings.log_level)
    run_id = str(get_run_context().flow_run.id)
    title = f"Bill day {as_of}" + (" (dry run)" if dry_run else "")
    logger.info("bill day as of %s%s", as_of, " (dry run)" if dry_run else "")
    bill_day_job = BillDayJob(
        database=BlockDatabase(database_block),
        as_of=as_of,
        run_id=run_id,
        per_batch=settings.per_batch,
        children=settings.children,
        batch_processes=(settings.batch_processes or None) if _threads_run_tasks() else 0,
        fetch_size=settings.fetch_size,
        account_refs=given(accounts),
        dry_run=dry_run,
        notify=None if settings.simulate_agent else provisioning(webhook_block),
        payments=payments_setup(settings.output_dir),
        checks=run_checks,
        checks_dir=Path(settings.output_dir) / as_of.isoformat() / run_id,
        documents=(
            documents_setup(
                processes=settings.documents_processes or None,
                per_batch=settings.documents_per_batch,
                dask_address=settings.documents_dask_address,
            )
            if documents
            else None
        ),
        seller_country=load_seller(SELLER_BLOCK).country,
        gate=_shadow_gate(
            shadow_threshold_amount,
            shadow_threshold_percent,
            GateLimits(given(shadow_max_missing), given(shadow_max_changed), given(shadow_max_new)),
            Path(settings.output_dir) / as_of.isoformat() / run_id,
            settings,
            title,
        )
        if shadow_gate and not dry_run
        else None,
    )
    steps = SHADOW_STEPS + STEPS if bill_day_job.gate is not None else STEPS
    progress = RunProgress("bill-day-progress", title, steps)
    try:
        result = job.bill_day(PrefectRunner(progress, batch_limit=BATCH_LIMIT), bill_day_job)
    except ShadowGateStopped as stopped:
        progress.note(f"stopped by the shadow gate: {stopped}")
        raise

    if result.collect is not None:
        publish_payments("bill-day-collect", f"Collection as of {as_of}", result.collect, settings)
    if result.refund is not None:
        publish_payments("bill-day-refund", f"Refunds as of {as_of}", result.refund, settings)
    if result.checks is not None:
        _publish_checks(result.checks, as_of, settings)
    if result.documents is not None:
        publish_documents(result.documents, bill_day_job.documents, settings)
    measures = _measures(as_of, dry_run, result, settings)
    summary = measures.publish("bill-day-summary", title)
    _run_summary(title, bill_day_job.database, run_id, dry_run, result, settings)
    problem = result.problem
    if problem is not None:
        progress.note(f"stopped: {problem}")
        raise problem
    progress.done()
    return summary


def _threads_run_tasks() -> bool:
    """The flow's tasks run in threads of this process (not on Dask, whose workers are
    already processes of their own and may not start any)."""
    return isinstance(get_run_context().task_runner, ThreadPoolTaskRunner)


def _shadow_gate(
    threshold_amount: Decimal,
    threshold_percent: Decimal,
    limits: GateLimits,
    csv_dir: Path,
    settings: Any,
    title: str,
) -> Any:
    """The shadow bill run's gate, its tables published as ``bill-day-shadow-*``."""

    def publish(result: ShadowResult) -> None:
        publish_shadow(result, settings, "bill-day-shadow", f"{title}: shadow gate")

    thresholds = Thresholds(Decimal(threshold_amount), Decimal(threshold_percent))
    return shadow_job.shadow_gate(limits, thresholds, csv_dir, publish)


def _publish_checks(report: ChecksReport, as_of: date, settings: Any) -> None:
    """The checks' table (one row per expectation, with a sample) and the Data Docs link."""
    from prefect.artifacts import create_table_artifact

    docs = file_text(report.data_docs, settings.output_dir, settings.files_url)
    rows = [
        {
            "expectation": r.name,
            "passed": run_report.shown(r.success),
            "offending rows": "error"
            if r.unexpected_count is None
            else run_report.shown(r.unexpected_count),
            "sample": run_report.shown([run_report.shown(row) for row in r.sample])[:1000]
            if r.sample
            else r.error or run_report.NOTHING,
        }
        for r in report.results
    ]
    create_table_artifact(
        rows,
        key="post-billing-checks",
        description=f"Post-billing checks as of {as_of}. Data Docs: {docs}",
    )
    publish_markdown(
        "Data Docs of the post-billing checks: "
        + file_markdown(
            "open the Data Docs", report.data_docs, settings.output_dir, settings.files_url
        ),
        key="post-billing-data-docs",
        description=f"Post-billing checks as of {as_of}",
    )


def _measures(as_of: date, dry_run: bool, result: BillDayResult, settings: Any) -> Measures:
    """The run's table: billed / failed / empty cycles, bills, totals, numbers, payments."""
    billing = result.billing
    measures = Measures()
    measures.add("as_of", as_of)
    measures.add("dry run", dry_run)
    measures.add("bill units due", billing.units)
    measures.add("billed", billing.billed)
    measures.add("failed", len(billing.failed))
    measures.add("cycles with nothing to bill", billing.empty_cycles)
    measures.add("bills", billing.bills)
    measures.add("batch worker processes", result.batch_processes)
    measures.add("usage records rated", billing.usage_collected)
    measures.add("late usage billed", billing.late_usage_billed)
    for currency, amount in sorted(billing.late_usage_amounts.items()):
        measures.money(f"late usage {currency}", amount, currency)
    measures.add("late usage held", billing.late_usage_held)
    for currency, total in sorted(billing.totals.items()):
        measures.money(f"total {currency}", total, currency)
    for numbered in result.numbered:
        measures.add(f"numbers {numbered.series}", number_range(numbered.first, numbered.count))
    if result.wallets is not None:
        wallets = result.wallets
        measures.add("bills paid by prepaid credits", wallets.bills_paid)
        for currency, amount in sorted(wallets.consumed_amounts.items()):
            measures.money(f"prepaid credits used {currency}", amount, currency)
        measures.add("prepaid credit lots expired", wallets.lots_expired)
        measures.add("prepaid credit top-ups", wallets.topups)
    if result.cycle_fees is not None:
        measures.add("items cancelled", result.items_cancelled)
        measures.add("cancellation credits", result.cancellation_credits)
    if result.collect is not None:
        collect = result.collect
        measures.add("card payments collected", collect["collected"])
        measures.add("card payments declined", len(collect["declined"]))
        measures.add("direct debits pending", collect["debits_pending"])
        measures.add("accounts in dunning", len(collect["dunning"]))
        _sepa_rows(measures, collect["files"], settings)
    if result.refund is not None:
        refund = result.refund
        measures.add("card refunds", refund["refunded"])
        measures.add("refund transfers pending", refund["transfers_pending"])
        _sepa_rows(measures, refund["files"], settings)
    if result.documents is not None:
        measures.add("documents rendered", result.documents["rendered"])
        measures.add("invoice e-mails queued", result.documents["emails queued"])
    for step, seconds in result.seconds.items():
        measures.add(f"seconds {step}", f"{seconds:.2f}")
    for ref, why in sorted(billing.failed.items()):
        measures.add(f"failed {ref}", why)
    return measures


def _sepa_rows(measures: Measures, paths: list[str], settings: Any) -> None:
    """One row per SEPA file, named by the file, so that a run's several files all show."""
    for path in paths:
        text = file_text(path, settings.output_dir, settings.files_url)
        measures.add(f"SEPA file {Path(path).name}", path, text)


def _bills_of_runs(database: Any, run_ids: list[str]) -> dict[str, CurrencyTotals]:
    return PrefectRunner().step(Call("bills_of_runs", job.bills_of_runs, (database, run_ids)))


def _run_summary(
    title: str, database: Any, run_id: str, dry_run: bool, result: BillDayResult, settings: Any
) -> None:
    """The run summary (markdown): the bills of this run per currency, counts per step, and
    the change against the previous bill day."""
    billing = result.billing
    steps = _step_counts(result)
    if dry_run:
        note = "Dry run: nothing was written. Gross that would be billed: " + (
            ", ".join(run_report.money(v, c) for c, v in sorted(billing.totals.items()))
            or run_report.NOTHING
        )
        text = run_report.summary_markdown(title, {}, steps, note=note)
    else:
        previous = _previous_run()
        totals = _bills_of_runs(database, [run_id])
        before = _bills_of_runs(database, [previous[0]]) if previous else None
        files = []
        if result.checks is not None:
            files.append(
                file_markdown(
                    "Data Docs of the checks",
                    result.checks.data_docs,
                    settings.output_dir,
                    settings.files_url,
                )
            )
        paths = (result.collect or {}).get("files", []) + (result.refund or {}).get("files", [])
        for path in paths:
            files.append(
                file_markdown(Path(path).name, path, settings.output_dir, settings.files_url)
            )
        text = run_report.summary_markdown(
            title,
            totals,
            steps,
            previous_name=previous[1] if previous else None,
            previous=before,
        )
        if files:
            text += "\n## Files\n\n" + "\n".join(f"- {f}" for f in files) + "\n"
    publish_markdown(text, key="bill-day-run-summary", description=title)


def _step_counts(result: BillDayResult) -> list[StepCount]:
    billing, deferred = result.billing, result.deferred
    counts = []
    if result.cycle_fees is not None:  # not a dry run: the deferred actions ran
        counts += [
            StepCount("deferred actions", "done", deferred.done),
            StepCount("deferred actions", "failed", len(deferred.failed)),
        ]
    counts += [
        StepCount("billing", "bill units due", billing.units),
        StepCount("billing", "billed", billing.billed),
        StepCount("billing", "failed", len(billing.failed)),
        StepCount("billing", "bills", billing.bills),
        StepCount("billing", "usage records rated", billing.usage_collected),
        StepCount("billing", "late usage billed", billing.late_usage_billed),
        StepCount("billing", "late usage held", billing.late_usage_held),
    ]
    if result.cycle_fees is not None:
        counts += [
            StepCount("numbering", "bills numbered", job.numbered_count(result.numbered)),
        ]
    if result.wallets is not None:
        counts += [
            StepCount("prepaid credits", "bills paid", result.wallets.bills_paid),
            StepCount("prepaid credits", "lots expired", result.wallets.lots_expired),
            StepCount("prepaid credits", "top-ups", result.wallets.topups),
        ]
    if result.cycle_fees is not None:
        counts += [
            StepCount("cycle fees", "items cancelled", result.items_cancelled),
            StepCount("cycle fees", "cancellation credits", result.cancellation_credits),
        ]
    if result.collect is not None:
        collect = result.collect
        counts += [
            StepCount("collection", "card payments collected", collect["collected"]),
            StepCount("collection", "card payments declined", len(collect["declined"])),
            StepCount("collection", "direct debits pending", collect["debits_pending"]),
        ]
    if result.refund is not None:
        refund = result.refund
        counts += [
            StepCount("refunds", "card refunds", refund["refunded"]),
            StepCount("refunds", "refund transfers pending", refund["transfers_pending"]),
        ]
    if result.checks is not None:
        counts += [
            StepCount("checks", "passed", result.checks.passed),
            StepCount("checks", "failed", len(result.checks.failed)),
        ]
    if result.documents is not None:
        counts += [
            StepCount("documents", "rendered", result.documents["rendered"]),
            StepCount("documents", "failed", len(result.documents["failed"])),
            StepCount("e-mail queueing", "e-mails queued", result.documents["emails queued"]),
        ]
    return counts


def _previous_run() -> tuple[str, str] | None:
    """The bill-day run before this one that billed (not a dry run): its id and its name."""
    context = get_run_context().flow_run
    before = context.expected_start_time
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["bill-day"])),
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(not_any_=[context.id]),
                expected_start_time=FlowRunFilterExpectedStartTime(before_=before),
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(
                        any_=[StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
                    )
                ),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=50,
        )
    for run in runs:
        if not run.parameters.get("dry_run"):
            return str(run.id), run.name
    return None
