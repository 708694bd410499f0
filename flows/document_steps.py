"""The documents step: render invoices (XML, Factur-X PDF) over worker processes.

Used by bill day after its checks gate, and by the ``render-invoices`` flow. The blocks
(``SellerIdentity``, ``DocumentStoreLocation``, ``SmtpServer``) fall back to local defaults
when no block of that name exists, as the other blocks do.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from billing.documents.mail import SmtpSettings
from billing.documents.model import invoice_ids
from billing.documents.render import RenderSettings, render_in_processes
from billing.documents.seller import DEFAULT_SELLER, Seller
from billing.ops.run_report import count
from billing.store.db import unit_of_work
from blocks.document_store import DocumentStoreLocation
from blocks.seller_identity import SellerIdentity
from blocks.smtp_server import SmtpServer
from flows.report import Measures, RunProgress
from flows.runtime import engine_for, load_settings, resolve_database_url, transient_only

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


@task(name="find_invoices_to_render", **RETRIES)
def find_invoices_to_render(
    database: str | None,
    run_id: str | None = None,
    bill_dates: tuple[date, date] | None = None,
    bill_nos: list[str] | None = None,
    unqueued_through: date | None = None,
) -> list[int]:
    """List the numbered bills of a run, of a date range, with given numbers, or not queued."""
    with unit_of_work(engine_for(database)) as session:
        return invoice_ids(
            session,
            run_id=run_id,
            bill_dates=bill_dates,
            bill_nos=bill_nos,
            unqueued_through=unqueued_through,
        )


@task(name="render_invoice_documents", **RETRIES)
def render_invoice_documents(
    database: str | None,
    bill_ids: list[int],
    store_url: str,
    seller: dict[str, Any],
    processes: int | None = None,
    per_batch: int = 50,
    schematron: str = "sample",
    skip_existing: bool = False,
    enqueue_email: bool = False,
) -> dict[str, Any]:
    """Render invoices to the document store, in batches over worker processes."""
    settings = RenderSettings(
        database_url=resolve_database_url(database),
        store_url=store_url,
        seller=seller,
        schematron=schematron,
        skip_existing=skip_existing,
        enqueue_email=enqueue_email,
        email_domain=Seller.from_dict(seller).mail_domain,
    )
    result = render_in_processes(settings, bill_ids, processes=processes, per_batch=per_batch)
    return {
        "rendered": result.rendered,
        "skipped": result.skipped,
        "emails queued": result.queued,
        "failed": result.failed,
    }


def render_documents(
    database: str | None,
    *,
    run_id: str | None = None,
    bill_dates: tuple[date, date] | None = None,
    bill_nos: list[str] | None = None,
    unqueued_through: date | None = None,
    store_block: str = "default",
    seller_block: str = "default",
    processes: int | None = None,
    per_batch: int = 50,
    schematron: str = "sample",
    skip_existing: bool = False,
    enqueue_email: bool = False,
    progress: RunProgress | None = None,
) -> dict[str, Any]:
    """Find the invoices, render them, and publish a table artifact; returns the summary.

    progress: the run's progress artifact, moved after the search and after rendering.
    """
    logger = get_run_logger()
    ids = find_invoices_to_render(database, run_id, bill_dates, bill_nos, unqueued_through)
    if progress is not None:
        progress.step("finding invoices", note=f"{count(len(ids))} invoice(s) to render")
    store_url = load_store_url(store_block)
    summary = render_invoice_documents(
        database,
        ids,
        store_url,
        load_seller(seller_block).to_dict(),
        processes,
        per_batch,
        schematron,
        skip_existing,
        enqueue_email,
    )
    if progress is not None:
        progress.step("rendering", note=f"{count(summary['rendered'])} rendered")
    logger.info(
        "documents: %s rendered, %s skipped, %s failed, %s e-mail(s) queued, in %s",
        summary["rendered"],
        summary["skipped"],
        len(summary["failed"]),
        summary["emails queued"],
        store_url,
    )
    measures = Measures()
    measures.add("invoices", len(ids))
    measures.add("rendered", summary["rendered"])
    measures.add("skipped (already stored)", summary["skipped"])
    measures.add("e-mails queued", summary["emails queued"])
    measures.add("failed", len(summary["failed"]))
    measures.add("document store", store_url, _store_text(store_url))
    for no, why in summary["failed"].items():
        measures.add(f"failed {no}", why[:500])
    measures.publish("invoice-documents", "Invoice documents")
    return summary


def _store_text(store_url: str) -> str:
    """The document store as the UI can open it: ``<files_url>/documents/`` when the stack
    serves it over HTTP, else its folder (or URL)."""
    settings = load_settings(flow_run.parameters.get("settings_block") or "default")
    if settings.files_url and "://" not in store_url:
        return f"{settings.files_url.rstrip('/')}/documents/"
    return store_url if "://" in store_url else str(Path(store_url).resolve())


class DocumentsFailed(RuntimeError):
    """Some invoices could not be rendered: the run ends Failed and names them."""
