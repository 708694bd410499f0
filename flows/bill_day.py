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

import json
from collections import deque
from datetime import date
from pathlib import Path
from time import perf_counter
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.concurrency.sync import concurrency
from prefect.context import get_run_context
from prefect.tasks import exponential_backoff

from billing import billday
from billing.billrun import BatchResult, bill_batch
from billing.provisioning import notify_status_changes
from flows.runtime import (
    engine_for,
    ensure_concurrency_limit,
    load_settings,
    load_webhook,
    today_if_none,
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
def post_billing_checks(database: str | None, as_of: date, output_dir: str) -> dict[str, Any]:
    """Run the Great Expectations suites over the billed data; report counts and samples."""
    from expectations.runner import run_post_billing_checks  # GE takes seconds to import

    report = run_post_billing_checks(engine_for(database), as_of, Path(output_dir))
    rows = [
        {
            "expectation": r.name,
            "success": r.success,
            "unexpected": r.unexpected_count,
            "sample": json.dumps(r.sample, default=str)[:1000] if r.sample else r.error or "",
        }
        for r in report.results
    ]
    create_table_artifact(
        rows,
        key="post-billing-checks",
        description=f"Post-billing checks as of {as_of}. Data Docs: {report.data_docs}",
    )
    create_markdown_artifact(
        f"Data Docs of the post-billing checks: [{report.data_docs}]({report.data_docs.as_uri()})",
        key="post-billing-data-docs",
    )
    return {
        "success": report.success,
        "failed": [f"{r.name} ({r.unexpected_count})" for r in report.failed],
        "data_docs": str(report.data_docs),
    }


def _after_billing(database: str | None, as_of: date, run_id: str) -> dict[str, Any]:
    """Number the new bills, then run the steps that follow side by side; each gives a summary.

    Numbering first: it rewrites every new bill in one statement and holds each bill's row lock
    until it commits, and a payment inserted meanwhile checks its bill under a key-share lock,
    so collection beside numbering deadlocked (1,000,000 accounts). Numbered bills also give
    the SEPA remittance texts their bill numbers.
    """
    from flows.payment_steps import collect_payments, refund_payments

    invoices = number_invoices(database)
    futures = {
        "cycle_fees": apply_cycle_fees.submit(database, as_of, run_id),
        "collect": collect_payments.submit(database, as_of, run_id),
        "refund": refund_payments.submit(database, as_of, run_id),
    }
    return {"invoices": invoices, **{name: f.result() for name, f in futures.items()}}


def _run_batches(
    database: str | None,
    as_of: date,
    run_id: str,
    settings: Any,
    accounts: list[str] | None,
    dry_run: bool,
) -> BatchResult:
    """Fan the due units out in batches, at most ``children`` in flight, in catch-up passes."""
    logger = get_run_logger()
    ensure_concurrency_limit(BATCH_LIMIT, settings.children)
    progress = create_progress_artifact(0.0, key="bill-day-progress", description="Bill units")
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
            update_progress_artifact(progress, _percent(total.merge(done), settings))
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
    update_progress_artifact(progress, 100.0)
    return total


def _percent(result: BatchResult, _settings: Any) -> float:
    handled = result.billed + len(result.failed)
    return 100.0 * handled / max(result.units, 1)


@flow(name="bill-day")
def bill_day(
    as_of: date | None = None,
    dry_run: bool = False,
    accounts: list[str] | None = None,
    settings_block: str = "default",
    database_block: str = "default",
    webhook_block: str = "provisioning",
    documents: bool = True,
) -> dict[str, Any]:
    """BRM pin_bill_day as of a virtual date: bill due accounts, number, cycle fees.

    as_of: the run's only clock (pin_virtual_time); today when empty.
    dry_run: compute and report what would be billed; write nothing.
    accounts: account refs, to re-run only these accounts.
    documents: render the invoices' XML and PDF after the checks (off for a billing-only
    run; the render-invoices flow renders them later).
    """
    as_of = today_if_none(as_of)
    settings = load_settings(settings_block)
    logger = get_run_logger()
    logger.setLevel(settings.log_level)
    run_id = str(get_run_context().flow_run.id)
    timings: dict[str, float] = {}
    logger.info("bill day as of %s%s", as_of, " (dry run)" if dry_run else "")

    started = perf_counter()
    if not dry_run:
        deferred = execute_deferred_actions(database_block, as_of)
        _provision(deferred["changes"], settings, webhook_block)
        timings["deferred_actions"] = perf_counter() - started

    started = perf_counter()
    billing = _run_batches(database_block, as_of, run_id, settings, accounts, dry_run)
    timings["bill_accounts"] = perf_counter() - started

    after: dict[str, Any] = {}
    checks: dict[str, Any] = {"success": True, "failed": []}
    if not dry_run:
        started = perf_counter()
        analyze_billed_tables(database_block)
        after = _after_billing(database_block, as_of, run_id)
        timings["invoices, cycle fees, collect, refund"] = perf_counter() - started
        started = perf_counter()
        output = Path(settings.output_dir) / as_of.isoformat() / run_id
        checks = post_billing_checks(database_block, as_of, str(output))
        timings["post_billing_checks"] = perf_counter() - started

    summary = _report(as_of, dry_run, billing, after, timings)
    failed = {**billing.failed, **after.get("cycle_fees", {}).get("failed", {})}
    if failed:
        names = ", ".join(sorted(failed)[:20])
        raise BillDayFailed(f"{len(failed)} account(s) failed: {names}. See billing_issues.")
    if not checks["success"]:
        raise PostBillingChecksFailed(
            f"post-billing checks failed: {', '.join(checks['failed'])}; "
            f"nothing is rendered or sent. Data Docs: {checks['data_docs']}"
        )
    if documents and not dry_run:  # XML and Factur-X PDF, only after the checks gate passed
        from flows.document_steps import DocumentsFailed, render_documents

        started = perf_counter()
        documents = render_documents(  # with what an interrupted run left unqueued
            database_block,
            run_id=run_id,
            bill_dates=(as_of, as_of),
            unqueued_through=as_of,
            enqueue_email=True,
        )
        timings["documents"] = perf_counter() - started
        summary["documents rendered"] = documents["rendered"]
        summary["invoice e-mails queued"] = documents["emails queued"]
        summary["seconds documents"] = f"{timings['documents']:.2f}"
        if documents["failed"]:
            names = ", ".join(sorted(documents["failed"])[:20])
            raise DocumentsFailed(f"{len(documents['failed'])} invoice(s) not rendered: {names}")
    return summary


def _provision(changes: list[Any], settings: Any, webhook_block: str) -> None:
    if not changes or settings.simulate_agent:
        return
    webhook = load_webhook(webhook_block)
    if webhook is not None:
        notify_provisioning(webhook.url, webhook.timeout_seconds, changes)


def _report(
    as_of: date,
    dry_run: bool,
    billing: BatchResult,
    after: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The run's table artifact: billed / failed / empty cycles, bills, totals, time per step."""
    rows = [
        {"measure": "as_of", "value": as_of.isoformat()},
        {"measure": "dry run", "value": str(dry_run)},
        {"measure": "bill units due", "value": billing.units},
        {"measure": "billed", "value": billing.billed},
        {"measure": "failed", "value": len(billing.failed)},
        {"measure": "cycles with nothing to bill", "value": billing.empty_cycles},
        {"measure": "bills", "value": billing.bills},
        {"measure": "usage records rated", "value": billing.usage_collected},
    ]
    rows += [{"measure": f"total {c}", "value": str(v)} for c, v in sorted(billing.totals.items())]
    for numbered in after.get("invoices", []):
        first, count = numbered["first"], numbered["count"]
        rows.append(
            {"measure": f"numbers {numbered['series']}", "value": f"{first}..{first + count - 1}"}
        )
    if "cycle_fees" in after:
        fees = after["cycle_fees"]
        rows.append({"measure": "items cancelled", "value": fees["cancelled_items"]})
        rows.append({"measure": "cancellation credits", "value": fees["credits"]})
    if "collect" in after:
        collect = after["collect"]
        rows.append({"measure": "card payments collected", "value": collect["collected"]})
        rows.append({"measure": "card payments declined", "value": len(collect["declined"])})
        rows.append({"measure": "direct debits pending", "value": collect["debits_pending"]})
        rows.append({"measure": "accounts in dunning", "value": len(collect["dunning"])})
        rows += _sepa_rows(collect["files"])
    if "refund" in after:
        refund = after["refund"]
        rows.append({"measure": "card refunds", "value": refund["refunded"]})
        rows.append({"measure": "refund transfers pending", "value": refund["transfers_pending"]})
        rows += _sepa_rows(refund["files"])
    rows += [{"measure": f"seconds {k}", "value": f"{v:.2f}"} for k, v in timings.items()]
    rows += [
        {"measure": f"failed {ref}", "value": why} for ref, why in sorted(billing.failed.items())
    ]
    create_table_artifact(rows, key="bill-day-summary", description=f"Bill day {as_of}")
    return {row["measure"]: row["value"] for row in rows}


def _sepa_rows(paths: list[str]) -> list[dict[str, Any]]:
    """One row per SEPA file, named by the file, so that a run's several files all show."""
    return [{"measure": f"SEPA file {Path(path).name}", "value": path} for path in paths]
