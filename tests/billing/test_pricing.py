"""Tests for billing.pricing: plan validation, usage rating, cycle and one-time fees."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import PricingError
from billing.periods import Period
from billing.pricing import PricePlan, Rated, Tier, one_time_fee, rate_usage, recurring_fee

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
