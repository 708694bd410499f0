"""Tests for billing.domain.invoice: a draft bill whose totals are the sums of its lines."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.errors import MoneyError, PeriodError, PricingError
from billing.domain.invoice import ChargeIn, DraftLine, generate_invoice
from billing.domain.tax import TaxSummaryRow
from billing.domain.vat import LineTax, VatCategory

D = Decimal
RATES = {
    "S": LineTax(VatCategory.STANDARD, D("0.20")),
    "R": LineTax(VatCategory.STANDARD, D("0.055")),
    "Z": LineTax(VatCategory.ZERO, D("0")),
}


def standard(rate: str) -> dict[str, LineTax | str]:
    """The taxes of a buyer whose one class "S" is standard rated at ``rate``."""
    return {"S": LineTax(VatCategory.STANDARD, D(rate))}


def charge(charge_id: int, start: date, amount: str, category: str = "S") -> ChargeIn:
    """Build a one-month charge of ``amount`` starting on ``start``."""
    return ChargeIn(
        charge_id=charge_id,
        description=f"charge {charge_id}",
        period_start=start,
        period_end=start + timedelta(days=30),
        quantity=D(1),
        unit_price=D(amount),
        amount=D(amount),
        tax_category=category,
    )


def test_generate_invoice_builds_lines_totals_and_breakdown() -> None:
    charges = [
        charge(7, date(2024, 4, 1), "19.99", "R"),  # 19.99 x 0.055 = 1.09945 -> 1.10
        charge(3, date(2024, 4, 1), "10.00"),  # 2.00
        charge(1, date(2024, 5, 1), "0.03"),  # 0.006 -> 0.01
        charge(2, date(2024, 3, 15), "5.00", "Z"),  # 0.00
    ]
    bill = generate_invoice(
        currency="EUR",
        charges=charges,
        taxes=RATES,
        bill_date=date(2024, 5, 31),
        payment_terms_days=30,
    )
    assert [line.charge_id for line in bill.lines] == [2, 3, 7, 1]  # (period_start, charge_id)
    assert bill.lines[2] == DraftLine(
        charge_id=7,
        description="charge 7",
        period_start=date(2024, 4, 1),
        period_end=date(2024, 5, 1),
        quantity=D(1),
        unit_price=D("19.99"),
        net=D("19.99"),
        tax_category="R",
        tax_rate=D("0.055"),
        tax=D("1.10"),
        gross=D("21.09"),
        vat_category="S",
    )
    # net 19.99 + 10.00 + 0.03 + 5.00 = 35.02; tax 1.10 + 2.00 + 0.01 + 0 = 3.11
    assert (bill.net, bill.tax, bill.gross) == (D("35.02"), D("3.11"), D("38.13"))
    assert (bill.period_start, bill.period_end) == (date(2024, 3, 15), date(2024, 5, 31))
    assert bill.due_date == date(2024, 6, 30)
    assert bill.currency == "EUR" and bill.bill_date == date(2024, 5, 31)
    assert bill.tax_summary == (  # by EN 16931 category and rate, not by catalogue class
        TaxSummaryRow("S", D("0.055"), D("19.99"), D("1.10")),
        TaxSummaryRow("S", D("0.20"), D("10.03"), D("2.01")),
        TaxSummaryRow("Z", D("0"), D("5.00"), D("0.00")),
    )


def test_generate_invoice_in_jpy() -> None:
    bill = generate_invoice(
        currency="JPY",
        charges=[charge(1, date(2024, 4, 1), "999"), charge(2, date(2024, 4, 1), "1")],
        taxes=standard("0.10"),
        bill_date=date(2024, 5, 1),
        payment_terms_days=0,
    )
    # 999 x 0.10 = 99.9 -> 100; 1 x 0.10 = 0.1 -> 0
    assert [line.tax for line in bill.lines] == [D(100), D(0)]
    assert (bill.net, bill.tax, bill.gross) == (D(1000), D(100), D(1100))
    assert bill.due_date == date(2024, 5, 1)


def test_missing_tax_category_is_named() -> None:
    with pytest.raises(PricingError, match="'X'"):
        generate_invoice(
            currency="EUR",
            charges=[charge(1, date(2024, 4, 1), "1.00", "X")],
            taxes=RATES,
            bill_date=date(2024, 5, 1),
            payment_terms_days=30,
        )


@pytest.mark.parametrize(
    ("charges", "terms", "error", "match"),
    [
        ([], 30, PricingError, "at least one charge"),
        ([charge(1, date(2024, 4, 1), "1.00"), charge(1, date(2024, 5, 1), "1.00")], 30,
         PricingError, "duplicate"),
        ([charge(1, date(2024, 4, 1), "1.005")], 30, MoneyError, "not rounded"),
        ([charge(1, date(2024, 4, 1), "1.00")], -1, PeriodError, "payment terms"),
    ],
)  # fmt: skip
def test_generate_invoice_refuses(
    charges: list[ChargeIn], terms: int, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        generate_invoice(
            currency="EUR",
            charges=charges,
            taxes=RATES,
            bill_date=date(2024, 5, 1),
            payment_terms_days=terms,
        )


@st.composite
def charge_lists(draw: st.DrawFn) -> list[ChargeIn]:
    """Draw up to 20 charges with distinct ids, signed amounts and mixed categories."""
    ids = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=20, unique=True))
    return [
        charge(
            charge_id,
            draw(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1))),
            str(D(draw(st.integers(-(10**7), 10**7))).scaleb(-2)),
            draw(st.sampled_from(sorted(RATES))),
        )
        for charge_id in ids
    ]


@given(charge_lists())
def test_invoice_totals_are_the_sums_of_its_lines(charges: list[ChargeIn]) -> None:
    bill = generate_invoice(
        currency="EUR",
        charges=charges,
        taxes=RATES,
        bill_date=date(2030, 2, 1),
        payment_terms_days=14,
    )
    assert bill.net == sum((line.net for line in bill.lines), D(0))
    assert bill.tax == sum((line.tax for line in bill.lines), D(0))
    assert bill.gross == sum((line.gross for line in bill.lines), D(0))
    assert bill.net + bill.tax == bill.gross
    assert all(line.net + line.tax == line.gross for line in bill.lines)
    assert sum((row.tax for row in bill.tax_summary), D(0)) == bill.tax
    assert sum((row.base for row in bill.tax_summary), D(0)) == bill.net
    keys = [(line.period_start, line.charge_id) for line in bill.lines]
    assert keys == sorted(keys) and len(keys) == len(charges)


def test_equal_amounts_and_rates_written_with_other_digits_give_the_same_lines() -> None:
    """Line amounts are memoized by value: the digits of what comes in never leak out."""

    def draft(amount: str, rate: str) -> tuple[str, ...]:
        bill = generate_invoice(
            currency="EUR",
            charges=[charge(1, date(2024, 4, 1), amount)],
            taxes=standard(rate),
            bill_date=date(2024, 5, 1),
            payment_terms_days=0,
        )
        line = bill.lines[0]
        return tuple(str(v) for v in (line.net, line.tax, line.gross, line.tax_rate, bill.gross))

    assert draft("10.05", "0.2") == ("10.05", "2.01", "12.06", "0.2", "12.06")
    assert draft("10.050000", "0.200000") == ("10.05", "2.01", "12.06", "0.200000", "12.06")
    assert draft("-0.00", "0.2")[:3] == ("0.00", "0.00", "0.00")
    with pytest.raises(MoneyError):  # a float equal to an amount seen before is still refused
        generate_invoice(
            currency="EUR",
            charges=[ChargeIn(1, "c", date(2024, 4, 1), date(2024, 5, 1), D(1), D(1), 10.05, "S")],  # type: ignore[arg-type]
            taxes=standard("0.2"),
            bill_date=date(2024, 5, 1),
            payment_terms_days=0,
        )
