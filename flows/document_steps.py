"""The documents step: render invoices (XML, Factur-X PDF) over worker processes.

Used by bill day after its checks gate, and by the ``render-invoices`` flow. The blocks
(``SellerIdentity``, ``DocumentStoreLocation``, ``SmtpServer``) fall back to local defaults
when no block of that name exists, as the other blocks do.

Where the batches render (``documents_scheduler``): on the Dask scheduler named by the Bill
Run Settings block's ``documents_dask_address``, else on the Dask cluster the flow itself
runs its tasks on (``flows/scale.py``), else in local worker processes.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.context import FlowRunContext

from billing.jobs import bill_day as job
from billing.jobs.bill_day import Documents, DocumentsFailed
from billing.jobs.runner import Call
from billing.ops.run_report import count
from blocks.bill_run_settings import BillRunSettings
from flows.jobs import PrefectRunner
from flows.report import Measures, RunProgress
from flows.runtime import (
    DEFAULT_STORE,
    load_seller,
    load_settings,
    load_store_url,
    resolve_database_url,
)

__all__ = ["DocumentsFailed", "documents_setup", "publish_documents", "render_documents"]


def documents_scheduler(configured: str = "") -> str | None:
    """The Dask scheduler the documents step renders on: ``configured`` (the settings'
    ``documents_dask_address``), else the scheduler of the running flow's
    ``DaskTaskRunner``, else None (local worker processes)."""
    if configured:
        return configured
    context = FlowRunContext.get()
    dask = sys.modules.get("prefect_dask")  # not imported: the flow cannot run on Dask
    if context is None or dask is None or not isinstance(context.task_runner, dask.DaskTaskRunner):
        return None
    return str(context.task_runner.client.scheduler.address)


def documents_setup(
    store_block: str = "default",
    seller_block: str = "default",
    processes: int | None = None,
    per_batch: int = 50,
    schematron: str = "sample",
    dask_address: str = "",
) -> Documents:
    """The documents step's setup from the blocks: the store, the seller, where to render
    (``documents_scheduler(dask_address)``, else ``processes`` local processes)."""
    return Documents(
        store_url=load_store_url(store_block),
        seller=load_seller(seller_block),
        processes=processes,
        per_batch=per_batch,
        schematron=schematron,
        dask_scheduler=documents_scheduler(dask_address),
    )


def render_documents(
    database: str | None,
    *,
    run_id: str | None = None,
    bill_dates: tuple[date, date] | None = None,
    bill_nos: list[str] | None = None,
    unqueued_through: date | None = None,
    store_block: str = "default",
    seller_block: str = "default",
    settings_block: str = "default",
    processes: int | None = None,
    per_batch: int = 50,
    schematron: str = "sample",
    skip_existing: bool = False,
    enqueue_email: bool = False,
    progress: RunProgress | None = None,
) -> dict[str, Any]:
    """Find the invoices, render them, and publish a table artifact; returns the summary.

    The two steps are the bill-day job's (``billing.jobs.bill_day``), run as task runs.
    progress: the run's progress artifact, moved after the search and after rendering.
    """
    runner = PrefectRunner(progress)
    url = resolve_database_url(database)
    settings_of_run = load_settings(settings_block)
    documents = documents_setup(
        store_block,
        seller_block,
        processes,
        per_batch,
        schematron,
        settings_of_run.documents_dask_address,
    )
    ids = runner.step(
        Call(
            "find_invoices_to_render",
            job.find_invoices_to_render,
            (url, run_id, bill_dates, bill_nos, unqueued_through),
        )
    )
    runner.progress("finding invoices", note=f"{count(len(ids))} invoice(s) to render")
    settings = job.render_settings(
        url, documents, skip_existing=skip_existing, enqueue_email=enqueue_email
    )
    summary = runner.step(
        Call(
            "render_invoice_documents",
            job.render_invoice_documents,
            (settings, ids, processes, per_batch, documents.dask_scheduler),
        )
    )
    summary["invoices"] = len(ids)
    runner.progress("rendering", note=f"{count(summary['rendered'])} rendered")
    publish_documents(summary, documents, settings_of_run)
    return summary


def publish_documents(
    summary: dict[str, Any], documents: Documents | None, settings: BillRunSettings
) -> None:
    """The ``invoice-documents`` table: how many rendered, skipped, queued, failed, where."""
    store_url = documents.store_url if documents is not None else DEFAULT_STORE
    get_run_logger().info(
        "documents: %s rendered, %s skipped, %s failed, %s e-mail(s) queued, in %s",
        summary["rendered"],
        summary["skipped"],
        len(summary["failed"]),
        summary["emails queued"],
        store_url,
    )
    measures = Measures()
    measures.add("invoices", summary["invoices"])
    measures.add("rendered", summary["rendered"])
    measures.add("skipped (already stored)", summary["skipped"])
    measures.add("e-mails queued", summary["emails queued"])
    measures.add("failed", len(summary["failed"]))
    measures.add("document store", store_url, _store_text(store_url, settings.files_url))
    if documents is not None:
        measures.add("rendered on", documents.dask_scheduler or "local worker processes")
    for no, why in summary["failed"].items():
        measures.add(f"failed {no}", why[:500])
    measures.publish("invoice-documents", "Invoice documents")


def _store_text(store_url: str, files_url: str) -> str:
    """The document store as the UI can open it: ``<files_url>/documents/`` when the stack
    serves it over HTTP, else its folder (or URL)."""
    if files_url and "://" not in store_url:
        return f"{files_url.rstrip('/')}/documents/"
    return store_url if "://" in store_url else str(Path(store_url).resolve())
