"""The invoice PDF: Jinja2 (autoescape on) -> WeasyPrint PDF/A-3b -> Factur-X (factur-x).

Rendering the same bill twice gives the same bytes: the PDF's dates come from the bill date
(HTML ``dcterms`` metadata for WeasyPrint, a fixed clock for factur-x, which otherwise reads
the wall clock), and the file identifiers are digests of the content. Resources come only
from ``AssetFetcher``: a template or a customer field that names ``file:`` or ``http:`` is
never fetched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import cached_property
from pathlib import Path
from typing import Any

import facturx.facturx as _facturx
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration

from billing.documents.cii import inclusive_end, tax_breakdown
from billing.documents.errors import UnsafeResourceError
from billing.documents.fetcher import AssetFetcher, asset, packaged_assets
from billing.documents.formatting import Formatter
from billing.documents.model import Invoice, Line
from billing.documents.seller import Seller

TEMPLATES = Path(__file__).parent / "templates"
PDF_VARIANT = "pdf/a-3b"
_CLOCK_LOCK = threading.Lock()


def document_moment(invoice: Invoice) -> datetime:
    """The PDF's creation and modification time: midnight UTC of the bill date."""
    return datetime.combine(invoice.bill_date, time(0, 0), tzinfo=UTC)


@contextmanager
def _facturx_clock(moment: datetime) -> Iterator[None]:
    """Make factur-x stamp ``moment`` instead of the wall clock (its only time source)."""
    pdf_stamp = moment.strftime("D:%Y%m%d%H%M%S+00'00'")
    xmp_stamp = moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    with _CLOCK_LOCK:
        saved = _facturx._get_pdf_timestamp, _facturx._get_metadata_timestamp
        _facturx._get_pdf_timestamp = lambda date=None: pdf_stamp
        _facturx._get_metadata_timestamp = lambda: xmp_stamp
        try:
            yield
        finally:
            _facturx._get_pdf_timestamp, _facturx._get_metadata_timestamp = saved


@dataclass(frozen=True)
class _LineView:
    line: Line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.line, name)

    @property
    def last_day(self) -> Any:
        return inclusive_end(self.line.period_start, self.line.period_end)


def _group_iban(iban: str | None) -> str:
    compact = (iban or "").replace(" ", "")
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


class InvoiceRenderer:
    """Renders invoices of one seller; build one per process and reuse it (fonts, CSS, logo).

    strict: refuse to produce a PDF whose template or data named a resource we do not serve.
    """

    def __init__(self, seller: Seller, *, templates: Path = TEMPLATES, strict: bool = True) -> None:
        self.seller = seller
        self.strict = strict
        self._env = Environment(
            loader=FileSystemLoader(str(templates)),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._template = self._env.get_template("invoice.html.j2")
        self._assets = packaged_assets()
        logo = (
            Path(seller.logo_path)
            if seller.logo_path
            else Path(__file__).parent / "assets" / "logo.svg"
        )
        self._assets.update([asset(logo, "logo")])
        self._fonts = FontConfiguration()
        self._css = CSS(
            string=(templates / "invoice.css").read_text(encoding="utf-8"),
            font_config=self._fonts,
            url_fetcher=AssetFetcher(self._assets),
        )

    def html(self, invoice: Invoice) -> str:
        """The invoice as HTML (every value escaped by Jinja2's autoescape)."""
        f = Formatter.for_account(invoice.language, invoice.buyer.country, invoice.currency)
        taxes = [
            {"rate": rate, "base": base, "tax": tax}
            for _, rate, base, tax in tax_breakdown(invoice)
        ]
        return self._template.render(
            invoice=invoice,
            seller=self.seller,
            lines=[_LineView(line) for line in invoice.lines],
            taxes=taxes,
            period_last=inclusive_end(invoice.period_start, invoice.period_end),
            buyer_iban=_group_iban(invoice.payment.iban),
            seller_iban=_group_iban(self.seller.iban),
            created=document_moment(invoice).strftime("%Y-%m-%dT%H:%M:%SZ"),
            f=f,
            t=f.labels,
        )

    def visual_pdf(self, html: str) -> bytes:
        """The PDF/A-3b of an HTML document, fetching packaged assets only."""
        fetcher = AssetFetcher(self._assets)
        pdf = HTML(string=html, url_fetcher=fetcher).write_pdf(
            stylesheets=[self._css], font_config=self._fonts, pdf_variant=PDF_VARIANT
        )
        if fetcher.refused and self.strict:
            raise UnsafeResourceError(f"refused resources: {', '.join(fetcher.refused)[:500]}")
        return pdf

    @cached_property
    def _author(self) -> str:
        return self.seller.name

    def facturx_pdf(self, invoice: Invoice, visual: bytes, cii: bytes) -> bytes:
        """Embed the CII as ``factur-x.xml`` (PDF/A-3 attachment, EN 16931 profile)."""
        f = Formatter.for_account(invoice.language, invoice.buyer.country, invoice.currency)
        title = f"{self.seller.name}: {f.labels['invoice']} {invoice.bill_no}"
        metadata = {
            "author": self._author,
            "keywords": "Factur-X, EN 16931, invoice",
            "title": title,
            "subject": f"Factur-X invoice {invoice.bill_no} dated {invoice.bill_date.isoformat()}",
        }
        with _facturx_clock(document_moment(invoice)):
            return _facturx.generate_from_binary(
                visual,
                cii,
                flavor="factur-x",
                level="en16931",
                check_xsd=False,  # validated before, with a cached schema (validation.py)
                check_schematron=False,
                pdf_metadata=metadata,
                lang=f.lang,
            )

    def pdf(self, invoice: Invoice, cii: bytes) -> bytes:
        """The Factur-X PDF of an invoice whose CII is already built and checked."""
        return self.facturx_pdf(invoice, self.visual_pdf(self.html(invoice)), cii)
