"""Tests for billing.domain.tax: line tax rounded once, breakdown summed from the rounded lines."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.errors import MoneyError
from billing.domain.money import ROUNDING_MODES, round_money
from billing.domain.tax import TaxLine, TaxSummaryRow, line_tax, summarize, tax_summary

D = Decimal


@pytest.mark.parametrize(
    ("net", "rate", "currency", "rounding", "expected"),
    [
        (D("10.00"), D("0.20"), "EUR", ROUND_HALF_UP, "2.00"),
        (D("0.05"), D("0.19"), "EUR", ROUND_HALF_UP, "0.01"),  # 0.0095
        (D("0.25"), D("0.10"), "EUR", ROUND_HALF_UP, "0.03"),  # 0.025 half up
        (D("0.25"), D("0.10"), "EUR", ROUND_HALF_EVEN, "0.02"),  # 0.025 to even
        (D("-0.05"), D("0.10"), "EUR", ROUND_HALF_UP, "-0.01"),  # credit: -0.005 away from zero
        (D("999"), D("0.10"), "JPY", ROUND_HALF_UP, "100"),  # 99.9
        (D("12.345"), D("0.19"), "TND", ROUND_HALF_UP, "2.346"),  # 2.34555
        (D("10.00"), D("0"), "EUR", ROUND_HALF_UP, "0.00"),
    ],
)
def test_line_tax(net: Decimal, rate: Decimal, currency: str, rounding: str, expected: str) -> None:
    assert str(line_tax(net, rate, currency, rounding)) == expected


@pytest.mark.parametrize("rate", [0.2, D("-0.1")])
def test_line_tax_refuses_float_and_negative_rates(rate: Decimal) -> None:
    with pytest.raises(MoneyError):
        line_tax(D("10.00"), rate, "EUR", ROUND_HALF_UP)


def test_tax_summary_sums_the_rounded_lines_by_category_and_rate() -> None:
    lines = [
        # three lines of 0.03 at 20%: each 0.006 -> 0.01, so the row says 0.03
        # (rounding the 0.09 base once would say 0.018 -> 0.02)
        TaxLine("S", D("0.20"), D("0.03"), D("0.01")),
        TaxLine("Z", D("0"), D("5.00"), D("0.00")),
        TaxLine("S", D("0.20"), D("0.03"), D("0.01")),
        TaxLine("S", D("0.10"), D("10.00"), D("1.00")),
        TaxLine("S", D("0.20"), D("0.03"), D("0.01")),
    ]
    assert tax_summary(lines) == (
        TaxSummaryRow("S", D("0.10"), D("10.00"), D("1.00")),
        TaxSummaryRow("S", D("0.20"), D("0.09"), D("0.03")),
        TaxSummaryRow("Z", D("0"), D("5.00"), D("0.00")),
    )


def test_tax_summary_of_no_lines_is_empty() -> None:
    assert tax_summary([]) == ()


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=3),
    st.decimals(min_value=0, max_value=1, places=6),
    st.sampled_from(["EUR", "JPY", "TND"]),
    st.sampled_from(sorted(ROUNDING_MODES)),
)
def test_line_tax_is_the_exact_product_rounded_once(
    net: Decimal, rate: Decimal, currency: str, rounding: str
) -> None:
    expected = round_money(Fraction(net) * Fraction(rate), currency, rounding)
    got = line_tax(net, rate, currency, rounding)
    assert (got, str(got)) == (expected, str(expected))


def test_summarize_takes_plain_tuples_like_tax_summary() -> None:
    rows = [("S", D("0.20"), D("0.03"), D("0.01")), ("Z", D("0"), D("5.00"), D("0.00"))] * 2
    assert summarize(rows) == tax_summary(TaxLine(*row) for row in rows)
    assert summarize(rows) == (
        TaxSummaryRow("S", D("0.20"), D("0.06"), D("0.02")),
        TaxSummaryRow("Z", D("0"), D("10.00"), D("0.00")),
    )
