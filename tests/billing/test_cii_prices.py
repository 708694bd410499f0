"""CII line prices multiply out: BilledQuantity (BT-129) x ChargeAmount (BT-146) / BasisQuantity
(BT-149, 1 when absent) = LineTotalAmount (BT-131), exactly, on every line (issue #18).

The stored unit price is an average for tiered, package and prorated lines; the CII writes
the net per a base quantity instead. Each document still passes the Factur-X XSD and the
EN 16931 Schematron, and BR-27 holds: no negative price (a credit bills a negative quantity).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from billing.documents.cii import NSMAP, cii_bytes, line_price
from billing.documents.errors import InvoiceValidationError
from billing.documents.seller import DEFAULT_SELLER
from billing.documents.validation import validate_cii_schematron, validate_cii_xsd
from tests.billing.test_documents import invoice, line

D = Decimal

LINES = (
    # graduated 99 250 units: stored average 0.00198 (x 99 250 = 196.515, not 196.50)
    line(1, "196.50", "39.30", qty="99250", price="0.00198", desc="API calls (graduated)"),
    # package: 1 001 units in packages of 100 at 5.00: 11 packages = 55.00, average 0.054945
    line(2, "55.00", "11.00", qty="1001", price="0.054945", desc="Storage (packages)"),
    # prorated: 3 seats x 29.90 x 22/31 = 63.66, stored average 21.22 (x 3 = 63.66 checks)
    line(3, "63.66", "12.73", qty="3", price="21.22", desc="Seats (22 of 31 days)"),
    # prorated whose average does not multiply out: 7 x 29.90 x 13/31 = 87.77, average 12.54
    line(4, "87.77", "17.55", qty="7", price="12.54", desc="Seats (13 of 31 days)"),
    # cancellation credit for 16 unused days: 1 x -15.43
    line(5, "-15.43", "-3.09", price="-15.43", desc="Seats (cancelled)"),
    # a credit whose average does not multiply out: 3 x -4.33 = -12.99, net -13.00
    line(6, "-13.00", "-2.60", qty="3", price="-4.33", desc="Seats credit (3 seats)"),
    # exact: kept as stored
    line(7, "24.00", "4.80", qty="2", price="12.00", desc="Support"),
)


def _lines(xml: bytes) -> list[tuple[Decimal, Decimal, Decimal | None, Decimal, str, str]]:
    root = etree.fromstring(xml)
    found = []
    for item in root.iterfind(".//ram:IncludedSupplyChainTradeLineItem", NSMAP):
        price = item.find("ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice", NSMAP)
        basis = price.find("ram:BasisQuantity", NSMAP)
        billed = item.find("ram:SpecifiedLineTradeDelivery/ram:BilledQuantity", NSMAP)
        total = item.findtext(
            "ram:SpecifiedLineTradeSettlement/ram:SpecifiedTradeSettlementLineMonetarySummation"
            "/ram:LineTotalAmount",
            namespaces=NSMAP,
        )
        found.append(
            (
                D(billed.text),
                D(price.findtext("ram:ChargeAmount", namespaces=NSMAP)),
                None if basis is None else D(basis.text),
                D(total),
                billed.get("unitCode"),
                "" if basis is None else basis.get("unitCode"),
            )
        )
    return found


@pytest.fixture(scope="module")
def xml() -> bytes:
    return cii_bytes(invoice(lines=LINES), DEFAULT_SELLER)


def test_every_line_multiplies_out_exactly(xml):
    rows = _lines(xml)
    assert len(rows) == len(LINES)
    for (quantity, price, basis, total, unit, basis_unit), source in zip(rows, LINES, strict=True):
        assert total == source.net
        assert price >= 0  # BR-27
        assert quantity * price / (basis or 1) == total, source.description
        if basis is not None:
            assert basis > 0 and basis_unit == unit


def test_averages_are_replaced_and_exact_prices_kept(xml):
    rows = _lines(xml)
    assert rows[0][:3] == (D("99250"), D("196.50"), D("99250"))  # tiered: 196.50 per 99 250
    assert rows[1][:3] == (D("1001"), D("55.00"), D("1001"))  # package
    assert rows[2][:3] == (D("3"), D("21.22"), None)  # prorated, the average multiplies out
    assert rows[3][:3] == (D("7"), D("87.77"), D("7"))  # 87.77 / 7 never ends
    assert rows[4][:3] == (D("-1"), D("15.43"), None)  # credit: negative quantity (BR-27)
    assert rows[5][:3] == (D("-3"), D("13.00"), D("3"))  # credit with an average
    assert rows[6][:3] == (D("2"), D("12.00"), None)


def test_the_document_passes_the_xsd_and_the_schematron(xml):
    validate_cii_xsd(xml)
    assert validate_cii_schematron(xml) == []


@pytest.mark.parametrize(
    ("quantity", "unit_price", "net", "expected"),
    [
        ("4", "0.125", "0.50", ("4", "0.125", None)),  # stored price multiplies out
        ("4", "0.13", "0.50", ("4", "0.125", None)),  # net / quantity ends: no base quantity
        ("3", "0.33", "1.00", ("3", "1.00", "3")),  # 1/3 never ends: 1.00 per 3
        ("-3", "0.33", "-1.00", ("-3", "1.00", "3")),  # a credit by its quantity
        ("3", "-0.33", "-1.00", ("-3", "1.00", "3")),  # a credit by its price
        ("2", "0", "0.00", ("2", "0", None)),
        ("0", "5.00", "0.00", ("0", "5.00", None)),
    ],
)
def test_line_price(quantity, unit_price, net, expected):
    got = line_price(D(quantity), D(unit_price), D(net))
    want = tuple(None if v is None else D(v) for v in expected)
    assert got == want
    basis = got[2] or 1
    assert got[0] * got[1] / basis == D(net) and got[1] >= 0


def test_a_zero_quantity_cannot_bill_an_amount():
    with pytest.raises(InvoiceValidationError, match="quantity 0"):
        line_price(D(0), D("1.00"), D("1.00"))
