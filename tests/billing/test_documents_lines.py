"""Printed invoice lines a customer can check (issue #18).

Every printed line shows numbers whose arithmetic gives its amount: quantity x unit price
(x n / m days for a prorated fee), rounded half up to the cent; a tiered, volume or package
line prints its tiers or packages instead, whose exact amounts add up, rounded once, to the
line. The population test reads the numbers back from the rendered HTML of every invoice of a
billed synthetic population, so a unit price rounded for print, a missing day count or a
sub-line that does not add up fails it. The header's billing period is the span of the lines.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from lxml import html as lxml_html
from sqlalchemy import update

from billing.documents.cii import build_cii
from billing.documents.formatting import Formatter
from billing.documents.model import LinePricing, line_printed, load_invoices
from billing.documents.pdf import InvoiceRenderer
from billing.documents.seller import DEFAULT_SELLER
from billing.domain.periods import Period
from billing.domain.pricing import PricePlan, Tier, rate_usage, recurring_fee
from billing.domain.printed import PrintedLine, checks, printed_line, sub_lines
from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import BilledLine, PriceModel, PriceTier
from billing.store.models import PricePlan as PlanRow
from tests.billing.test_documents import invoice, line
from tests.billing.test_revrec import _cancel_some_advance_items

D = Decimal
TIERS = (Tier(D(10000), D("0.002")), Tier(None, D("0.00198")))
GRADUATED = PricePlan("API", "graduated", "EUR", None, TIERS)
VOLUME = PricePlan("VOL", "volume", "EUR", None, (Tier(D(100), D("0.05"), D("1.00")), *TIERS[1:]))
PACKAGE = PricePlan("PACK", "package", "EUR", D("2.00"), package_size=D(100))
FEE = PricePlan("FIBRE", "recurring", "EUR", D("29.90"), timing="advance")


def test_a_per_unit_line_prints_its_unit_price_with_all_its_decimals():
    rated = rate_usage(PricePlan("U", "per_unit", "EUR", D("0.00198")), D(99250), "ROUND_HALF_UP")
    printed = printed_line(rated.quantity, rated.unit_price, rated.amount, "EUR")
    assert printed.unit_price == D("0.00198") and checks(printed, "EUR")
    f = Formatter.for_account("fr", "FR", "EUR")
    assert f.price(printed.unit_price) == "0,00198\u00a0€"
    assert f.money(rated.amount) == "196,52\u00a0€"


def test_a_graduated_line_prints_its_tiers_which_add_up_to_the_amount():
    rated = rate_usage(GRADUATED, D(99250), "ROUND_HALF_UP")
    printed = printed_line(
        rated.quantity, rated.unit_price, rated.amount, "EUR", plan=GRADUATED, usage=True
    )
    assert printed.unit_price is None and checks(printed, "EUR")
    assert [(s.low, s.high, s.quantity, s.unit_price, s.amount) for s in printed.sub_lines] == [
        (D(0), D(10000), D(10000), D("0.002"), D("20.000")),
        (D(10001), D(99250), D(89250), D("0.00198"), D("176.71500")),
    ]
    assert rated.amount == D("196.72")
    # the stored average price does not give the amount back: that is the bug of issue #18
    assert not checks(PrintedLine(rated.quantity, rated.unit_price, rated.amount), "EUR")


@pytest.mark.parametrize("quantity", ["1", "99", "100", "101", "5000", "12345"])
def test_volume_and_package_lines_add_up(quantity):
    for plan in (VOLUME, PACKAGE, GRADUATED):
        rated = rate_usage(plan, D(quantity), "ROUND_HALF_UP")
        printed = printed_line(
            rated.quantity, rated.unit_price, rated.amount, "EUR", plan=plan, usage=True
        )
        assert printed.sub_lines and checks(printed, "EUR"), (plan.model, quantity)


def test_tiers_of_a_fractional_quantity_start_at_their_bound():
    subs = sub_lines(GRADUATED, D("10500.5"))
    assert [(s.low, s.high) for s in subs] == [(D(0), D(10000)), (D(10000), D("10500.5"))]


def test_a_package_line_counts_whole_packages():
    (packages,) = sub_lines(PACKAGE, D(250))
    assert (packages.quantity, packages.size, packages.amount) == (D(3), D(100), D("6.00"))


def test_a_prorated_fee_prints_its_full_price_and_its_days():
    cycle = Period(date(2027, 1, 1), date(2027, 2, 1))
    active = Period(date(2027, 1, 11), date(2027, 2, 1))
    rated = recurring_fee(FEE, D(3), cycle, active, 1, "ROUND_HALF_UP")
    assert rated.amount == D("60.76")
    printed = printed_line(
        D(3),
        rated.unit_price,
        rated.amount,
        "EUR",
        plan=FEE,
        price=D("29.90"),
        cycle=cycle,
        period=active,
    )
    assert (printed.unit_price, printed.days) == (D("29.90"), (21, 31))
    assert checks(printed, "EUR")
    words = {
        lang: Formatter.for_account(lang, "FR", "EUR").text("prorated_days", days=21, cycle=31)
        for lang in ("en", "fr", "de", "pt")
    }
    assert words == {
        "en": "21 of 31 days",
        "fr": "21 jours sur 31",
        "de": "21 von 31 Tagen",
        "pt": "21 de 31 dias",
    }


def test_a_full_cycle_fee_prints_no_days():
    cycle = Period(date(2027, 1, 1), date(2027, 2, 1))
    rated = recurring_fee(FEE, D(3), cycle, cycle, 1, "ROUND_HALF_UP")
    printed = printed_line(
        D(3),
        rated.unit_price,
        rated.amount,
        "EUR",
        plan=FEE,
        price=D("29.90"),
        cycle=cycle,
        period=cycle,
    )
    assert (printed.unit_price, printed.days) == (D("29.90"), None)


def test_a_line_no_unit_price_fits_prints_none():
    printed = printed_line(D(3), D("21.216667"), D("63.66"), "EUR")
    assert printed.unit_price is None and not printed.sub_lines


def _line(**given) -> BilledLine:
    """A bill line (a charge on a bill) with what the test gives, the rest made up."""
    fields = {
        "bill_id": 1, "charge_id": 1, "position": 1, "description": "fee",
        "tax_category": "STD", "tax_rate": D("0.2"), "tax": D(0), "vat_category": "S",
    }  # fmt: skip
    return BilledLine(**{**fields, **given})


def test_a_fee_whose_cycle_no_longer_fits_its_bill_unit_prints_without_days():
    bill_line = _line(
        period_start=date(2027, 1, 11), period_end=date(2027, 2, 1), quantity=D(3),
        unit_price=D("20.253333"), net=D("60.76"),
    )  # fmt: skip
    pricing = LinePricing(
        kind="recurring", charge_key="rec:7:2027-01-01", plan=FEE, billing_day=15, cycle="monthly"
    )  # 2027-01-01 is no bill date for billing day 15
    printed = line_printed(bill_line, pricing, "EUR")
    assert printed.days is None and checks(printed, "EUR")
    pricing = dataclasses.replace(pricing, billing_day=1)
    assert line_printed(bill_line, pricing, "EUR").days == (21, 31)


def _credit(cancel_on: date, quantity: str = "3", price: str = "29.90"):
    """The credit ``schedule.cancellation_credit`` writes for a monthly fee charged for the
    whole month of ``cancel_on`` (2027) and cancelled that day: a bill line and its pricing."""
    plan = dataclasses.replace(FEE, unit_price=D(price))
    cycle = Period(cancel_on.replace(day=1), date(2027, cancel_on.month + 1, 1))
    charged = recurring_fee(plan, D(quantity), cycle, cycle, 1, "ROUND_HALF_UP").amount
    used = Period(cycle.start, cancel_on) if cancel_on > cycle.start else None
    kept = recurring_fee(plan, D(quantity), cycle, used, 1, "ROUND_HALF_UP").amount
    difference = kept - charged
    bill_line = _line(
        period_start=cancel_on, period_end=cycle.end, quantity=D(1), unit_price=difference,
        net=difference,
    )  # fmt: skip
    pricing = LinePricing(
        kind="adjustment", charge_key=f"cxl:7:{cycle.start}", plan=plan, billing_day=1,
        cycle="monthly", item_quantity=D(quantity), next_bill_date=date(2027, 3, 1),
    )  # fmt: skip
    return bill_line, pricing


def test_a_cancellation_credit_prints_its_unused_days():
    bill_line, pricing = _credit(date(2027, 1, 15))  # 17 unused days of 31: -89.70 x 17/31
    assert bill_line.net == D("-49.19")
    printed = line_printed(bill_line, pricing, "EUR")
    assert printed == PrintedLine(D(3), D("-29.90"), D("-49.19"), (17, 31))
    assert checks(printed, "EUR")


def test_a_credit_of_a_whole_cycle_prints_no_days():
    bill_line, pricing = _credit(date(2027, 1, 1))
    printed = line_printed(bill_line, pricing, "EUR")
    assert printed == PrintedLine(D(3), D("-29.90"), D("-89.70"))


def test_a_credit_whose_half_cent_rounds_the_other_way_prints_its_amount():
    """April has 30 days: -1.01 x 15/30 is -0.505 (-0.51 rounded), but the credit is 0.51 kept
    - 1.01 charged = -0.50: no days are printed rather than days that do not give the amount."""
    bill_line, pricing = _credit(date(2027, 4, 16), quantity="1", price="1.01")
    assert bill_line.net == D("-0.50")
    printed = line_printed(bill_line, pricing, "EUR")
    assert printed.days is None and checks(printed, "EUR")
    assert (printed.quantity, printed.unit_price) == (D(1), bill_line.net)


def test_other_adjustments_and_a_changed_billing_day_print_without_days():
    bill_line, pricing = _credit(date(2027, 1, 15))
    for changed in (
        dataclasses.replace(pricing, charge_key="chg:7:2027-01-01"),  # a change, not a cancel
        dataclasses.replace(pricing, billing_day=15),  # 2027-03-01 is no bill date for day 15
        dataclasses.replace(pricing, item_quantity=D(2)),  # the item's quantity changed since
    ):
        printed = line_printed(bill_line, changed, "EUR")
        assert printed.days is None and checks(printed, "EUR"), changed


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", "17 of 31 days"),
        ("fr", "17 jours sur 31"),
        ("de", "17 von 31 Tagen"),
        ("pt", "17 de 31 dias"),
    ],
)
def test_a_cancellation_credit_prints_its_days_in_each_language(language, words):
    bill_line, pricing = _credit(date(2027, 1, 15))
    printed = line_printed(bill_line, pricing, "EUR")
    credit = dataclasses.replace(
        line(1, "-49.19", "-9.84", price="-49.19", desc="Fibre (cancelled)"),
        period_start=date(2027, 1, 15),
        printed=printed,
    )
    page = InvoiceRenderer(DEFAULT_SELLER).html(invoice(language, lines=(credit,)))
    f = Formatter.for_account(language, "FR", "EUR")
    [row] = printed_rows(page)
    assert row[2] == f.number(D(3)) and row[3] == f"{f.price(D('-29.90'))}\n{words}"
    assert check_page(page, f) == Counter(unit_price=0, prorated=1, credit=1, prorated_credit=1)


# --- the printed page, read back ---------------------------------------------------------


def parse_amount(text: str, f: Formatter) -> Decimal:
    """A printed amount or number back to a Decimal (group separators and symbols dropped)."""
    decimal = f.locale.number_symbols["latn"]["decimal"]
    kept = "".join(c for c in text if c.isdigit() or c in "-−" or c == decimal)
    return D(kept.replace(decimal, ".").replace("−", "-"))


def printed_rows(page: str) -> list[list[str]]:
    tree = lxml_html.fromstring(page)
    for br in tree.iter("br"):  # a line break in a cell separates the price from its days
        br.tail = "\n" + (br.tail or "")
    return [
        [cell.text_content().strip() for cell in row.iterfind("td")] + [row.get("class") or ""]
        for row in tree.xpath("//table[@class='lines']/tbody/tr")
    ]


def check_page(page: str, f: Formatter, credit_note: bool = False) -> Counter[str]:
    """Assert the arithmetic of every printed line; count the forms seen. A credit note prints
    its credits positive (docs/documents.md, "Credit notes")."""
    seen: Counter[str] = Counter()
    rows = printed_rows(page)
    i = 0
    while i < len(rows):
        desc, _period, qty, price, _vat, amount, cls = rows[i]
        assert cls == "", rows[i]
        amount_value = parse_amount(amount, f)
        subs = []
        i += 1
        while i < len(rows) and rows[i][-1] == "sub":
            subs.append(rows[i])
            i += 1
        if subs:
            assert price == "", (desc, price)
            total = D(0)
            for label, sub_qty, sub_price, _, sub_amount, _ in subs:
                value = parse_amount(sub_amount, f)
                if sub_qty:
                    product = parse_amount(sub_qty, f) * parse_amount(sub_price, f)
                    assert product == value, (desc, label)
                total += value
            assert total.quantize(D("0.01"), ROUND_HALF_UP) == amount_value, desc
            seen["sub_lines"] += 1
            continue
        if not price:
            seen["no_price"] += 1
            continue
        first, _, days = price.partition("\n")
        product = Fraction(parse_amount(qty, f) * parse_amount(first, f))
        if days.strip():
            n, m = (int(x) for x in re.findall(r"\d+", days))
            product *= Fraction(n, m)
            seen["prorated"] += 1
        else:
            seen["unit_price"] += 1
        if (amount_value < 0) != credit_note:
            seen["credit"] += 1
            if days.strip():
                seen["prorated_credit"] += 1
        exact = D(product.numerator) / D(product.denominator)
        assert exact.quantize(D("0.01"), ROUND_HALF_UP) == amount_value, (desc, qty, price, amount)
    return seen


def test_every_printed_line_of_a_billed_population_checks(engine):
    seed(engine, accounts=120, usage_per_account=4, start=date(2027, 1, 1))
    with unit_of_work(engine) as s:  # sub-cent prices, as metered services have them
        s.execute(
            update(PlanRow)
            .where(PlanRow.model.in_([PriceModel.PER_UNIT, PriceModel.PACKAGE]))
            .values(unit_price=PlanRow.unit_price + D("0.00198"))
        )
        s.execute(update(PriceTier).values(unit_price=PriceTier.unit_price + D("0.00123")))
    _cancel_some_advance_items(engine, count=15, on=date(2027, 2, 10))  # credits
    for day in (date(2027, 1, 15), date(2027, 2, 1), date(2027, 2, 15), date(2027, 3, 1)):
        run_bill_day(engine, day, f"run-{day}")
    renderer = InvoiceRenderer(DEFAULT_SELLER)
    seen: Counter[str] = Counter()
    invoices = 0
    with unit_of_work(engine) as s:
        for value in load_invoices(s):
            f = Formatter.for_account(value.language, value.buyer.country, value.currency)
            page = renderer.html(value)
            seen += check_page(page, f, value.is_credit_note)
            invoices += 1
            first, end = value.lines_span
            assert first == min(li.period_start for li in value.lines)
            assert end == max(li.period_end for li in value.lines)
    assert invoices > 100
    assert seen["sub_lines"] and seen["prorated"] and seen["unit_price"], seen
    assert seen["no_price"] == 0, seen
    assert seen["credit"], seen
    assert seen["prorated_credit"], seen  # cancellation credits print their unused days


# --- periods ---------------------------------------------------------------------------


def test_the_header_period_is_the_span_of_the_printed_line_periods():
    lines = (
        dataclasses.replace(line(1, "30.00", "6.00"), period_start=date(2027, 1, 11)),
        dataclasses.replace(
            line(2, "10.00", "2.00"), period_start=date(2027, 2, 1), period_end=date(2027, 3, 1)
        ),
    )
    value = invoice("fr", lines=lines, period_start=date(2026, 12, 1), period_end=date(2027, 1, 1))
    page = InvoiceRenderer(DEFAULT_SELLER).html(value)
    tree = lxml_html.fromstring(page)
    header = tree.xpath("//p[@class='values']")[0].text_content().splitlines()
    periods = [row[1] for row in printed_rows(page)]
    starts = [p.split(" – ")[0] for p in periods]
    ends = [p.split(" – ")[1] for p in periods]
    f = Formatter.for_account("fr", "FR", "EUR")
    assert f"{f.date(date(2027, 1, 11))} – {f.date(date(2027, 2, 28))}" in header
    assert f"{starts[0]} – {ends[-1]}" in header
    assert ends[-1] == f.date(date(2027, 3, 1) - timedelta(days=1))  # the last day, inclusive
    cii = build_cii(value, DEFAULT_SELLER)  # BG-14 says the same as the header
    ns = {"ram": cii.nsmap["ram"], "udt": cii.nsmap["udt"]}
    bg14 = cii.find(".//ram:ApplicableHeaderTradeSettlement/ram:BillingSpecifiedPeriod", ns)
    assert [d.text for d in bg14.iterfind(".//udt:DateTimeString", ns)] == ["20270111", "20270228"]
