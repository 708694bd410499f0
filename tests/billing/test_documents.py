"""Invoice documents: XML export (streamed, our XSD), CII (Factur-X XSD + EN 16931 Schematron),
Factur-X PDF/A-3 in fr, pt, de and en, same bytes on re-render, and the document store.

Pure tests use hand-made invoice values; the ones that read bills run on SQLite and PostgreSQL.
PDFs are slow to render, so few are rendered (the renderer is shared by the module).
"""

from __future__ import annotations

import dataclasses
import io
import time
from datetime import date
from decimal import Decimal

import pytest
from facturx import get_xml_from_pdf
from lxml import etree
from pypdf import PdfReader
from sqlalchemy import select
from weasyprint import HTML

from billing.documents import export_invoices_xml
from billing.documents.cii import build_cii, check_tax_breakdown, cii_bytes
from billing.documents.errors import InvoiceValidationError
from billing.documents.fetcher import AssetFetcher
from billing.documents.model import Invoice, Line, Party, Payment, invoice_ids, load_invoices
from billing.documents.pdf import InvoiceHTML, InvoiceRenderer, invoice_user_agent_stylesheet
from billing.documents.render import RenderSettings, render_bills, render_invoice
from billing.documents.seller import DEFAULT_SELLER
from billing.documents.store import DocumentStore, document_name
from billing.documents.validation import (
    schematron_findings,
    validate_cii_schematron,
    validate_cii_xsd,
    validate_invoice_xml,
)
from billing.documents.xml_export import NAMESPACE, write_invoices_xml
from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import Account, OutboxMessage, PaymentMethod
from tests.billing.test_billday import population  # noqa: F401

D = Decimal
NS = {"i": NAMESPACE}


def line(
    position: int,
    net: str,
    tax: str,
    *,
    qty: str = "1",
    price: str | None = None,
    rate: str = "0.20",
    desc: str | None = None,
) -> Line:
    return Line(
        position=position,
        description=desc or f"Service {position}",
        period_start=date(2027, 1, 1),
        period_end=date(2027, 2, 1),
        quantity=D(qty),
        unit_price=D(price if price is not None else net),
        net=D(net),
        tax_category="standard",
        tax_rate=D(rate),
        tax=D(tax),
        gross=D(net) + D(tax),
    )


def invoice(language: str = "fr", *, lines: tuple[Line, ...] | None = None, **changes) -> Invoice:
    """Account A's bill with a cancellation credit (181.20 EUR), paid by SEPA direct debit."""
    lines = lines or (
        line(1, "30.00", "6.00", desc="Product PRO"),
        line(2, "24.00", "4.80", qty="2", price="12.00", desc="Product SUPPORT"),
        line(3, "17.50", "3.50", qty="250", price="0.07", desc="Product API-GRAD"),
        line(4, "21.00", "4.20", price="31.00", desc="Product ADDON"),  # prorated 21/31
        line(5, "12.50", "2.50", qty="250", price="0.05", desc="Product API-VOL"),
        line(6, "30.00", "6.00", desc="Product PRO"),
        line(7, "31.00", "6.20", desc="Product ADDON"),
        line(8, "-15.00", "-3.00", price="-15.00", desc="Cancellation credit"),
    )
    net = sum((li.net for li in lines), D(0))
    tax = sum((li.tax for li in lines), D(0))
    values = dict(
        bill_id=7,
        bill_no="INV-00000002",
        series="INV",
        bill_date=date(2027, 2, 1),
        due_date=date(2027, 3, 3),
        period_start=date(2027, 1, 1),
        period_end=date(2027, 3, 1),
        currency="EUR",
        net=net,
        tax=tax,
        gross=net + tax,
        language=language,
        account_ref="A",
        buyer=Party(
            "Société Dupont & Fils",
            "3 rue <des> Lilas",
            "69001",
            "Lyon",
            "FR",
            "FR40303265045",
            "a@example.test",
        ),
        payment=Payment(
            PaymentMethod.DIRECT_DEBIT,
            30,
            "FR1420041010050500013M02606",
            "PSSTFRPPLYO",
            "MANDATE-A-1",
            date(2026, 12, 15),
        ),
        lines=lines,
    )
    values.update(changes)
    return Invoice(**values)


@pytest.fixture(scope="module")
def renderer() -> InvoiceRenderer:
    return InvoiceRenderer(DEFAULT_SELLER)


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


# --- XML export ---------------------------------------------------------------------------


def test_xml_export_is_valid_and_carries_the_amounts():
    xml = io.BytesIO()
    assert write_invoices_xml([invoice(), invoice("en", bill_no="INV-3")], DEFAULT_SELLER, xml) == 2
    validate_invoice_xml(xml.getvalue())
    root = etree.fromstring(xml.getvalue())
    first = root.find("i:invoice", NS)
    assert first.get("number") == "INV-00000002"
    assert first.findtext("i:totals/i:gross", namespaces=NS) == "181.20"
    assert first.findtext("i:totals/i:net", namespaces=NS) == "151.00"
    assert [t.get("rate") for t in first.iterfind("i:taxSummary/i:tax", NS)] == ["0.2"]
    assert first.findtext("i:payment/i:iban", namespaces=NS) == "FR1420041010050500013M02606"


def test_xml_export_is_written_while_invoices_stream_in():
    """Each invoice is on the output before the next one is even built (nothing accumulates)."""
    out = io.BytesIO()
    sizes = []

    def stream():
        for number in range(1, 201):
            sizes.append(len(out.getvalue()))
            yield invoice(bill_no=f"INV-{number}", bill_id=number)

    write_invoices_xml(stream(), DEFAULT_SELLER, out)
    assert all(later > earlier for earlier, later in zip(sizes[1:], sizes[2:], strict=False))
    validate_invoice_xml(out.getvalue())
    assert out.getvalue().count(b"<invoice ") == 200


def test_our_xsd_rejects_a_broken_export():
    xml = io.BytesIO()
    write_invoices_xml([invoice()], DEFAULT_SELLER, xml)
    broken = xml.getvalue().replace(b"<currency>EUR</currency>", b"<currency>euro</currency>")
    with pytest.raises(InvoiceValidationError, match="currency"):
        validate_invoice_xml(broken)


# --- CII / EN 16931 -----------------------------------------------------------------------

RAM = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}


@pytest.mark.parametrize("method", list(PaymentMethod))
def test_cii_is_valid_against_facturx_xsd_and_schematron(method):
    value = invoice(payment=dataclasses.replace(invoice().payment, method=method))
    xml = cii_bytes(value, DEFAULT_SELLER)
    validate_cii_xsd(xml)
    assert validate_cii_schematron(xml) == []
    tree = etree.fromstring(xml)
    assert tree.findtext(".//ram:LineTotalAmount[last()]", namespaces=RAM) is not None
    totals = tree.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", RAM)
    assert [c.text for c in totals] == ["151.00", "151.00", "30.20", "181.20", "181.20"]
    # The credit line keeps a positive price (BR-27) and carries a negative quantity.
    credit = tree.findall(".//ram:IncludedSupplyChainTradeLineItem", RAM)[-1]
    assert credit.findtext(".//ram:ChargeAmount", namespaces=RAM) == "15"
    assert credit.findtext(".//ram:BilledQuantity", namespaces=RAM) == "-1"
    # Periods are inclusive in EN 16931: [Jan 1, Feb 1) ends on Jan 31.
    assert credit.findtext(".//ram:EndDateTime/*", namespaces=RAM) == "20270131"


def test_schematron_catches_totals_that_do_not_add_up():
    tree = build_cii(invoice(), DEFAULT_SELLER)
    tree.find(".//ram:TaxTotalAmount", RAM).text = "30.30"
    xml = etree.tostring(tree)
    validate_cii_xsd(xml)  # still well-formed CII: only the business rules see it
    with pytest.raises(InvoiceValidationError) as error:
        validate_cii_schematron(xml)
    assert any(p.startswith("[BR-CO-15]") for p in error.value.problems)


def test_xsd_catches_a_misplaced_element():
    tree = build_cii(invoice(), DEFAULT_SELLER)
    settlement = tree.find(".//ram:ApplicableHeaderTradeSettlement", RAM)
    settlement.append(settlement.find("ram:InvoiceCurrencyCode", RAM))  # wrong position
    with pytest.raises(InvoiceValidationError, match="XSD"):
        validate_cii_xsd(etree.tostring(tree))


def tiny_lines(count: int) -> tuple[Line, ...]:
    """Lines of 0.03 at 20 %: each line's tax 0.006 rounds up to 0.01 (drift 0.004 a line)."""
    return tuple(line(n, "0.03", "0.01", qty="3", price="0.01") for n in range(1, count + 1))


def test_per_line_vat_rounding_within_the_br_s_09_tolerance_is_accepted():
    # 10 lines: the lines' taxes sum to 0.10; base 0.30 x 20 % = 0.06. Off by 0.04.
    value = invoice(lines=tiny_lines(10), net=D("0.30"), tax=D("0.10"), gross=D("0.40"))
    check_tax_breakdown(value)
    xml = cii_bytes(value, DEFAULT_SELLER)
    assert validate_cii_schematron(xml) == []
    assert b"<ram:CalculatedAmount>0.10</ram:CalculatedAmount>" in xml


def test_per_line_vat_rounding_beyond_one_unit_is_reported_as_br_s_09():
    # 300 lines: taxes sum to 3.00; base 9.00 x 20 % = 1.80. Off by 1.20, over the tolerance.
    value = invoice(lines=tiny_lines(300), net=D("9.00"), tax=D("3.00"), gross=D("12.00"))
    with pytest.raises(InvoiceValidationError, match=r"BR-S-09.*3\.00.*1\.80"):
        check_tax_breakdown(value)
    rules = {f.rule for f in schematron_findings(cii_bytes(value, DEFAULT_SELLER)) if f.fatal}
    assert rules == {"BR-S-09", "BR-CO-17"}  # the Schematron agrees, and finds nothing else


# --- PDF ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", ["Facture", "Total TTC", "181,20\u00a0€", "30,20\u00a0€", "Prélèvement", "Mandat"]),
        ("pt", ["Fatura", "Total com IVA", "181,20\u00a0€", "30,20\u00a0€", "Mandato"]),
        ("en", ["Invoice", "Total incl. VAT", "€181.20", "€30.20", "Mandate"]),
    ],
)
def test_pdf_in_the_account_language_carries_the_facturx_xml(renderer, language, expected):
    country = {"fr": "FR", "pt": "PT", "en": "GB"}[language]  # the locale is language_COUNTRY
    value = invoice(language, buyer=dataclasses.replace(invoice().buyer, country=country))
    documents = render_invoice(value, renderer, schematron=False)
    text = pdf_text(documents.pdf).replace("\u202f", "\u00a0")
    for fragment in expected:
        assert fragment.lower() in text.lower(), fragment
    assert "INV-00000002" in text
    assert "FR14 **** **** **** **** ***2 606" in text  # the debited IBAN, masked
    assert "3M02" not in text
    assert "MANDATE-A-1" in text
    assert "FR72ZZZ123456" in text  # the seller's SEPA creditor id
    name, xml = get_xml_from_pdf(documents.pdf, check_xsd=True)
    assert name == "factur-x.xml"
    assert xml == documents.cii
    reader = PdfReader(io.BytesIO(documents.pdf))
    catalog = reader.trailer["/Root"]
    [filespec] = [ref.get_object() for ref in catalog["/AF"]]
    assert (filespec["/UF"], filespec["/AFRelationship"]) == ("factur-x.xml", "/Data")
    assert filespec["/EF"]["/F"].get_object()["/Subtype"] == "/text/xml"
    assert facturx_xmp(catalog["/Metadata"].get_object().get_data()) == {
        "part": "3",
        "conformance": "B",
        "DocumentType": "INVOICE",
        "DocumentFileName": "factur-x.xml",
        "Version": "1.0",
        "ConformanceLevel": "EN 16931",
        "extension schema for": "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#",
    }
    assert len(reader.pages) == 1


def facturx_xmp(packet: bytes) -> dict[str, str]:
    """What an XMP reader that takes the packet's one ``rdf:RDF`` sees of PDF/A and Factur-X."""
    ns = {
        "x": "adobe:ns:meta/",
        "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
        "fx": "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#",
        "pdfaSchema": "http://www.aiim.org/pdfa/ns/schema#",
    }
    [rdf] = etree.fromstring(packet).findall("rdf:RDF", ns)
    [ids] = rdf.xpath("rdf:Description[@pdfaid:part]", namespaces=ns)
    values = {
        "part": ids.get(f"{{{ns['pdfaid']}}}part"),
        "conformance": ids.get(f"{{{ns['pdfaid']}}}conformance"),
    }
    for name in ("DocumentType", "DocumentFileName", "Version", "ConformanceLevel"):
        [value] = rdf.xpath(f"rdf:Description/fx:{name}/text()", namespaces=ns)
        values[name] = value
    [schema] = rdf.xpath(".//pdfaSchema:namespaceURI[../pdfaSchema:prefix='fx']", namespaces=ns)
    values["extension schema for"] = schema.text
    return values


def test_long_invoice_continues_on_pages_with_the_table_header_repeated(renderer):
    lines = tuple(line(n, "10.00", "2.00", desc=f"Usage line {n}") for n in range(1, 91))
    buyer = dataclasses.replace(invoice().buyer, country="GB")
    value = invoice(
        "en", lines=lines, net=D("900.00"), tax=D("180.00"), gross=D("1080.00"), buyer=buyer
    )
    reader = PdfReader(io.BytesIO(renderer.pdf(value, cii_bytes(value, DEFAULT_SELLER))))
    pages = [page.extract_text() for page in reader.pages]
    assert len(pages) >= 3
    for number, text in enumerate(pages, start=1):
        assert "Description" in text and "Unit price" in text  # the header, on every page
        assert f"Page {number}" in text
    assert all("(continued)" in text for text in pages[1:]) and "(continued)" not in pages[0]
    assert "€1,080.00" in pages[-1] and "Usage line 90" in pages[-1]


def boxes(document) -> list[tuple]:
    """Every box of every page: kind, position, size and text, in tree order."""
    found = []

    def walk(box) -> None:
        found.append(
            (type(box).__name__, box.position_x, box.position_y, box.width, box.height)
            + ((box.text,) if hasattr(box, "text") else ())
        )
        for child in box.all_children():
            walk(child)

    for page in document.pages:
        walk(page._page_box)
    return found


@pytest.mark.parametrize("lines", [7, 90])
def test_lean_user_agent_stylesheet_lays_out_every_box_as_weasyprint_default(renderer, lines):
    value = invoice(
        "en",
        lines=tuple(line(n, "10.00", "2.00", desc=f"Usage line {n}") for n in range(1, lines + 1)),
    )
    page = renderer.html(value)

    def layout(html_class):
        html = html_class(string=page, url_fetcher=AssetFetcher(renderer._assets))
        return html.render(stylesheets=[renderer._css], font_config=renderer._fonts)

    default, lean = layout(HTML), layout(InvoiceHTML)
    assert len(lean.pages) == len(default.pages) == (1 if lines == 7 else 3)
    assert boxes(lean) == boxes(default)
    assert len(boxes(lean)) > 100 * len(lean.pages)  # the walk saw the document, not a stub
    sheet = invoice_user_agent_stylesheet()
    assert InvoiceHTML(string=page)._ua_stylesheets() == [sheet]


def test_rendering_again_gives_the_same_bytes(renderer):
    value = invoice("pt")
    first = render_invoice(value, renderer)
    time.sleep(1.1)  # any wall-clock stamp (seconds) would now differ
    second = render_invoice(value, InvoiceRenderer(DEFAULT_SELLER))
    assert first == second
    info = PdfReader(io.BytesIO(first.pdf)).metadata  # dates come from the bill date
    assert info["/CreationDate"] == info["/ModDate"] == "D:20270201000000Z"


# --- from the database, on both backends ---------------------------------------------------


@pytest.fixture
def invoiced(population):  # noqa: F811
    """Bill day of Feb 1: A (fr, direct debit) 199.20 EUR and B (pt) 17.34 GBP."""
    engine = population
    with unit_of_work(engine) as s:
        a, b = s.scalars(select(Account).order_by(Account.id)).all()
        a.language, a.payment_method = "fr", PaymentMethod.DIRECT_DEBIT
        a.iban, a.mandate_ref, a.mandate_date = (
            "FR7630006000011234567890189",
            "M-A",
            date(2027, 1, 1),
        )
        b.language = "pt"
    run_bill_day(engine, date(2027, 2, 1), "run-1")
    return engine


def test_export_streams_every_invoice_from_the_database(invoiced):
    out = io.BytesIO()
    with unit_of_work(invoiced) as s:
        assert export_invoices_xml(s, DEFAULT_SELLER, out) == 2
    validate_invoice_xml(out.getvalue())
    root = etree.fromstring(out.getvalue())
    totals = [
        (
            i.get("number"),
            i.findtext("i:currency", namespaces=NS),
            i.findtext("i:totals/i:gross", namespaces=NS),
        )
        for i in root.iterfind("i:invoice", NS)
    ]
    assert totals == [("INV-00000001", "GBP", "17.34"), ("INV-00000002", "EUR", "199.20")]


def test_render_bills_to_the_store_is_idempotent_and_queues_emails(invoiced, renderer, tmp_path):
    store = DocumentStore(str(tmp_path / "docs"))
    settings = RenderSettings(
        database_url="unused",
        store_url=store.root,
        seller=DEFAULT_SELLER.to_dict(),
        schematron="all",
        enqueue_email=True,
        email_domain="openbill.example",
    )
    with unit_of_work(invoiced) as s:
        ids = invoice_ids(s, run_id="run-1")
        [gbp, eur] = list(load_invoices(s, ids))
    result = render_bills(invoiced, ids, renderer, store, settings)
    assert (result.rendered, result.queued, result.failed) == (2, 2, {})
    assert document_name(eur, "pdf") == "2027/02/INV-00000002.pdf"
    first = {
        n: store.read(n)
        for n in (
            "2027/01/INV-00000001.pdf",
            "2027/02/INV-00000002.pdf",
            "2027/01/INV-00000001.xml",
            "2027/02/INV-00000002.xml",
        )
    }
    text = pdf_text(first["2027/02/INV-00000002.pdf"]).replace("\u202f", "\u00a0")
    assert "Facture" in text and "199,20\u00a0€" in text and "33,20\u00a0€" in text
    assert "FR76 **** **** **** **** ***0 189" in text and "M-A" in text  # masked
    pt = pdf_text(first["2027/01/INV-00000001.pdf"]).replace("\u202f", "\u00a0")
    assert "Fatura" in pt and "17,34\u00a0£" in pt
    again = render_bills(invoiced, ids, renderer, store, settings)
    assert (again.rendered, again.queued) == (2, 0)  # a bill is queued once
    assert {n: store.read(n) for n in first} == first  # the same bytes
    with unit_of_work(invoiced) as s:
        rows = s.execute(
            select(
                OutboxMessage.to_address, OutboxMessage.subject, OutboxMessage.message_id
            ).order_by(OutboxMessage.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        (
            "b@example.test",
            "Fatura INV-00000001",
            f"<invoice.INV-00000001.{gbp.bill_id}@openbill.example>",
        ),
        (
            "a@example.test",
            "Facture INV-00000002",
            f"<invoice.INV-00000002.{eur.bill_id}@openbill.example>",
        ),
    ]


def test_fsspec_store_round_trips(tmp_path):
    store = DocumentStore("memory://openbill-test/docs")
    store.write("2027/02/INV-1.pdf", b"%PDF-1.7 x")
    assert store.exists("2027/02/INV-1.pdf") and not store.exists("2027/02/INV-2.pdf")
    assert store.read("2027/02/INV-1.pdf") == b"%PDF-1.7 x"
    local = DocumentStore(f"file://{tmp_path}")
    local.write("a/b.xml", b"<x/>")
    assert (tmp_path / "a" / "b.xml").read_bytes() == b"<x/>"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.xml"]  # no temporary left over
