"""Tests for billing.domain.pricing: plan validation, usage rating, cycle and one-time fees."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.errors import PricingError
from billing.domain.money import ROUNDING_MODES, round_fraction, round_money
from billing.domain.periods import PRORATION_POLICIES, Period, proration_factor
from billing.domain.pricing import PricePlan, Rated, Tier, one_time_fee, rate_usage, recurring_fee

D = Decimal
HU = ROUND_HALF_UP

# 0..10 at 1.00, 10..20 at 0.80, above 20 at 0.50 (bounds inclusive)
TIERS = (Tier(D(10), D("1.00")), Tier(D(20), D("0.80")), Tier(None, D("0.50")))
GRADUATED = PricePlan("api-grad", "graduated", "EUR", None, TIERS)
VOLUME = PricePlan("api-vol", "volume", "EUR", None, TIERS)
# 0..10 at 1.00 + 5.00 flat, above 10 at 0.50 + 2.00 flat
FLAT_TIERS = (Tier(D(10), D("1.00"), D("5.00")), Tier(None, D("0.50"), D("2.00")))


def plan(**overrides: Any) -> PricePlan:
    """Build a valid monthly recurring plan with some fields replaced."""
    fields: dict[str, Any] = {
        "code": "basic",
        "model": "recurring",
        "currency": "EUR",
        "unit_price": D("10.00"),
        "timing": "advance",
    }
    return PricePlan(**(fields | overrides))


@pytest.mark.parametrize(
    ("quantity", "graduated", "volume"),
    [
        ("0", "0.00", "0.00"),
        ("2.5", "2.50", "2.50"),  # 2.5 x 1.00 in both
        ("10", "10.00", "10.00"),  # boundary belongs to the lower tier: 10 x 1.00
        ("11", "10.80", "8.80"),  # grad 10 x 1 + 1 x 0.8; vol 11 x 0.8
        ("20", "18.00", "16.00"),  # grad 10 + 10 x 0.8; vol 20 x 0.8
        ("21", "18.50", "10.50"),  # grad 18 + 1 x 0.5; vol 21 x 0.5
        ("100", "58.00", "50.00"),  # grad 18 + 80 x 0.5; vol 100 x 0.5
    ],
)
def test_graduated_and_volume_on_the_same_tiers(quantity: str, graduated: str, volume: str) -> None:
    assert str(rate_usage(GRADUATED, D(quantity), HU).amount) == graduated
    assert str(rate_usage(VOLUME, D(quantity), HU).amount) == volume


@pytest.mark.parametrize(
    ("model", "quantity", "expected"),
    [
        ("graduated", "10", "15.00"),  # 10 x 1 + 5 flat
        ("graduated", "12", "18.00"),  # 10 x 1 + 5 + 2 x 0.5 + 2
        ("volume", "10", "15.00"),  # 10 x 1 + 5
        ("volume", "12", "8.00"),  # 12 x 0.5 + 2
        ("graduated", "0", "0.00"),  # zero quantity touches no tier
    ],
)
def test_tier_flat_fees(model: str, quantity: str, expected: str) -> None:
    tiered = PricePlan("flat", model, "EUR", None, FLAT_TIERS)
    assert str(rate_usage(tiered, D(quantity), HU).amount) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("0", "0.00"), ("1", "5.00"), ("10", "5.00"), ("10.5", "10.00"), ("25", "15.00")],
)
def test_package_rounds_the_number_of_packages_up(quantity: str, expected: str) -> None:
    package = PricePlan("sms", "package", "EUR", D("5.00"), package_size=D(10))
    assert str(rate_usage(package, D(quantity), HU).amount) == expected


@pytest.mark.parametrize(
    ("currency", "price", "quantity", "rounding", "expected"),
    [
        ("EUR", "0.333", "3", HU, "1.00"),  # 0.999
        ("JPY", "1.5", "3", HU, "5"),  # 4.5 half up
        ("JPY", "1.5", "3", ROUND_HALF_EVEN, "4"),  # 4.5 to even
        ("TND", "0.1235", "3", HU, "0.371"),  # 0.3705 half up
        ("TND", "0.1235", "3", ROUND_HALF_EVEN, "0.370"),  # 0.3705 to even
    ],
)
def test_per_unit_rounds_once_to_the_currency(
    currency: str, price: str, quantity: str, rounding: str, expected: str
) -> None:
    per_unit = PricePlan("calls", "per_unit", currency, D(price))
    assert str(rate_usage(per_unit, D(quantity), rounding).amount) == expected


def test_rated_unit_price_is_the_effective_average() -> None:
    # 10.80 / 11 = 0.98181818.. -> 0.981818
    assert rate_usage(GRADUATED, D(11), HU) == Rated(D(11), D("0.981818"), D("10.80"))
    # zero quantity: the quoted price of the first tier
    assert rate_usage(GRADUATED, D(0), HU) == Rated(D(0), D("1.00"), D("0.00"))


def test_negative_quantity_is_refused() -> None:
    with pytest.raises(PricingError, match="negative"):
        rate_usage(GRADUATED, D(-1), HU)


def test_float_quantity_is_refused() -> None:
    with pytest.raises(PricingError, match="float"):
        rate_usage(GRADUATED, 1.5, HU)  # type: ignore[arg-type]


def test_rate_usage_refuses_a_recurring_plan() -> None:
    with pytest.raises(PricingError, match="basic"):
        rate_usage(plan(), D(1), HU)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": "weekly"}, "model"),
        ({"currency": "ABC"}, "currency"),
        ({"proration": "daily"}, "proration"),
        ({"unit_price": None}, "unit_price"),
        ({"unit_price": 10.0}, "unit_price"),  # float
        ({"unit_price": D("-1")}, "unit_price"),
        ({"timing": None}, "timing"),
        ({"timing": "later"}, "timing"),
        ({"period_months": 0}, "period_months"),
        ({"tiers": TIERS}, "tiers"),  # a recurring plan takes no tiers
        ({"package_size": D(10)}, "package_size"),
        ({"model": "per_unit"}, "timing"),  # timing only for recurring
        ({"model": "graduated", "timing": None, "unit_price": None}, "tiers"),
        ({"model": "volume", "timing": None,
          "tiers": (Tier(D(20), D(1)), Tier(D(10), D(1)), Tier(None, D(1)))}, "tiers"),
        ({"model": "volume", "timing": None,
          "tiers": (Tier(D(10), D(1)), Tier(D(20), D(1)))}, "tiers"),  # last tier bounded
        ({"model": "volume", "timing": None,
          "tiers": (Tier(None, D(1)), Tier(None, D(1)))}, "tiers"),
        ({"model": "volume", "timing": None,
          "tiers": (Tier(D(10), 1.0), Tier(None, D(1)))}, "tiers[0].unit_price"),  # type: ignore[arg-type]
        ({"model": "volume", "timing": None, "tiers": (Tier(D(0), D(1)), Tier(None, D(1)))},
         "tiers[0].up_to"),
        ({"model": "package", "timing": None}, "package_size"),
        ({"model": "package", "timing": None, "package_size": D(0)}, "package_size"),
    ],
)  # fmt: skip
def test_invalid_plans_name_the_plan_and_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(PricingError) as error:
        plan(**overrides)
    assert str(error.value).startswith(f"price plan 'basic': {field}:")


Q1_2024 = Period(date(2024, 1, 1), date(2024, 4, 1))  # 31 + 29 + 31 = 91 days
APRIL = Period(date(2024, 4, 1), date(2024, 5, 1))  # 30 days


@pytest.mark.parametrize(
    ("overrides", "quantity", "cycle", "active", "cycle_months", "override", "expected"),
    [
        # 10.00/month x 2 x 3 months = 60.00
        ({}, "2", Q1_2024, Q1_2024, 3, None, "60.00"),
        # start Feb 15: 15 (Feb 15..29) + 31 = 46 of 91 days; 60 x 46/91 = 30.3296.. -> 30.33
        ({}, "2", Q1_2024, Period(date(2024, 2, 15), date(2025, 1, 1)), 3, None, "30.33"),
        # stop Feb 15 (exclusive): 31 + 14 = 45 of 91; 60 x 45/91 = 29.6703.. -> 29.67
        ({}, "2", Q1_2024, Period(date(2023, 6, 1), date(2024, 2, 15)), 3, None, "29.67"),
        ({"proration": "full"}, "2", Q1_2024, Period(date(2024, 3, 31), date(2024, 5, 1)), 3,
         None, "60.00"),
        ({"proration": "none"}, "2", Q1_2024, Period(date(2024, 1, 2), date(2024, 5, 1)), 3,
         None, "0.00"),
        ({}, "2", Q1_2024, None, 3, None, "0.00"),
        # 120.00 per 12 months, monthly cycle: 120 / 12 = 10.00
        ({"unit_price": D("120.00"), "period_months": 12}, "1", APRIL, APRIL, 1, None, "10.00"),
        # rounded once: 1.00/12 x 20/30 = 0.0555.. -> 0.06 (rounding 0.08 first would give 0.05)
        ({"unit_price": D("1.00"), "period_months": 12}, "1", APRIL,
         Period(date(2024, 4, 11), date(2024, 6, 1)), 1, None, "0.06"),
        # override 7.50 x 3 x 1 month = 22.50
        ({}, "3", APRIL, APRIL, 1, D("7.50"), "22.50"),
        ({}, "0", APRIL, APRIL, 1, None, "0.00"),
    ],
)  # fmt: skip
def test_recurring_fee(
    overrides: dict[str, Any],
    quantity: str,
    cycle: Period,
    active: Period | None,
    cycle_months: int,
    override: Decimal | None,
    expected: str,
) -> None:
    fee = recurring_fee(plan(**overrides), D(quantity), cycle, active, cycle_months, HU, override)
    assert str(fee.amount) == expected


def test_recurring_fee_unit_price() -> None:
    active = Period(date(2024, 2, 15), date(2025, 1, 1))
    # 30.33 / 2 = 15.165
    assert recurring_fee(plan(), D(2), Q1_2024, active, 3, HU) == Rated(
        D(2), D("15.165000"), D("30.33")
    )
    assert recurring_fee(plan(), D(0), Q1_2024, Q1_2024, 3, HU, D("7.50")).unit_price == D("7.50")


def test_recurring_fee_refuses_other_models_and_bad_cycles() -> None:
    with pytest.raises(PricingError, match="recurring_fee"):
        recurring_fee(GRADUATED, D(1), APRIL, APRIL, 1, HU)
    with pytest.raises(PricingError, match="cycle_months"):
        recurring_fee(plan(), D(1), APRIL, APRIL, 0, HU)
    with pytest.raises(PricingError, match="price_override"):
        recurring_fee(plan(), D(1), APRIL, APRIL, 1, HU, 7.5)  # type: ignore[arg-type]


def test_one_time_fee() -> None:
    setup = PricePlan("setup", "one_time", "EUR", D("49.99"))
    assert one_time_fee(setup, D(2), HU) == Rated(D(2), D("49.990000"), D("99.98"))
    assert one_time_fee(setup, D(2), HU, D("10.00")).amount == D("20.00")
    assert one_time_fee(setup, D(0), HU) == Rated(D(0), D("49.99"), D("0.00"))
    with pytest.raises(PricingError, match="one_time_fee"):
        one_time_fee(GRADUATED, D(1), HU)


quantities = st.decimals(min_value=0, max_value=10**6, places=3)


@given(quantities, quantities)
def test_graduated_price_is_monotonic_in_quantity(a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    for tiers in (TIERS, FLAT_TIERS):
        graduated = PricePlan("g", "graduated", "EUR", None, tiers)
        assert rate_usage(graduated, low, HU).amount <= rate_usage(graduated, high, HU).amount


# The same prices as exact rationals, rounded by round_fraction: the Decimal arithmetic in
# billing.domain.pricing must agree with them to the last digit, for every rounding mode.
prices = st.decimals(min_value=0, max_value=1000, places=6)
exact_quantities = st.decimals(min_value=0, max_value=10**6, places=6)
currencies = st.sampled_from(["EUR", "JPY", "TND"])
roundings = st.sampled_from(sorted(ROUNDING_MODES))


@st.composite
def usage_plans(draw: st.DrawFn) -> PricePlan:
    model = draw(st.sampled_from(["per_unit", "package", "graduated", "volume"]))
    currency = draw(currencies)
    if model in ("per_unit", "package"):
        size = draw(st.decimals(min_value="0.001", max_value=1000, places=3))
        return PricePlan(
            "p", model, currency, draw(prices), package_size=size if model == "package" else None
        )
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**6), max_size=3)))
    fees = st.decimals(min_value=0, max_value=100, places=2)
    tiers = tuple(Tier(D(b).scaleb(-2), draw(prices), draw(fees)) for b in bounds)
    return PricePlan("t", model, currency, None, (*tiers, Tier(None, draw(prices), draw(fees))))


def _exact_usage(plan: PricePlan, quantity: Fraction) -> Fraction:
    if quantity == 0:
        return Fraction(0)
    if plan.model == "graduated":
        total, floor = Fraction(0), Fraction(0)
        for tier in plan.tiers:
            ceiling = quantity if tier.up_to is None else min(quantity, Fraction(tier.up_to))
            if ceiling <= floor:
                break
            total += (ceiling - floor) * Fraction(tier.unit_price) + Fraction(tier.flat_fee)
            floor = ceiling
        return total
    if plan.model == "volume":
        tier = next(t for t in plan.tiers if t.up_to is None or quantity <= Fraction(t.up_to))
        return quantity * Fraction(tier.unit_price) + Fraction(tier.flat_fee)
    assert plan.unit_price is not None
    if plan.model == "package":
        assert plan.package_size is not None
        return -(-quantity // Fraction(plan.package_size)) * Fraction(plan.unit_price)
    return quantity * Fraction(plan.unit_price)


def _exact_rated(
    quantity: Decimal, exact: Fraction, list_price: Decimal, currency: str, rounding: str
) -> Rated:
    amount = round_money(exact, currency, rounding)
    if quantity == 0:
        return Rated(quantity, list_price, amount)
    return Rated(
        quantity, round_fraction(Fraction(amount) / Fraction(quantity), 6, rounding), amount
    )


def _same(got: Rated, expected: Rated) -> bool:
    """Equal values and equal digits (str), as they are stored and printed."""
    return got == expected and str(got) == str(expected)


@given(usage_plans(), exact_quantities, roundings)
def test_rate_usage_is_the_exact_rational_rounded_once(
    plan: PricePlan, quantity: Decimal, rounding: str
) -> None:
    list_price = plan.unit_price if plan.unit_price is not None else plan.tiers[0].unit_price
    exact = _exact_usage(plan, Fraction(quantity))
    expected = _exact_rated(quantity, exact, list_price, plan.currency, rounding)
    assert _same(rate_usage(plan, quantity, rounding), expected)


@st.composite
def cycles(draw: st.DrawFn) -> tuple[Period, Period | None]:
    start = date(2024, 1, 1) + timedelta(days=draw(st.integers(0, 800)))
    cycle = Period(start, start + timedelta(days=draw(st.integers(28, 92))))
    first = draw(st.integers(-10, cycle.days))
    last = draw(st.integers(first + 1, cycle.days + 10))
    active = Period(start + timedelta(days=first), start + timedelta(days=last))
    return cycle, draw(st.sampled_from([active, None]))


@given(
    prices,
    exact_quantities,
    cycles(),
    st.sampled_from(PRORATION_POLICIES),
    st.integers(1, 12),
    st.sampled_from([1, 3, 12]),
    st.sampled_from([None, D("7.333333")]),
    currencies,
    roundings,
)
def test_recurring_and_one_time_fees_are_the_exact_rationals_rounded_once(
    price: Decimal,
    quantity: Decimal,
    periods: tuple[Period, Period | None],
    proration: str,
    period_months: int,
    cycle_months: int,
    override: Decimal | None,
    currency: str,
    rounding: str,
) -> None:
    cycle, active = periods
    recurring = plan(
        unit_price=price, currency=currency, proration=proration, period_months=period_months
    )
    charged = override if override is not None else price
    full = Fraction(charged) * Fraction(quantity) * cycle_months / period_months
    exact = full * proration_factor(active, cycle, proration)
    fee = recurring_fee(recurring, quantity, cycle, active, cycle_months, rounding, override)
    assert _same(fee, _exact_rated(quantity, exact, charged, currency, rounding))

    once = PricePlan("setup", "one_time", currency, price)
    exact = Fraction(charged) * Fraction(quantity)
    fee = one_time_fee(once, quantity, rounding, override)
    assert _same(fee, _exact_rated(quantity, exact, charged, currency, rounding))
