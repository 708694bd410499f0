"""The documents step: render invoices (XML, Factur-X PDF) over worker processes.

Used by bill day after its checks gate, and by the ``render-invoices`` flow. The blocks
(``SellerIdentity``, ``DocumentStoreLocation``, ``SmtpServer``) fall back to local defaults
when no block of that name exists, as the other blocks do.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.tasks import exponential_backoff

from billing.documents.mail import SmtpSettings
from billing.documents.seller import DEFAULT_SELLER, Seller
from billing.jobs import bill_day as job
from billing.jobs.bill_day import Documents, DocumentsFailed
from billing.jobs.runner import Call
from billing.ops.run_report import count
from blocks.bill_run_settings import BillRunSettings
from blocks.document_store import DocumentStoreLocation
from blocks.seller_identity import SellerIdentity
from blocks.smtp_server import SmtpServer
from flows.jobs import PrefectRunner
from flows.report import Measures, RunProgress
from flows.runtime import load_settings, resolve_database_url, transient_only

__all__ = ["DocumentsFailed", "documents_setup", "publish_documents", "render_documents"]

RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": transient_only,
}
DEFAULT_STORE = "var/documents"
DEFAULT_SMTP = SmtpSettings(host="localhost", port=8025, security="none")


def _block(kind: type[Any], name: str | None) -> Any:
    if not name:
        return None
    try:
        return kind.load(name)
    except ValueError:  # no block document of that name: the local default
        return None


def load_seller(name: str | None) -> Seller:
    """The SellerIdentity block as a ``Seller``, or the demo seller for local runs."""
    block = _block(SellerIdentity, name)
    if block is None:
        return DEFAULT_SELLER
    return Seller.from_dict(block.model_dump(exclude={"block_type_slug"}))


def load_store_url(name: str | None) -> str:
    """The document store's folder or URL (``var/documents`` when there is no block)."""
    block = _block(DocumentStoreLocation, name)
    return block.url if block is not None else DEFAULT_STORE


def load_smtp(name: str | None) -> SmtpSettings:
    """The SmtpServer block as ``SmtpSettings`` (``localhost:8025`` plain without one)."""
    block = _block(SmtpServer, name)
    if block is None:
        return DEFAULT_SMTP
    return SmtpSettings(
        host=block.host,
        port=block.port,
        security=block.security,
        username=block.username,
        password=block.password.get_secret_value(),
        timeout=block.timeout_seconds,
        sender=block.sender,
        sender_name=block.sender_name,
        verify_certificate=block.verify_certificate,
    )


def documents_setup(
    store_block: str = "default",
    seller_block: str = "default",
    processes: int | None = None,
    per_batch: int = 50,
    schematron: str = "sample",
) -> Documents:
    """The documents step's setup from the blocks: the store, the seller, the worker pool."""
    return Documents(
        store_url=load_store_url(store_block),
        seller=load_seller(seller_block),
        processes=processes,
        per_batch=per_batch,
        schematron=schematron,
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
    documents = documents_setup(store_block, seller_block, processes, per_batch, schematron)
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
            (settings, ids, processes, per_batch),
        )
    )
    summary["invoices"] = len(ids)
    runner.progress("rendering", note=f"{count(summary['rendered'])} rendered")
    publish_documents(summary, documents, load_settings(settings_block))
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
    for no, why in summary["failed"].items():
        measures.add(f"failed {no}", why[:500])
    measures.publish("invoice-documents", "Invoice documents")


def _store_text(store_url: str, files_url: str) -> str:
    """The document store as the UI can open it: ``<files_url>/documents/`` when the stack
    serves it over HTTP, else its folder (or URL)."""
    if files_url and "://" not in store_url:
        return f"{files_url.rstrip('/')}/documents/"
    return store_url if "://" in store_url else str(Path(store_url).resolve())
