"""bill-day: BRM's ``pin_bill_day`` as a Prefect DAG, run "as of" a virtual date.

    deferred_actions -> bill_accounts (batches, at most `children` at once)
      -> analyze_billed_tables -> invoices -+-> cycle_fees -+
                                            +-> collect    -+-> post_billing_checks (GE gate)
                                            +-> refund     -+

``analyze_billed_tables`` gives the planner the statistics of what billing just wrote (on
PostgreSQL), so the steps after it do not plan on those of the empty tables. ``invoices``
numbers the new bills before the rest start (``_after_billing``), which then run side by side.
``post_billing_checks`` gates what follows: documents and e-mail run only when every check
passed.
"""

from __future__ import annotations

from collections import deque
from datetime import date
from pathlib import Path
from time import perf_counter
from typing import Any

from prefect import flow, get_run_logger, task
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
from prefect.concurrency.sync import concurrency
from prefect.context import get_run_context
from prefect.tasks import exponential_backoff

from billing.jobs import bill_day as billday
from billing.ops import run_report
from billing.ops.billrun import BatchResult, bill_batch
from billing.ops.provisioning import notify_status_changes
from billing.ops.run_report import CurrencyTotals, StepCount, batch_share, number_range
from billing.store.db import unit_of_work
from flows.report import Measures, RunProgress, file_markdown, file_text, publish_markdown
from flows.runtime import (
    NOT_GIVEN,
    RunDate,
    TextList,
    dated_run_name,
    engine_for,
    ensure_concurrency_limit,
    given,
    load_settings,
    load_webhook,
    run_date,
    transient_only,
)

BATCH_LIMIT = "bill-day-batches"
RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": transient_only,
}


class BillDayFailed(RuntimeError):
    """Some accounts failed: the run ends Failed and names them; the next run retries them."""


@task(name="execute_deferred_actions", **RETRIES)
def execute_deferred_actions(database: str | None, as_of: date) -> dict[str, Any]:
    """Run the deferred actions due by as_of (pin_deferred_act)."""
    result = billday.deferred_actions(engine_for(database), as_of)
    return {"done": result.done, "failed": result.failed, "changes": result.status_changes}


@task(name="notify_provisioning", retries=3, retry_delay_seconds=exponential_backoff(2))
def notify_provisioning(url: str, timeout: float, changes: list[Any]) -> int:
    """Tell the provisioning system which accounts changed status."""
    return notify_status_changes(url, changes, timeout)


@task(name="bill_accounts_batch", **RETRIES)
def bill_accounts_batch(
    database: str | None, unit_ids: list[int], as_of: date, run_id: str, dry_run: bool
) -> BatchResult:
    """Bill one batch of bill units in one transaction (pin_bill_accts)."""
    with concurrency(BATCH_LIMIT, occupy=1):
        return bill_batch(engine_for(database), unit_ids, as_of, run_id, dry_run=dry_run)


@task(name="analyze_billed_tables", **RETRIES)
def analyze_billed_tables(database: str | None) -> None:
    """Refresh the planner's statistics of the tables billing just wrote (PostgreSQL)."""
    billday.analyze_billed_tables(engine_for(database))


@task(name="number_invoices", **RETRIES)
def number_invoices(database: str | None) -> list[dict[str, Any]]:
    """Give every new bill its gapless number (pin_inv_accts)."""
    return [n.__dict__ for n in billday.number_bills(engine_for(database))]


@task(name="apply_cycle_fees", **RETRIES)
def apply_cycle_fees(database: str | None, as_of: date, run_id: str) -> dict[str, Any]:
    """Cancel products past their pending cancel date; apply forward fees (pin_cycle_fees)."""
    return billday.apply_cycle_fees(engine_for(database), as_of, run_id).__dict__


class PostBillingChecksFailed(RuntimeError):
    """The accuracy checks found bad rows: nothing is rendered or sent."""


@task(name="post_billing_checks")
def post_billing_checks(
    database: str | None,
    as_of: date,
    output_dir: str,
    reports_root: str = "",
    files_url: str = "",
) -> dict[str, Any]:
    """Run the Great Expectations suites over the billed data; report counts and samples.

    The Data Docs are linked as ``<files_url>/output/<path under reports_root>`` when the
    stack serves the reports over HTTP, else shown as their path.
    """
    from expectations.runner import run_post_billing_checks  # GE takes seconds to import

    report = run_post_billing_checks(engine_for(database), as_of, Path(output_dir))
    docs = file_text(report.data_docs, reports_root or output_dir, files_url)
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
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        rows,
        key="post-billing-checks",
        description=f"Post-billing checks as of {as_of}. Data Docs: {docs}",
    )
    publish_markdown(
        "Data Docs of the post-billing checks: "
        + file_markdown(
            "open the Data Docs", report.data_docs, reports_root or output_dir, files_url
        ),
        key="post-billing-data-docs",
        description=f"Post-billing checks as of {as_of}",
    )
    return {
        "success": report.success,
        "passed": report.passed,
        "failed": [f"{r.name} ({r.unexpected_count})" for r in report.failed],
        "data_docs": str(report.data_docs),
    }


@task(name="bills_of_runs", **RETRIES)
def bills_of_runs(database: str | None, run_ids: list[str]) -> dict[str, CurrencyTotals]:
    """Per currency, the count, net, tax and gross of the bills these runs made."""
    with unit_of_work(engine_for(database)) as session:
        return run_report.run_totals(session, run_ids)


def _after_billing(
    database: str | None, as_of: date, run_id: str, progress: RunProgress
) -> dict[str, Any]:
    """Number the new bills, then run the steps that follow side by side; each gives a summary.

    Numbering first: it rewrites every new bill in one statement and holds each bill's row lock
    until it commits, and a payment inserted meanwhile checks its bill under a key-share lock,
    so collection beside numbering deadlocked (1,000,000 accounts). Numbered bills also give
    the SEPA remittance texts their bill numbers.
    """
    from flows.payment_steps import collect_payments, refund_payments

    invoices = number_invoices(database)
    numbered = run_report.numbered(invoices)
    progress.step("numbering", note=f"{run_report.count(numbered)} bill(s) numbered")
    futures = {
        "cycle_fees": apply_cycle_fees.submit(database, as_of, run_id),
        "collect": collect_payments.submit(database, as_of, run_id),
        "refund": refund_payments.submit(database, as_of, run_id),
    }
    done: dict[str, Any] = {"invoices": invoices}
    for name, future in futures.items():
        done[name] = future.result()
        progress.step(AFTER_STEPS[name], note=f"{AFTER_STEPS[name]} done")
    return done


AFTER_STEPS = {"cycle_fees": "cycle fees", "collect": "collection", "refund": "refunds"}
STEPS = (  # bill day's steps and their share of the progress bar (roughly, their time)
    ("deferred actions", 4),
    ("billing", 46),
    ("numbering", 4),
    ("cycle fees", 4),
    ("collection", 8),
    ("refunds", 4),
    ("checks", 12),
    ("documents", 14),
    ("e-mail queueing", 4),
)


def _run_batches(
    database: str | None,
    as_of: date,
    run_id: str,
    settings: Any,
    accounts: list[str] | None,
    dry_run: bool,
    progress: RunProgress,
) -> BatchResult:
    """Fan the due units out in batches, at most ``children`` in flight, in catch-up passes."""
    logger = get_run_logger()
    ensure_concurrency_limit(BATCH_LIMIT, settings.children)
    total = BatchResult()
    for pass_number in range(1, 2 if dry_run else billday.MAX_PASSES + 1):
        done, in_flight = BatchResult(), deque()
        batches = billday.due_batches(
            engine_for(database),
            as_of,
            fetch_size=settings.fetch_size,
            per_batch=settings.per_batch,
            account_refs=accounts,
            exclude=sorted(total.failed_units),
        )
        for number, batch in enumerate(batches, start=1):
            if len(in_flight) >= settings.children:
                done = done.merge(in_flight.popleft().result())
            in_flight.append(
                bill_accounts_batch.with_options(
                    name=f"bill_accounts_batch-{pass_number}.{number}"
                ).submit(database, batch, as_of, run_id, dry_run)
            )
            logger.debug("pass %s: batch %s submitted (%s units)", pass_number, number, len(batch))
        while in_flight:
            done = done.merge(in_flight.popleft().result())
            so_far = total.merge(done)
            progress.step(
                "billing",
                batch_share(so_far),
                note=f"pass {pass_number}: {run_report.count(so_far.billed)} of "
                f"{run_report.count(so_far.units)} bill unit(s) billed",
            )
        total = total.merge(done)
        logger.info(
            "pass %s: %s units billed, %s bills, %s failed",
            pass_number,
            done.billed,
            done.bills,
            len(done.failed),
        )
        if done.billed == 0:
            break
    progress.step("billing", note=f"{run_report.count(total.bills)} bill(s) made")
    return total


@flow(name="bill-day", flow_run_name=dated_run_name)
def bill_day(
    as_of: RunDate = NOT_GIVEN,
    dry_run: bool = False,
    accounts: TextList = NOT_GIVEN,
    settings_block: str = "default",
    database_block: str = "default",
    webhook_block: str = "provisioning",
    documents: bool = True,
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
    """
    as_of = run_date(as_of)
    accounts = given(accounts)
    settings = load_settings(settings_block)
    logger = get_run_logger()
    logger.setLevel(settings.log_level)
    run_id = str(get_run_context().flow_run.id)
    title = f"Bill day {as_of}" + (" (dry run)" if dry_run else "")
    progress = RunProgress("bill-day-progress", title, STEPS)
    timings: dict[str, float] = {}
    logger.info("bill day as of %s%s", as_of, " (dry run)" if dry_run else "")

    started = perf_counter()
    deferred: dict[str, Any] = {}
    if not dry_run:
        deferred = execute_deferred_actions(database_block, as_of)
        _provision(deferred["changes"], settings, webhook_block)
        timings["deferred_actions"] = perf_counter() - started
        progress.step(
            "deferred actions",
            note=f"{run_report.count(deferred['done'])} deferred action(s) done",
        )

    started = perf_counter()
    billing = _run_batches(database_block, as_of, run_id, settings, accounts, dry_run, progress)
    timings["bill_accounts"] = perf_counter() - started

    after: dict[str, Any] = {}
    checks: dict[str, Any] = {"success": True, "failed": []}
    if not dry_run:
        started = perf_counter()
        analyze_billed_tables(database_block)
        after = _after_billing(database_block, as_of, run_id, progress)
        timings["invoices, cycle fees, collect, refund"] = perf_counter() - started
        started = perf_counter()
        output = Path(settings.output_dir) / as_of.isoformat() / run_id
        checks = post_billing_checks(
            database_block, as_of, str(output), settings.output_dir, settings.files_url
        )
        timings["post_billing_checks"] = perf_counter() - started
        progress.step("checks", note=f"{len(checks['failed'])} check(s) failed")

    measures = _measures(as_of, dry_run, billing, after, settings)
    failed = {**billing.failed, **after.get("cycle_fees", {}).get("failed", {})}
    problem: Exception | None = None
    rendered: dict[str, Any] = {}
    if failed:
        names = ", ".join(sorted(failed)[:20])
        problem = BillDayFailed(f"{len(failed)} account(s) failed: {names}. See billing_issues.")
    elif not checks["success"]:
        problem = PostBillingChecksFailed(
            f"post-billing checks failed: {', '.join(checks['failed'])}; "
            f"nothing is rendered or sent. Data Docs: {checks['data_docs']}"
        )
    elif documents and not dry_run:  # XML and Factur-X PDF, only after the checks gate passed
        from flows.document_steps import DocumentsFailed, render_documents

        started = perf_counter()
        rendered = render_documents(  # with what an interrupted run left unqueued
            database_block,
            run_id=run_id,
            bill_dates=(as_of, as_of),
            unqueued_through=as_of,
            enqueue_email=True,
        )
        timings["documents"] = perf_counter() - started
        progress.step(
            "documents", note=f"{run_report.count(rendered['rendered'])} document(s) rendered"
        )
        progress.step(
            "e-mail queueing",
            note=f"{run_report.count(rendered['emails queued'])} e-mail(s) queued",
        )
        measures.add("documents rendered", rendered["rendered"])
        measures.add("invoice e-mails queued", rendered["emails queued"])
        if rendered["failed"]:
            names = ", ".join(sorted(rendered["failed"])[:20])
            problem = DocumentsFailed(f"{len(rendered['failed'])} invoice(s) not rendered: {names}")
    for step, seconds in timings.items():
        measures.add(f"seconds {step}", f"{seconds:.2f}")
    for ref, why in sorted(billing.failed.items()):
        measures.add(f"failed {ref}", why)
    summary = measures.publish("bill-day-summary", title)
    _run_summary(
        title, database_block, run_id, dry_run, billing, deferred, after, checks, rendered, settings
    )
    if problem is not None:
        progress.note(f"stopped: {problem}")
        raise problem
    progress.done()
    return summary


def _provision(changes: list[Any], settings: Any, webhook_block: str) -> None:
    if not changes or settings.simulate_agent:
        return
    webhook = load_webhook(webhook_block)
    if webhook is not None:
        notify_provisioning(webhook.url, webhook.timeout_seconds, changes)


def _measures(
    as_of: date, dry_run: bool, billing: BatchResult, after: dict[str, Any], settings: Any
) -> Measures:
    """The run's table: billed / failed / empty cycles, bills, totals, numbers, payments."""
    measures = Measures()
    measures.add("as_of", as_of)
    measures.add("dry run", dry_run)
    measures.add("bill units due", billing.units)
    measures.add("billed", billing.billed)
    measures.add("failed", len(billing.failed))
    measures.add("cycles with nothing to bill", billing.empty_cycles)
    measures.add("bills", billing.bills)
    measures.add("usage records rated", billing.usage_collected)
    for currency, total in sorted(billing.totals.items()):
        measures.money(f"total {currency}", total, currency)
    for numbered in after.get("invoices", []):
        measures.add(
            f"numbers {numbered['series']}", number_range(numbered["first"], numbered["count"])
        )
    if "cycle_fees" in after:
        fees = after["cycle_fees"]
        measures.add("items cancelled", fees["cancelled_items"])
        measures.add("cancellation credits", fees["credits"])
    if "collect" in after:
        collect = after["collect"]
        measures.add("card payments collected", collect["collected"])
        measures.add("card payments declined", len(collect["declined"]))
        measures.add("direct debits pending", collect["debits_pending"])
        measures.add("accounts in dunning", len(collect["dunning"]))
        _sepa_rows(measures, collect["files"], settings)
    if "refund" in after:
        refund = after["refund"]
        measures.add("card refunds", refund["refunded"])
        measures.add("refund transfers pending", refund["transfers_pending"])
        _sepa_rows(measures, refund["files"], settings)
    return measures


def _sepa_rows(measures: Measures, paths: list[str], settings: Any) -> None:
    """One row per SEPA file, named by the file, so that a run's several files all show."""
    for path in paths:
        text = file_text(path, settings.output_dir, settings.files_url)
        measures.add(f"SEPA file {Path(path).name}", path, text)


def _run_summary(
    title: str,
    database: str | None,
    run_id: str,
    dry_run: bool,
    billing: BatchResult,
    deferred: dict[str, Any],
    after: dict[str, Any],
    checks: dict[str, Any],
    rendered: dict[str, Any],
    settings: Any,
) -> None:
    """The run summary (markdown): the bills of this run per currency, counts per step, and
    the change against the previous bill day."""
    steps = _step_counts(billing, deferred, after, checks, rendered)
    if dry_run:
        note = "Dry run: nothing was written. Gross that would be billed: " + (
            ", ".join(run_report.money(v, c) for c, v in sorted(billing.totals.items()))
            or run_report.NOTHING
        )
        text = run_report.summary_markdown(title, {}, steps, note=note)
    else:
        previous = _previous_run()
        runs = [run_id] + ([previous[0]] if previous else [])
        totals = bills_of_runs(database, runs[:1])
        before = bills_of_runs(database, runs[1:]) if previous else None
        files = []
        if checks.get("data_docs"):
            files.append(
                file_markdown(
                    "Data Docs of the checks",
                    checks["data_docs"],
                    settings.output_dir,
                    settings.files_url,
                )
            )
        for path in after.get("collect", {}).get("files", []) + after.get("refund", {}).get(
            "files", []
        ):
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


def _step_counts(
    billing: BatchResult,
    deferred: dict[str, Any],
    after: dict[str, Any],
    checks: dict[str, Any],
    rendered: dict[str, Any],
) -> list[StepCount]:
    counts = []
    if deferred:
        counts += [
            StepCount("deferred actions", "done", deferred["done"]),
            StepCount("deferred actions", "failed", len(deferred["failed"])),
        ]
    counts += [
        StepCount("billing", "bill units due", billing.units),
        StepCount("billing", "billed", billing.billed),
        StepCount("billing", "failed", len(billing.failed)),
        StepCount("billing", "bills", billing.bills),
        StepCount("billing", "usage records rated", billing.usage_collected),
    ]
    if "invoices" in after:
        counts.append(
            StepCount("numbering", "bills numbered", run_report.numbered(after["invoices"]))
        )
    if "cycle_fees" in after:
        fees = after["cycle_fees"]
        counts += [
            StepCount("cycle fees", "items cancelled", fees["cancelled_items"]),
            StepCount("cycle fees", "cancellation credits", fees["credits"]),
        ]
    if "collect" in after:
        collect = after["collect"]
        counts += [
            StepCount("collection", "card payments collected", collect["collected"]),
            StepCount("collection", "card payments declined", len(collect["declined"])),
            StepCount("collection", "direct debits pending", collect["debits_pending"]),
        ]
    if "refund" in after:
        refund = after["refund"]
        counts += [
            StepCount("refunds", "card refunds", refund["refunded"]),
            StepCount("refunds", "refund transfers pending", refund["transfers_pending"]),
        ]
    if "passed" in checks:
        counts += [
            StepCount("checks", "passed", checks["passed"]),
            StepCount("checks", "failed", len(checks["failed"])),
        ]
    if rendered:
        counts += [
            StepCount("documents", "rendered", rendered["rendered"]),
            StepCount("documents", "failed", len(rendered["failed"])),
            StepCount("e-mail queueing", "e-mails queued", rendered["emails queued"]),
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
