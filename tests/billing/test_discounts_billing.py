"""Discounts billed end to end, on SQLite and PostgreSQL: lines, totals, a rerun, the CII of the
invoice and of the credit note that voids it, and the post-billing checks.

Account D (FR, EUR, billed on the 1st, created 2027-01-01) has four items billed in arrears
from 2027-01-01: F1 and F2 on plan FIB (30.00), T on plan TV (10.00, standard rate 20 %) and B
on plan BOOK (20.00, reduced rate 5.5 %). Its discounts:

- D-LOYAL: item F1, 10 %;
- D-BUNDLE: plan FIB, 6.00 fixed a cycle;
- D-WELCOME: the bill, 10 % for one cycle, coupon WELCOME10, reason code 100.

The bill of 2027-02-01 (January), worked out by hand:

====================================  ======  =====
line                                     net    tax
====================================  ======  =====
F1 Product FIB                         30.00   6.00
F2 Product FIB                         30.00   6.00
T  Product TV                          10.00   2.00
B  Product BOOK (5.5 %)                20.00   1.10
D-LOYAL on F1: 10 % of 30.00           -3.00  -0.60
D-BUNDLE on F1: 6.00 x 27/57 = 2.842   -2.84  -0.57   (-0.568 rounds away from zero)
D-BUNDLE on F2: 6.00 x 30/57 = 3.158   -3.16  -0.63   (-0.632; the two sum to 6.00)
D-WELCOME reduced: 10 % of 20.00       -2.00  -0.11
D-WELCOME standard: 10 % of 24.16      -6.10  -1.22
  + 26.84 + 10.00 = 61.00
total                                  72.90  11.97   gross 84.87
====================================  ======  =====

The VAT breakdown: standard base 70.00 - 3.00 - 6.00 - 6.10 = 54.90, tax 10.98 (the lines'
taxes: 6 + 6 + 2 - 0.60 - 0.57 - 0.63 - 1.22; 54.90 x 20 % = 10.98 too); reduced base 18.00,
tax 0.99 (1.10 - 0.11). The bill of 2027-03-01 (February) has no welcome discount: 90.00 - 3.00
- 6.00 = 81.00 net, 6 + 6 + 2 + 1.10 - 0.60 - 0.57 - 0.63 = 13.30 tax, 94.30 gross.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from lxml import etree
from sqlalchemy import Engine, func, select

from billing.documents.cii import cii_bytes
from billing.documents.model import invoice_ids, load_invoices
from billing.documents.seller import DEFAULT_SELLER
from billing.documents.validation import validate_cii_schematron, validate_cii_xsd
from billing.domain.credit_notes import CreditNoteError
from billing.jobs.bill_day import run_bill_day
from billing.ops.credit_notes import issue_credit_note
from billing.store.db import unit_of_work
from billing.store.models import Bill, Charge
from billing.store.models_terms import Discount
from tests import builders as b
from tests.expectations.direct import run_rules_directly

D = Decimal
JAN, FEB, MAR = date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)
RAM = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}


@pytest.fixture
def discounted(engine: Engine) -> Engine:
    return seed_discounted(engine)


def seed_discounted(engine: Engine) -> Engine:
    """Account D and its discounts (the module's docstring) in ``engine``'s store."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20", ("reduced", "FR"): "0.055"})
        fib = b.plan(s, "FIB", "recurring", price="30.00", timing="arrears")
        tv = b.plan(s, "TV", "recurring", price="10.00", timing="arrears")
        book = b.plan(s, "BOOK", "recurring", price="20.00", timing="arrears", tax="reduced")
        acc = b.account(s, "D", created=JAN)
        ctr = b.contract(s, acc, "CD", JAN)
        f1 = b.item(s, ctr, "F1", fib, "recurring", JAN)
        b.item(s, ctr, "F2", fib, "recurring", JAN)
        b.item(s, ctr, "T", tv, "recurring", JAN)
        b.item(s, ctr, "B", book, "recurring", JAN)
        common = {"account_id": acc.id, "start_date": JAN}
        s.add_all(
            [
                Discount(ref="D-LOYAL", scope="item", contract_item_id=f1.id, kind="percent",
                         value=D(10), description="Loyalty 10 %", **common),
                Discount(ref="D-BUNDLE", scope="plan", price_plan_id=fib.id, kind="fixed",
                         value=D(6), description="Fibre bundle", **common),
                Discount(ref="D-WELCOME", scope="bill", kind="percent", value=D(10), cycles=1,
                         coupon_code="WELCOME10", reason_code="100",
                         description="Welcome offer WELCOME10", **common),
            ]
        )  # fmt: skip
    return engine


def lines(engine: Engine, bill_date: date) -> list[tuple]:
    with unit_of_work(engine) as s:
        return [
            tuple(row)
            for row in s.execute(
                select(Charge.kind, Charge.description, Charge.amount, Charge.tax,
                       Charge.tax_category, Charge.period_start, Charge.period_end)
                .join(Bill, Bill.id == Charge.bill_id)
                .where(Bill.bill_date == bill_date)
                .order_by(Charge.line_no)
            )
        ]  # fmt: skip


def totals(engine: Engine, bill_date: date) -> tuple[Decimal, Decimal, Decimal]:
    with unit_of_work(engine) as s:
        bill = s.scalars(select(Bill).where(Bill.bill_date == bill_date)).one()
        return bill.net, bill.tax, bill.gross


def counts(engine: Engine) -> tuple[int, int]:
    with unit_of_work(engine) as s:
        return (
            s.scalar(select(func.count()).select_from(Charge)) or 0,
            s.scalar(select(func.count()).select_from(Bill)) or 0,
        )


def test_discounted_cycle_bills_lines_totals_and_rerun(discounted: Engine) -> None:
    run_bill_day(discounted, FEB, "feb")
    cycle = (JAN, FEB)
    assert lines(discounted, FEB) == [
        ("recurring", "Product FIB", D("30.00"), D("6.00"), "standard", *cycle),
        ("recurring", "Product FIB", D("30.00"), D("6.00"), "standard", *cycle),
        ("recurring", "Product TV", D("10.00"), D("2.00"), "standard", *cycle),
        ("recurring", "Product BOOK", D("20.00"), D("1.10"), "reduced", *cycle),
        ("discount", "Loyalty 10 %", D("-3.00"), D("-0.60"), "standard", *cycle),
        ("discount", "Fibre bundle - Product FIB", D("-2.84"), D("-0.57"), "standard", *cycle),
        ("discount", "Fibre bundle - Product FIB", D("-3.16"), D("-0.63"), "standard", *cycle),
        ("discount", "Welcome offer WELCOME10", D("-2.00"), D("-0.11"), "reduced", *cycle),
        ("discount", "Welcome offer WELCOME10", D("-6.10"), D("-1.22"), "standard", *cycle),
    ]
    assert totals(discounted, FEB) == (D("72.90"), D("11.97"), D("84.87"))
    with unit_of_work(discounted) as s:
        keys = s.scalars(
            select(Charge.charge_key).where(Charge.kind == "discount").order_by(Charge.id)
        ).all()
        ids = dict(s.execute(select(Discount.ref, Discount.id)).tuples().all())
    assert keys == [
        f"dsc:{ids['D-LOYAL']}:2027-01-01:1",
        f"dsc:{ids['D-BUNDLE']}:2027-01-01:1",
        f"dsc:{ids['D-BUNDLE']}:2027-01-01:2",
        f"dsc:{ids['D-WELCOME']}:2027-01-01:1",
        f"dsc:{ids['D-WELCOME']}:2027-01-01:2",
    ]

    before = counts(discounted)
    run_bill_day(discounted, FEB, "feb-again")  # the same date again: nothing more
    assert counts(discounted) == before

    run_bill_day(discounted, MAR, "mar")  # the welcome offer was for one cycle
    assert [(kind, net) for kind, _, net, *_ in lines(discounted, MAR)] == [
        ("recurring", D("30.00")), ("recurring", D("30.00")), ("recurring", D("10.00")),
        ("recurring", D("20.00")), ("discount", D("-3.00")), ("discount", D("-2.84")),
        ("discount", D("-3.16")),
    ]  # fmt: skip
    assert totals(discounted, MAR) == (D("81.00"), D("13.30"), D("94.30"))
    assert run_rules_directly(discounted, MAR).failed == ()


def cii_of(engine: Engine, bill_no: str) -> etree._Element:
    with unit_of_work(engine) as s:
        (invoice,) = load_invoices(s, invoice_ids(s, bill_nos=[bill_no]))
    xml = cii_bytes(invoice, DEFAULT_SELLER)
    validate_cii_xsd(xml)
    assert validate_cii_schematron(xml) == []
    return etree.fromstring(xml)


def allowances(tree: etree._Element) -> list[tuple[str | None, ...]]:
    return [
        (
            a.findtext("ram:ActualAmount", namespaces=RAM),
            a.findtext("ram:ReasonCode", namespaces=RAM),
            a.findtext("ram:Reason", namespaces=RAM),
            a.findtext("ram:CategoryTradeTax/ram:RateApplicablePercent", namespaces=RAM),
        )
        for a in tree.iterfind(".//ram:SpecifiedTradeAllowanceCharge", RAM)
    ]


def header_totals(tree: etree._Element) -> list[tuple[str, str | None]]:
    totals = tree.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", RAM)
    return [(etree.QName(t).localname, t.text) for t in totals]


def tax_rows(tree: etree._Element) -> list[tuple[str | None, ...]]:
    settlement = tree.find(".//ram:ApplicableHeaderTradeSettlement", RAM)
    return [
        (
            t.findtext("ram:RateApplicablePercent", namespaces=RAM),
            t.findtext("ram:BasisAmount", namespaces=RAM),
            t.findtext("ram:CalculatedAmount", namespaces=RAM),
        )
        for t in settlement.iterfind("ram:ApplicableTradeTax", RAM)
    ]


def test_the_cii_states_discounts_as_allowances_and_its_credit_note_too(
    discounted: Engine,
) -> None:
    run_bill_day(discounted, FEB, "feb")
    with unit_of_work(discounted) as s:
        bill_no = s.scalar(select(Bill.bill_no).where(Bill.bill_date == FEB))
    assert bill_no
    tree = cii_of(discounted, bill_no)
    # the four fees are the invoice lines (BG-25), the five discounts allowances (BG-20)
    assert len(tree.findall(".//ram:IncludedSupplyChainTradeLineItem", RAM)) == 4
    assert allowances(tree) == [
        ("3.00", "95", "Loyalty 10 %", "20"),
        ("2.84", "95", "Fibre bundle - Product FIB", "20"),
        ("3.16", "95", "Fibre bundle - Product FIB", "20"),
        ("2.00", "100", "Welcome offer WELCOME10", "5.5"),
        ("6.10", "100", "Welcome offer WELCOME10", "20"),
    ]
    # BT-106 the lines, BT-107 the allowances, BT-109 = 90.00 - 17.10
    assert header_totals(tree) == [
        ("LineTotalAmount", "90.00"),
        ("AllowanceTotalAmount", "17.10"),
        ("TaxBasisTotalAmount", "72.90"),
        ("TaxTotalAmount", "11.97"),
        ("GrandTotalAmount", "84.87"),
        ("DuePayableAmount", "84.87"),
    ]
    assert sorted(tax_rows(tree)) == [("20", "54.90", "10.98"), ("5.5", "18.00", "0.99")]

    # Voiding it: every fee credited, every discount reversed: the credit note is 72.90.
    with unit_of_work(discounted) as s:
        issued = issue_credit_note(s, invoice_no=bill_no, lines=None, reason="void", as_of=FEB)
    assert (issued.lines, issued.net, issued.tax, issued.gross) == (
        9,
        D("72.90"),
        D("11.97"),
        D("84.87"),
    )
    credit = cii_of(discounted, issued.bill_no)
    assert credit.findtext(".//ram:TypeCode", namespaces=RAM) == "381"
    assert [amount for amount, *_ in allowances(credit)] == [
        "3.00", "2.84", "3.16", "2.00", "6.10",
    ]  # fmt: skip
    assert [code for _, code, *_ in allowances(credit)] == ["95", "95", "95", "100", "100"]
    assert header_totals(credit)[:3] == [
        ("LineTotalAmount", "90.00"),
        ("AllowanceTotalAmount", "17.10"),
        ("TaxBasisTotalAmount", "72.90"),
    ]
    assert run_rules_directly(discounted, FEB).failed == ()


def test_a_credit_note_by_hand_reverses_the_discount_lines_it_names(discounted: Engine) -> None:
    run_bill_day(discounted, FEB, "feb")
    with unit_of_work(discounted) as s:
        bill_no = s.scalar(select(Bill.bill_no).where(Bill.bill_date == FEB))
        assert bill_no
        with pytest.raises(CreditNoteError, match="must lower what is owed"):
            issue_credit_note(s, invoice_no=bill_no, lines={5: None}, reason="x", as_of=FEB)
    with unit_of_work(discounted) as s:
        # F1 (line 1) and its loyalty discount (line 5): 30.00 - 3.00 credited
        issued = issue_credit_note(
            s, invoice_no=bill_no, lines={1: None, 5: None}, reason="F1 refund", as_of=FEB
        )
        assert issued.net == D("27.00")
        with pytest.raises(CreditNoteError, match="line 5 of invoice .* nothing left"):
            issue_credit_note(s, invoice_no=bill_no, lines={5: None}, reason="x", as_of=FEB)
    cii_of(discounted, issued.bill_no)


# --- the CII of hand-made invoices: allowances of both signs, every VAT category kind -------


def hand_made(type_code: str, sign: int) -> etree._Element:
    """Fibre 30.00 (20 %) and its 3.00 discount, a book 20.00 (5.5 %) and its 2.00 discount,
    a cancellation credit of 60.00: as a bill day credit note (381, amounts stated negated,
    ``sign`` -1) the discounts become negative allowances."""
    from dataclasses import replace

    from tests.billing.test_documents import invoice, line

    lines = (
        line(1, "30.00", "6.00", desc="Fibre"),
        line(2, "20.00", "1.10", rate="0.055", desc="Book"),
        line(3, "-60.00", "-12.00", desc="Cancellation credit"),
        replace(line(4, "-3.00", "-0.60", desc="Loyalty"), allowance_code="95"),
        replace(line(5, "-2.00", "-0.11", rate="0.055", desc="Welcome"), allowance_code="100"),
    )
    stated = tuple(
        replace(li, net=sign * li.net, tax=sign * li.tax, gross=sign * li.gross,
                unit_price=sign * li.unit_price)
        for li in lines
    )  # fmt: skip
    value = invoice(
        lines=stated,
        net=sum((li.net for li in stated), D(0)),
        tax=sum((li.tax for li in stated), D(0)),
        gross=sum((li.gross for li in stated), D(0)),
        type_code=type_code,
    )
    xml = cii_bytes(value, DEFAULT_SELLER)
    validate_cii_xsd(xml)
    assert validate_cii_schematron(xml) == []
    return etree.fromstring(xml)


def test_a_bill_day_credit_note_states_its_discounts_as_negative_allowances() -> None:
    # stored: fees 50.00, credit -60.00, discounts -5.00: -15.00, a credit note. Stated
    # negated: lines -30 - 20 + 60 = 10.00 (BT-106), allowances -5.00 (BT-107, the discounts
    # add to the credit), BT-109 = 10.00 - (-5.00) = 15.00.
    tree = hand_made("381", -1)
    assert [a[:2] for a in allowances(tree)] == [("-3.00", "95"), ("-2.00", "100")]
    assert header_totals(tree)[:3] == [
        ("LineTotalAmount", "10.00"),
        ("AllowanceTotalAmount", "-5.00"),
        ("TaxBasisTotalAmount", "15.00"),
    ]


def test_an_invoice_with_discounts_and_a_credit_line() -> None:
    # the same lines as stored: BT-106 = 50.00 - 60.00 = -10.00, BT-107 5.00, BT-109 -15.00
    tree = hand_made("380", 1)
    assert [a[0] for a in allowances(tree)] == ["3.00", "2.00"]
    assert header_totals(tree)[:3] == [
        ("LineTotalAmount", "-10.00"),
        ("AllowanceTotalAmount", "5.00"),
        ("TaxBasisTotalAmount", "-15.00"),
    ]
