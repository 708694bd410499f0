"""The invoice PDF: Jinja2 (autoescape on) -> WeasyPrint PDF/A-3b with the CII embedded.

WeasyPrint writes the Factur-X PDF in one pass: the CII is attached as ``factur-x.xml``
(``/AFRelationship /Data``, MIME type ``text/xml``, listed in the catalog's ``/AF``) and the
XMP packet gets the Factur-X extension schema and the ``fx:`` properties (EN 16931). Nothing
re-opens the PDF afterwards. Rendering the same bill twice gives the same bytes: every date
comes from the bill date (HTML ``dcterms`` metadata, the attachment's dates), and the file
identifier is a digest of the content. Resources come only from ``AssetFetcher``: a template
or a customer field that names ``file:`` or ``http:`` is never fetched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import cache
from pathlib import Path
from typing import Any

import pydyf
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from weasyprint import CSS, HTML, Attachment, Document
from weasyprint.html import UA, UA_COUNTER_STYLE
from weasyprint.text.fonts import FontConfiguration

from billing.documents.cii import inclusive_end, tax_breakdown
from billing.documents.errors import DocumentError, UnsafeResourceError
from billing.documents.fetcher import ASSET_SCHEME, AssetFetcher, asset, packaged_assets
from billing.documents.formatting import Formatter
from billing.documents.legal import check_mentions, exemption_texts, mention_texts
from billing.documents.model import Invoice, Line
from billing.documents.seller import Seller
from billing.domain.legal_mentions import required_mentions
from billing.domain.printed import PrintedLine

TEMPLATES = Path(__file__).parent / "templates"
PDF_VARIANT = "pdf/a-3b"
FACTURX_FILENAME = "factur-x.xml"
FACTURX_NAMESPACE = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
FACTURX_CONFORMANCE = "EN 16931"
_FX_PROPERTIES = {
    "DocumentFileName": "The name of the embedded XML document",
    "DocumentType": "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER",
    "Version": "The actual version of the standard applying to the embedded XML document",
    "ConformanceLevel": "The conformance level of the embedded XML document",
}
_PDFA_NAMESPACES = (
    'xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/" '
    'xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#" '
    'xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#"'
)
#: The Factur-X part of the XMP packet: the PDF/A extension schema that declares the ``fx:``
#: properties, then their values. Inserted into WeasyPrint's own ``rdf:RDF``.
FACTURX_XMP = (
    f'<rdf:Description rdf:about="" {_PDFA_NAMESPACES}><pdfaExtension:schemas><rdf:Bag>'
    '<rdf:li rdf:parseType="Resource">'
    "<pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>"
    f"<pdfaSchema:namespaceURI>{FACTURX_NAMESPACE}</pdfaSchema:namespaceURI>"
    "<pdfaSchema:prefix>fx</pdfaSchema:prefix><pdfaSchema:property><rdf:Seq>"
    + "".join(
        '<rdf:li rdf:parseType="Resource">'
        f"<pdfaProperty:name>{name}</pdfaProperty:name>"
        "<pdfaProperty:valueType>Text</pdfaProperty:valueType>"
        "<pdfaProperty:category>external</pdfaProperty:category>"
        f"<pdfaProperty:description>{description}</pdfaProperty:description></rdf:li>"
        for name, description in _FX_PROPERTIES.items()
    )
    + "</rdf:Seq></pdfaSchema:property></rdf:li></rdf:Bag></pdfaExtension:schemas>"
    "</rdf:Description>"
    f'<rdf:Description rdf:about="" xmlns:fx="{FACTURX_NAMESPACE}">'
    "<fx:DocumentType>INVOICE</fx:DocumentType>"
    f"<fx:DocumentFileName>{FACTURX_FILENAME}</fx:DocumentFileName>"
    "<fx:Version>1.0</fx:Version>"
    f"<fx:ConformanceLevel>{FACTURX_CONFORMANCE}</fx:ConformanceLevel>"
    "</rdf:Description>"
).encode()


def document_moment(invoice: Invoice) -> datetime:
    """The PDF's creation and modification time: midnight UTC of the bill date."""
    return datetime.combine(invoice.bill_date, time(0, 0), tzinfo=UTC)


def declare_facturx(document: Document, pdf: Any) -> None:
    """WeasyPrint finisher: Factur-X properties into the XMP packet; open on the attachment.

    The properties go inside WeasyPrint's ``rdf:RDF`` (its ``xmp_metadata`` option would add
    a second ``rdf:RDF``, which XMP readers that take the first one never see). WeasyPrint 70
    lists the attachment twice in the catalog's ``/AF``; once is enough.
    """
    metadata = pdf.objects[int(pdf.catalog["Metadata"].split()[0])]
    packet = b"".join(metadata.stream)
    if packet.count(b"</rdf:RDF>") != 1:
        raise DocumentError("WeasyPrint's XMP packet has no single rdf:RDF to add Factur-X to")
    metadata.stream = [packet.replace(b"</rdf:RDF>", FACTURX_XMP + b"</rdf:RDF>")]
    pdf.catalog["AF"] = pydyf.Array(dict.fromkeys(pdf.catalog["AF"]))
    pdf.catalog["PageMode"] = "/UseAttachments"


_UNIVERSAL_PSEUDO_RULES = (
    # ::marker styles list items and summaries only: scope it to them.
    (re.compile(r"^::marker ", re.M), "li::marker, summary::marker "),
    # Footnote and note markers: an invoice floats nothing to footnotes; drop them.
    (re.compile(r"^::(?:footnote|note)-[a-z]+ \{[^}\n]*\}\n", re.M), ""),
)


@cache
def invoice_user_agent_stylesheet() -> CSS:
    """WeasyPrint's HTML5 user-agent stylesheet without its universal pseudo-element rules.

    Its ``::marker``, ``::footnote-*`` and ``::note-*`` rules match every element, so the
    cascade computes six pseudo-element styles for each of them: with them gone, an invoice
    costs about 15 % less CPU, and lays out exactly as before (tests/billing/test_documents.py
    compares every box). Raises ``DocumentError`` if a WeasyPrint upgrade changed those rules.
    """
    sheet = UA
    for pattern, replacement in _UNIVERSAL_PSEUDO_RULES:
        sheet, found = pattern.subn(replacement, sheet)
        if not found:
            raise DocumentError(f"WeasyPrint's user-agent stylesheet has no {pattern.pattern!r}")
    return CSS(string=sheet, counter_style=UA_COUNTER_STYLE)


class InvoiceHTML(HTML):
    """An HTML document styled with ``invoice_user_agent_stylesheet`` (WeasyPrint's own hook)."""

    def _ua_stylesheets(self, forms: bool = False) -> list[CSS]:
        if forms:
            raise DocumentError("invoices have no PDF forms")
        return [invoice_user_agent_stylesheet()]


@dataclass(frozen=True)
class _LineView:
    line: Line
    currency: str

    @property
    def shown(self) -> PrintedLine:
        """Quantity, unit price, days or sub-lines as printed (``domain.printed``)."""
        return self.line.shown(self.currency)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.line, name)

    @property
    def last_day(self) -> Any:
        return inclusive_end(self.line.period_start, self.line.period_end)


def _group_iban(iban: str | None) -> str:
    compact = (iban or "").replace(" ", "")
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def masked_iban(iban: str | None) -> str:
    """The customer's IBAN as printed on their invoice: country, check digits and the last
    four characters, the rest masked (``FR14 **** **** **** **** ***2 606``). Enough for the
    customer to recognise their account; the whole number stays in the CII (BT-91), which
    EN 16931 requires, and in the bank's files, not on a page that is e-mailed and printed."""
    compact = (iban or "").replace(" ", "")
    if len(compact) <= 8:
        return _group_iban(compact)
    return _group_iban(compact[:4] + "*" * (len(compact) - 8) + compact[-4:])


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

    def html(self, invoice: Invoice, *, preview: bool = False) -> str:
        """The invoice as HTML (every value escaped by Jinja2's autoescape).

        ``preview``: an unnumbered bill shown before bill day (``billing preview``): marked
        "PREVIEW — not an invoice" in its title, header and across every page, no number.
        """
        f = Formatter.for_account(invoice.language, invoice.buyer.country, invoice.currency)
        taxes = [
            {"category": category, "rate": rate, "base": base, "tax": tax}
            for category, rate, base, tax in tax_breakdown(invoice)
        ]
        required = required_mentions(self.seller.country, invoice.buyer.is_business)
        exemptions = exemption_texts(invoice, self.seller.country, f)
        html = self._template.render(
            invoice=invoice,
            seller=self.seller,
            lines=[_LineView(line, invoice.currency) for line in invoice.lines],
            taxes=taxes,
            period_first=invoice.lines_span[0],
            period_last=inclusive_end(*invoice.lines_span),
            buyer_iban=masked_iban(invoice.payment.iban),
            seller_iban=_group_iban(self.seller.iban),
            created=document_moment(invoice).strftime("%Y-%m-%dT%H:%M:%SZ"),
            legal=mention_texts(required, f),
            exemptions=exemptions,
            f=f,
            t=f.text,
            preview=preview,
        )
        check_mentions(invoice.bill_no, html, required, f, exemptions)
        return html

    def _write_pdf(self, html: str, **options: Any) -> bytes:
        fetcher = AssetFetcher(self._assets)
        pdf = InvoiceHTML(string=html, url_fetcher=fetcher).write_pdf(
            stylesheets=[self._css], font_config=self._fonts, pdf_variant=PDF_VARIANT, **options
        )
        if fetcher.refused and self.strict:
            raise UnsafeResourceError(f"refused resources: {', '.join(fetcher.refused)[:500]}")
        return pdf

    def visual_pdf(self, html: str) -> bytes:
        """The PDF/A-3b of an HTML document, fetching packaged assets only (no attachment)."""
        return self._write_pdf(html)

    def facturx_pdf(self, invoice: Invoice, html: str, cii: bytes) -> bytes:
        """The PDF/A-3b of ``html`` with the CII embedded as ``factur-x.xml`` (EN 16931)."""
        moment = document_moment(invoice)
        attachment = Attachment(
            url=ASSET_SCHEME + FACTURX_FILENAME,
            url_fetcher=AssetFetcher({FACTURX_FILENAME: (cii, "text/xml")}),
            name=FACTURX_FILENAME,
            description="Factur-X XML file",
            created=moment,
            modified=moment,
            relationship="Data",
        )
        return self._write_pdf(html, attachments=[attachment], finisher=declare_facturx)

    def preview_pdf(self, invoice: Invoice) -> bytes:
        """The PDF of an invoice preview: marked as such on every page, without a number and
        without the Factur-X XML or its metadata, so nothing reads it as an invoice."""
        return self.visual_pdf(self.html(invoice, preview=True))

    def pdf(self, invoice: Invoice, cii: bytes) -> bytes:
        """The Factur-X PDF of an invoice whose CII is already built and checked."""
        return self.facturx_pdf(invoice, self.html(invoice), cii)
