"""billing.domain.money: minor units, float refusal, explicit rounding, exact allocation."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.errors import MoneyError
from billing.domain.money import (
    LINE_ROUNDING,
    ROUNDING_MODES,
    Money,
    allocate,
    divmod_exact,
    exact_difference,
    exact_product,
    exact_sum,
    minor_unit,
    minor_units,
    quantize_money,
    round_fraction,
    round_quotient,
    to_decimal,
)

D = Decimal


@pytest.mark.parametrize(
    ("currency", "units"),
    [("EUR", 2), ("USD", 2), ("GBP", 2), ("CHF", 2), ("BRL", 2), ("SEK", 2), ("PLN", 2),
     ("XOF", 0), ("JPY", 0), ("TND", 3), ("KWD", 3)],
)  # fmt: skip
def test_minor_units_of_known_currencies(currency: str, units: int) -> None:
    assert minor_units(currency) == units


@pytest.mark.parametrize("currency", ["ABC", "eur", ""])
def test_unknown_currency_is_named_in_the_error(currency: str) -> None:
    with pytest.raises(MoneyError, match=repr(currency)):
        minor_units(currency)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(D("1.10"), "1.10"), (3, "3"), ("0.005", "0.005"), ("-12.50", "-12.50"), (-7, "-7")],
)
def test_to_decimal_keeps_the_exact_value(value: Decimal | int | str, expected: str) -> None:
    assert str(to_decimal(value)) == expected


@pytest.mark.parametrize(
    "value", [1.5, 0.1, True, False, None, "abc", "NaN", "Infinity", D("sNaN"), D("-Inf"), [1]]
)
def test_to_decimal_refuses_floats_bools_and_non_finite(value: object) -> None:
    with pytest.raises(MoneyError):
        to_decimal(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "rounding", "expected"),
    [
        (D("1.005"), "EUR", ROUND_HALF_UP, "1.01"),  # half away from zero
        (D("1.005"), "EUR", ROUND_HALF_EVEN, "1.00"),  # banker's: 0 is even
        (D("-1.005"), "EUR", ROUND_HALF_UP, "-1.01"),  # symmetric for credits
        (D("2.999"), "EUR", ROUND_DOWN, "2.99"),
        (D("1234.5"), "JPY", ROUND_HALF_UP, "1235"),  # JPY has no minor units
        (D("1234.5"), "JPY", ROUND_HALF_EVEN, "1234"),
        (D("7"), "JPY", ROUND_HALF_UP, "7"),
        (D("1.2345"), "TND", ROUND_HALF_UP, "1.235"),  # TND has 3 decimals
        (D("1.2345"), "TND", ROUND_HALF_EVEN, "1.234"),
        (D("0.0004"), "KWD", ROUND_HALF_UP, "0.000"),
        (D("-0.001"), "EUR", ROUND_HALF_UP, "0.00"),  # never prints "-0.00"
        (D("5"), "EUR", ROUND_HALF_UP, "5.00"),
        (D("123456789012345678901234567890.125"), "EUR", ROUND_HALF_UP,
         "123456789012345678901234567890.13"),  # beyond the ambient 28 digits
    ],
)  # fmt: skip
def test_quantize_money(amount: Decimal, currency: str, rounding: str, expected: str) -> None:
    assert str(quantize_money(amount, currency, rounding)) == expected


def test_quantize_money_refuses_an_unknown_rounding_mode() -> None:
    with pytest.raises(MoneyError, match="rounding"):
        quantize_money(D("1.005"), "EUR", "HALF_UP")


def test_line_rounding_is_half_up() -> None:
    assert LINE_ROUNDING == ROUND_HALF_UP


@pytest.mark.parametrize(
    ("value", "places", "rounding", "expected"),
    [
        (Fraction(1, 3), 2, ROUND_HALF_UP, "0.33"),
        (Fraction(2, 3), 2, ROUND_HALF_UP, "0.67"),
        (Fraction(1, 8), 2, ROUND_HALF_UP, "0.13"),  # 0.125 exactly half: up
        (Fraction(1, 8), 2, ROUND_HALF_EVEN, "0.12"),  # 0.125 exactly half: to even
        (Fraction(-1, 8), 2, ROUND_HALF_UP, "-0.13"),
        (Fraction(1000, 372), 2, ROUND_HALF_UP, "2.69"),  # 2.688172...
        (Fraction(10, 1), 0, ROUND_HALF_UP, "10"),
        (Fraction(1, 3), 6, ROUND_HALF_UP, "0.333333"),
    ],
)
def test_round_fraction(value: Fraction, places: int, rounding: str, expected: str) -> None:
    assert str(round_fraction(value, places, rounding)) == expected


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=5, allow_nan=False),
    st.sampled_from(sorted(ROUNDING_MODES)),
)
def test_round_fraction_agrees_with_decimal_quantize(value: Decimal, rounding: str) -> None:
    expected = value.quantize(D("0.01"), rounding=rounding)
    assert round_fraction(Fraction(value), 2, rounding) == expected


decimals = st.decimals(min_value=-(10**12), max_value=10**12, places=6, allow_nan=False)


@given(
    decimals,
    decimals.filter(lambda d: d != 0),
    st.integers(min_value=0, max_value=8),
    st.sampled_from(sorted(ROUNDING_MODES)),
)
def test_round_quotient_is_round_fraction_of_the_exact_quotient(
    dividend: Decimal, divisor: Decimal, places: int, rounding: str
) -> None:
    expected = round_fraction(Fraction(dividend) / Fraction(divisor), places, rounding)
    got = round_quotient(dividend, divisor, places, rounding)
    assert (got, str(got)) == (expected, str(expected))


def test_round_quotient_refuses_zero_divisors_floats_and_unknown_modes() -> None:
    with pytest.raises(MoneyError, match="by zero"):
        round_quotient(D("1.00"), D("0.000"), 2, ROUND_HALF_UP)
    with pytest.raises(MoneyError):
        round_quotient(D("1.00"), 0.5, 2, ROUND_HALF_UP)  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="rounding mode"):
        round_quotient(D("1.00"), D(3), 2, "ROUND_SOMETIMES")


def test_exact_arithmetic_ignores_the_ambient_precision() -> None:
    big = D("123456789012345678901234567890.123456")  # 36 digits: the ambient context keeps 28
    assert exact_product(big, D(10)) == D("1234567890123456789012345678901.23456")
    assert exact_difference(big, D("0.000001")) == D("123456789012345678901234567890.123455")
    assert exact_sum([big, D("0.000001")]) == D("123456789012345678901234567890.123457")
    assert divmod_exact(big, D("0.5")) == (D("246913578024691357802469135780"), D("0.123456"))
    assert exact_product() == D(1)


def test_minor_unit_is_the_rounding_exponent_of_the_currency() -> None:
    assert [str(minor_unit(c)) for c in ("EUR", "JPY", "TND")] == ["0.01", "1", "0.001"]
    with pytest.raises(MoneyError, match="'XXX'"):
        minor_unit("XXX")


def test_to_decimal_returns_a_decimal_as_it_is() -> None:
    value = D("-0.50")
    assert to_decimal(value) is value
    with pytest.raises(MoneyError):
        to_decimal(D("NaN"))


@pytest.mark.parametrize(
    ("total", "weights", "currency", "expected"),
    [
        # 100.00 / 3 = 33.333..: floors 33.33 x3 leave 1 cent, the first (tie) takes it
        (D("100.00"), [1, 1, 1], "EUR", ["33.34", "33.33", "33.33"]),
        (D("-100.00"), [1, 1, 1], "EUR", ["-33.34", "-33.33", "-33.33"]),
        # zero weight gets zero: 10.00 split 1:0:1
        (D("10.00"), [1, 0, 1], "EUR", ["5.00", "0.00", "5.00"]),
        # 5 cents split 1:1: 2.5 each, tie goes to the first
        (D("0.05"), [1, 1], "EUR", ["0.03", "0.02"]),
        # 100 JPY 1:2 -> 33.33 / 66.67: floors 33 + 66 = 99, larger remainder (.67) wins
        (D("100"), [1, 2], "JPY", ["33", "67"]),
        # 1.000 TND 1:1:1 -> 0.333.. each, one mil to the first
        (D("1.000"), [1, 1, 1], "TND", ["0.334", "0.333", "0.333"]),
        # 10.00 by 0.2 : 0.3 : 0.5 -> 2.00, 3.00, 5.00 exactly
        (D("10.00"), [D("0.2"), D("0.3"), D("0.5")], "EUR", ["2.00", "3.00", "5.00"]),
        (D("0.00"), [1, 3], "EUR", ["0.00", "0.00"]),
    ],
)
def test_allocate(
    total: Decimal, weights: list[Decimal], currency: str, expected: list[str]
) -> None:
    assert [str(part) for part in allocate(total, [D(w) for w in weights], currency)] == expected


@pytest.mark.parametrize(
    ("total", "weights", "match"),
    [
        (D("10.00"), [0, 0], "positive weight"),
        (D("10.00"), [], "positive weight"),
        (D("10.00"), [1, -1], "negative"),
        (D("10.001"), [1, 1], "more decimals"),
    ],
)
def test_allocate_refuses(total: Decimal, weights: list[int], match: str) -> None:
    with pytest.raises(MoneyError, match=match):
        allocate(total, [D(w) for w in weights], "EUR")


@given(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12).filter(any),
    st.sampled_from(["EUR", "JPY", "TND"]),
)
def test_allocation_sums_to_the_whole_within_one_minor_unit(
    units: int, weights: list[int], currency: str
) -> None:
    total = D(units).scaleb(-minor_units(currency))
    parts = allocate(total, [D(w) for w in weights], currency)
    assert sum(parts, D(0)) == total
    minor = Fraction(1, 10 ** minor_units(currency))
    for part, weight in zip(parts, weights, strict=True):
        exact_share = Fraction(total) * weight / sum(weights)
        assert abs(Fraction(part) - exact_share) < minor
        if weight == 0:
            assert part == 0


def test_money_adds_and_subtracts_exactly_in_one_currency() -> None:
    a, b = Money(D("1.10"), "EUR"), Money(D("2.205"), "EUR")
    assert a + b == Money(D("3.305"), "EUR")
    assert a - b == Money(D("-1.105"), "EUR")
    assert -a == Money(D("-1.10"), "EUR")
    # 3.305 half up -> 3.31; half even -> 3.30 (0 is even)
    assert (a + b).rounded(ROUND_HALF_UP) == Money(D("3.31"), "EUR")
    assert (a + b).rounded(ROUND_HALF_EVEN) == Money(D("3.30"), "EUR")


def test_money_stores_ints_and_strings_as_decimal() -> None:
    assert Money(5, "JPY").amount == D(5)  # type: ignore[arg-type]
    assert isinstance(Money("1.5", "EUR").amount, Decimal)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "match"),
    [(1.5, "EUR", "float"), (D("1"), "ABC", "ABC"), (D("NaN"), "EUR", "finite")],
)
def test_money_refuses(amount: object, currency: str, match: str) -> None:
    with pytest.raises(MoneyError, match=match):
        Money(amount, currency)  # type: ignore[arg-type]


def test_money_refuses_mixed_currencies() -> None:
    with pytest.raises(MoneyError, match="EUR"):
        Money(D("1.00"), "EUR") + Money(D("1.00"), "USD")
    with pytest.raises(MoneyError, match="EUR"):
        Money(D("1.00"), "EUR") - Money(D("1.00"), "USD")
