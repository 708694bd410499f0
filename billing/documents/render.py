"""Render invoices to the document store: XML export, CII (checked), Factur-X PDF.

``render_invoice`` is the pure-ish core (values in, bytes out). ``render_bills`` renders a
batch read from the database, writes the files, queues the e-mails, and reports per-invoice
failures as data. ``render_in_processes`` fans batches out over worker processes (spawned:
safe under a threaded parent such as a Prefect flow), each keeping its renderer and engine.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import Engine

from billing.documents.cii import build_cii, check_tax_breakdown
from billing.documents.errors import DocumentError
from billing.documents.legal import check_vat
from billing.documents.model import Invoice, load_invoices
from billing.documents.outbox import enqueue_invoices
from billing.documents.pdf import InvoiceRenderer
from billing.documents.seller import Seller
from billing.documents.store import DocumentStore, document_name
from billing.documents.validation import (
    validate_cii_schematron,
    validate_cii_xsd,
    validate_invoice_xml,
)
from billing.documents.xml_export import invoice_xml
from billing.domain.results import Mergeable
from billing.failpoints import failpoint
from billing.store.db import make_engine, unit_of_work

SCHEMATRON_MODES = ("off", "sample", "all")


@dataclass(frozen=True)
class RenderedInvoice:
    """The three documents of one invoice."""

    xml: bytes
    cii: bytes
    pdf: bytes


def render_invoice(
    invoice: Invoice, renderer: InvoiceRenderer, *, schematron: bool = False
) -> RenderedInvoice:
    """Build and check the XML export and the CII, then the Factur-X PDF carrying the CII."""
    xml = invoice_xml(invoice, renderer.seller)
    validate_invoice_xml(xml)
    check_tax_breakdown(invoice)
    check_vat(invoice, renderer.seller.country)
    tree = build_cii(invoice, renderer.seller)
    validate_cii_xsd(tree)
    cii = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    if schematron:
        validate_cii_schematron(cii)
    return RenderedInvoice(xml=xml, cii=cii, pdf=renderer.pdf(invoice, cii))


def render_preview(invoice: Invoice, renderer: InvoiceRenderer) -> bytes:
    """The PDF of an invoice preview (``billing.ops.preview``), after the checks an invoice's
    figures pass (tax breakdown, VAT categories); no XML, no CII, no Factur-X attachment."""
    check_tax_breakdown(invoice)
    check_vat(invoice, renderer.seller.country)
    return renderer.preview_pdf(invoice)


def preview_paths(path: Path, count: int) -> list[Path]:
    """``path`` for the first previewed bill, ``name-2.pdf``, ``name-3.pdf``... for the others
    (an account several cycles behind gets one bill per cycle)."""
    return [path] + [path.with_name(f"{path.stem}-{n}{path.suffix}") for n in range(2, count + 1)]


def write_previews(invoices: Sequence[Invoice], path: Path, seller: Seller) -> list[Path]:
    """Write the preview PDF of each previewed bill (``preview_paths``); returns the paths.
    ``OSError`` when a file cannot be written."""
    renderer = InvoiceRenderer(seller)
    paths = preview_paths(path, len(invoices))
    for invoice, target in zip(invoices, paths, strict=True):
        data = render_preview(invoice, renderer)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return paths


@dataclass
class RenderResult(Mergeable):
    """What a batch did: invoices rendered, e-mails queued, failures by bill number."""

    rendered: int = 0
    skipped: int = 0
    queued: int = 0
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderSettings:
    """Plain values a worker process needs (picklable)."""

    database_url: str
    store_url: str
    seller: dict[str, Any]
    schematron: str = "sample"
    skip_existing: bool = False
    enqueue_email: bool = False
    email_domain: str = "openbill.example"

    def __post_init__(self) -> None:
        if self.schematron not in SCHEMATRON_MODES:
            raise DocumentError(f"schematron must be one of {SCHEMATRON_MODES}")


def render_bills(
    engine: Engine,
    bill_ids: Sequence[int],
    renderer: InvoiceRenderer,
    store: DocumentStore,
    settings: RenderSettings,
) -> RenderResult:
    """Render a batch of bills into the store; queue their e-mails when asked."""
    result = RenderResult()
    done: list[Invoice] = []
    with unit_of_work(engine) as session:
        invoices = list(load_invoices(session, bill_ids))
    for position, invoice in enumerate(invoices):
        pdf_name, xml_name = document_name(invoice, "pdf"), document_name(invoice, "xml")
        if settings.skip_existing and store.exists(pdf_name) and store.exists(xml_name):
            result.skipped += 1
            done.append(invoice)
            continue
        schematron = settings.schematron == "all" or (
            settings.schematron == "sample" and position == 0
        )
        try:
            documents = render_invoice(invoice, renderer, schematron=schematron)
        except DocumentError as error:
            result.failed[invoice.bill_no] = str(error)
            continue
        store.write(xml_name, documents.xml)
        store.write(pdf_name, documents.pdf)
        failpoint("render.pdf_stored")
        result.rendered += 1
        done.append(invoice)
    if settings.enqueue_email and done:
        with unit_of_work(engine) as session:
            result.queued = enqueue_invoices(session, done, domain=settings.email_domain)
            failpoint("render.before_enqueue_commit")
    return result


@cache
def _worker_engine(url: str) -> Engine:
    return make_engine(url)


@cache
def _worker_renderer(seller: tuple[tuple[str, Any], ...]) -> InvoiceRenderer:
    return InvoiceRenderer(Seller.from_dict(dict(seller)))


def render_batch(settings: RenderSettings, bill_ids: Sequence[int]) -> RenderResult:
    """One batch in this process, with the process's cached engine and renderer."""
    renderer = _worker_renderer(tuple(sorted(settings.seller.items())))
    return render_bills(
        _worker_engine(settings.database_url),
        bill_ids,
        renderer,
        DocumentStore(settings.store_url),
        settings,
    )


def _warm_up(seller: dict[str, Any]) -> None:
    """Build the renderer (fonts, CSS, logo) once per worker, before the first batch."""
    _worker_renderer(tuple(sorted(seller.items())))
    settle_heap()


def settle_heap(young_threshold: int = 10_000) -> None:
    """Set a worker's garbage collector for rendering: what it keeps (renderer, fonts,
    schemas) is frozen out of collections, and young objects are collected every 10,000
    allocations instead of 700. WeasyPrint allocates so much per page that the default made
    the collector walk the heap many times per invoice (about 5 % of a worker's CPU)."""
    gc.freeze()
    gc.set_threshold(young_threshold, *gc.get_threshold()[1:])


def chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def render_in_processes(
    settings: RenderSettings,
    bill_ids: Sequence[int],
    *,
    processes: int | None = None,
    per_batch: int = 50,
) -> RenderResult:
    """Render ``bill_ids`` in batches over ``processes`` worker processes (1: in this one)."""
    processes = processes or os.cpu_count() or 1
    batches = list(chunks(bill_ids, per_batch))
    if processes == 1 or len(batches) <= 1:
        total = RenderResult()
        for batch in batches:
            total = total.merge(render_batch(settings, batch))
        return total
    total = RenderResult()
    with ProcessPoolExecutor(
        max_workers=min(processes, len(batches)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_warm_up,
        initargs=(settings.seller,),
    ) as pool:
        for future in as_completed([pool.submit(render_batch, settings, b) for b in batches]):
            total = total.merge(future.result())
    return total
