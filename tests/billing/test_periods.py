"""Tests for billing.domain.periods: bill dates, cycles in both alignments, proration."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.errors import PeriodError, PricingError
from billing.domain.periods import (
    CYCLE_MONTHS,
    Period,
    add_cycles,
    bill_date_in,
    cycle_ending,
    first_bill_date,
    prorate,
    proration_fraction,
)

D = Decimal


def test_cycle_months() -> None:
    assert CYCLE_MONTHS == {"monthly": 1, "quarterly": 3, "yearly": 12}


def test_period_days_overlap_and_contains() -> None:
    april = Period(date(2024, 4, 1), date(2024, 5, 1))
    assert april.days == 30
    assert april.contains(date(2024, 4, 1)) and april.contains(date(2024, 4, 30))
    assert not april.contains(date(2024, 5, 1))  # end is exclusive
    late = Period(date(2024, 4, 20), date(2024, 6, 1))
    assert april.overlap(late) == Period(date(2024, 4, 20), date(2024, 5, 1))
    assert april.overlap(Period(date(2024, 5, 1), date(2024, 6, 1))) is None  # touching only


@pytest.mark.parametrize(
    ("start", "end"), [(date(2024, 1, 2), date(2024, 1, 1)), (date(2024, 1, 1), date(2024, 1, 1))]
)
def test_period_must_not_be_empty(start: date, end: date) -> None:
    with pytest.raises(PeriodError):
        Period(start, end)


@pytest.mark.parametrize(
    ("year", "month", "billing_day", "expected"),
    [
        (2024, 2, 31, date(2024, 2, 29)),  # leap year
        (2023, 2, 31, date(2023, 2, 28)),  # non-leap year
        (2023, 2, 29, date(2023, 2, 28)),
        (2024, 2, 28, date(2024, 2, 28)),
        (2024, 4, 31, date(2024, 4, 30)),
        (2024, 1, 31, date(2024, 1, 31)),
        (2024, 12, 1, date(2024, 12, 1)),
    ],
)
def test_bill_date_in(year: int, month: int, billing_day: int, expected: date) -> None:
    assert bill_date_in(year, month, billing_day) == expected


@pytest.mark.parametrize("billing_day", [0, 32, -1])
def test_billing_day_outside_1_to_31_is_refused(billing_day: int) -> None:
    with pytest.raises(PeriodError, match="billing day"):
        bill_date_in(2024, 1, billing_day)


@pytest.mark.parametrize(
    ("bill_date", "n", "billing_day", "cycle", "expected"),
    [
        (date(2023, 1, 31), 1, 31, "monthly", date(2023, 2, 28)),
        (date(2023, 2, 28), 1, 31, "monthly", date(2023, 3, 31)),  # never chain the clamp
        (date(2024, 1, 31), 1, 31, "monthly", date(2024, 2, 29)),
        (date(2024, 3, 31), -1, 31, "monthly", date(2024, 2, 29)),
        (date(2024, 1, 31), 13, 31, "monthly", date(2025, 2, 28)),
        (date(2024, 12, 15), 1, 15, "monthly", date(2025, 1, 15)),  # year roll
        (date(2025, 1, 15), -1, 15, "monthly", date(2024, 12, 15)),
        (date(2023, 11, 30), 1, 30, "quarterly", date(2024, 2, 29)),
        (date(2024, 2, 29), 1, 30, "quarterly", date(2024, 5, 30)),
        (date(2024, 2, 29), -4, 31, "quarterly", date(2023, 2, 28)),
        (date(2024, 2, 29), 1, 29, "yearly", date(2025, 2, 28)),
        (date(2024, 2, 29), 4, 29, "yearly", date(2028, 2, 29)),
        (date(2024, 5, 1), 0, 1, "yearly", date(2024, 5, 1)),
    ],
)
def test_add_cycles(bill_date: date, n: int, billing_day: int, cycle: str, expected: date) -> None:
    assert add_cycles(bill_date, n, billing_day, cycle) == expected


def test_add_cycles_refuses_a_date_that_is_not_a_bill_date() -> None:
    with pytest.raises(PeriodError, match="not a bill date"):
        add_cycles(date(2024, 3, 15), 1, 31, "monthly")


def test_unknown_cycle_is_refused() -> None:
    with pytest.raises(PeriodError, match="weekly"):
        add_cycles(date(2024, 3, 1), 1, 1, "weekly")


@pytest.mark.parametrize(
    ("start", "billing_day", "cycle", "alignment", "expected"),
    [
        # monthly: the next billing-day date strictly after start
        (date(2024, 1, 15), 1, "monthly", "anniversary", date(2024, 2, 1)),
        (date(2024, 1, 15), 20, "monthly", "anniversary", date(2024, 1, 20)),
        (date(2024, 1, 20), 20, "monthly", "anniversary", date(2024, 2, 20)),  # strictly after
        (date(2024, 1, 31), 31, "monthly", "anniversary", date(2024, 2, 29)),
        (date(2023, 1, 31), 31, "monthly", "anniversary", date(2023, 2, 28)),
        (date(2023, 1, 30), 31, "monthly", "anniversary", date(2023, 1, 31)),
        (date(2024, 1, 15), 1, "monthly", "calendar", date(2024, 2, 1)),
        # quarterly anniversary: boundaries every 3 months from the start month (Feb, May, ...)
        (date(2024, 2, 10), 1, "quarterly", "anniversary", date(2024, 5, 1)),
        (date(2024, 2, 10), 15, "quarterly", "anniversary", date(2024, 2, 15)),
        (date(2024, 2, 15), 15, "quarterly", "anniversary", date(2024, 5, 15)),
        (date(2023, 11, 30), 31, "quarterly", "anniversary", date(2024, 2, 29)),
        # quarterly calendar: Jan/Apr/Jul/Oct
        (date(2024, 2, 10), 1, "quarterly", "calendar", date(2024, 4, 1)),
        (date(2024, 1, 1), 1, "quarterly", "calendar", date(2024, 4, 1)),
        (date(2023, 12, 31), 1, "quarterly", "calendar", date(2024, 1, 1)),
        (date(2024, 10, 5), 10, "quarterly", "calendar", date(2024, 10, 10)),
        (date(2024, 11, 5), 31, "quarterly", "calendar", date(2025, 1, 31)),
        # yearly anniversary: the start month each year
        (date(2024, 3, 10), 1, "yearly", "anniversary", date(2025, 3, 1)),
        (date(2024, 3, 10), 20, "yearly", "anniversary", date(2024, 3, 20)),
        (date(2024, 2, 29), 29, "yearly", "anniversary", date(2025, 2, 28)),
        # yearly calendar: January
        (date(2024, 3, 10), 1, "yearly", "calendar", date(2025, 1, 1)),
        (date(2024, 1, 1), 5, "yearly", "calendar", date(2024, 1, 5)),
        (date(2024, 1, 5), 5, "yearly", "calendar", date(2025, 1, 5)),
    ],
)
def test_first_bill_date(
    start: date, billing_day: int, cycle: str, alignment: str, expected: date
) -> None:
    assert first_bill_date(start, billing_day, cycle, alignment) == expected


def test_first_bill_date_refuses_an_unknown_alignment() -> None:
    with pytest.raises(PeriodError, match="fiscal"):
        first_bill_date(date(2024, 1, 1), 1, "monthly", "fiscal")


@pytest.mark.parametrize(
    ("bill_date", "billing_day", "cycle", "start", "days"),
    [
        (date(2024, 3, 31), 31, "monthly", date(2024, 2, 29), 31),  # Feb 29 .. Mar 30
        (date(2023, 3, 31), 31, "monthly", date(2023, 2, 28), 31),
        (date(2024, 3, 1), 1, "monthly", date(2024, 2, 1), 29),
        (date(2024, 5, 1), 1, "quarterly", date(2024, 2, 1), 90),  # 29 + 31 + 30
        (date(2025, 1, 1), 1, "yearly", date(2024, 1, 1), 366),
    ],
)
def test_cycle_ending(
    bill_date: date, billing_day: int, cycle: str, start: date, days: int
) -> None:
    cycle_period = cycle_ending(bill_date, billing_day, cycle)
    assert cycle_period == Period(start, bill_date)
    assert cycle_period.days == days


APRIL = Period(date(2024, 4, 1), date(2024, 5, 1))  # 30 days
FEB_2024 = Period(date(2024, 2, 1), date(2024, 3, 1))  # 29 days


@pytest.mark.parametrize(
    ("amount", "part", "whole", "currency", "policy", "rounding", "expected"),
    [
        # mid-cycle start on Apr 11: 20 of 30 days, 30.00 x 20/30 = 20.00
        (D("30.00"), Period(date(2024, 4, 11), date(2024, 6, 1)), APRIL, "EUR", "by_day",
         ROUND_HALF_UP, "20.00"),
        # mid-cycle stop on Feb 15 (exclusive): 14 of 29 days, 10 x 14/29 = 4.8275.. -> 4.83
        (D("10.00"), Period(date(2024, 1, 1), date(2024, 2, 15)), FEB_2024, "EUR", "by_day",
         ROUND_HALF_UP, "4.83"),
        (D("1000"), Period(date(2024, 1, 1), date(2024, 2, 15)), FEB_2024, "JPY", "by_day",
         ROUND_HALF_UP, "483"),  # 1000 x 14/29 = 482.758..
        (D("10.000"), Period(date(2024, 1, 1), date(2024, 2, 15)), FEB_2024, "TND", "by_day",
         ROUND_HALF_UP, "4.828"),  # 4.827586..
        # 0.05 x 15/30 = 0.025: the rounding mode decides
        (D("0.05"), Period(date(2024, 4, 16), date(2024, 5, 1)), APRIL, "EUR", "by_day",
         ROUND_HALF_UP, "0.03"),
        (D("0.05"), Period(date(2024, 4, 16), date(2024, 5, 1)), APRIL, "EUR", "by_day",
         ROUND_HALF_EVEN, "0.02"),
        (D("0.05"), Period(date(2024, 4, 16), date(2024, 5, 1)), APRIL, "EUR", "by_day",
         ROUND_DOWN, "0.02"),
        (D("30.00"), APRIL, APRIL, "EUR", "by_day", ROUND_HALF_UP, "30.00"),
        (D("30.00"), None, APRIL, "EUR", "by_day", ROUND_HALF_UP, "0.00"),
        (D("30.00"), Period(date(2024, 5, 1), date(2024, 6, 1)), APRIL, "EUR", "by_day",
         ROUND_HALF_UP, "0.00"),  # no overlap
        # full: any overlap charges the whole cycle
        (D("30.00"), Period(date(2024, 4, 30), date(2024, 6, 1)), APRIL, "EUR", "full",
         ROUND_HALF_UP, "30.00"),
        (D("30.00"), Period(date(2024, 5, 1), date(2024, 6, 1)), APRIL, "EUR", "full",
         ROUND_HALF_UP, "0.00"),
        # none: only a part covering the whole cycle is charged
        (D("30.00"), Period(date(2024, 4, 2), date(2024, 6, 1)), APRIL, "EUR", "none",
         ROUND_HALF_UP, "0.00"),
        (D("30.00"), Period(date(2024, 3, 1), date(2024, 6, 1)), APRIL, "EUR", "none",
         ROUND_HALF_UP, "30.00"),
        (D("-30.00"), Period(date(2024, 4, 11), date(2024, 6, 1)), APRIL, "EUR", "by_day",
         ROUND_HALF_UP, "-20.00"),  # credits prorate symmetrically
    ],
)  # fmt: skip
def test_prorate(
    amount: Decimal,
    part: Period | None,
    whole: Period,
    currency: str,
    policy: str,
    rounding: str,
    expected: str,
) -> None:
    assert str(prorate(amount, part, whole, currency, policy, rounding)) == expected


def test_prorate_refuses_an_unknown_policy() -> None:
    with pytest.raises(PricingError, match="weekly"):
        prorate(D("1.00"), APRIL, APRIL, "EUR", "weekly", ROUND_HALF_UP)


def test_proration_fraction() -> None:
    assert proration_fraction(Period(date(2024, 4, 11), date(2024, 4, 21)), APRIL) == Fraction(1, 3)
    assert proration_fraction(None, APRIL) == 0
    assert proration_fraction(Period(date(2024, 1, 1), date(2025, 1, 1)), APRIL) == 1


dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@st.composite
def periods(draw: st.DrawFn) -> Period:
    """Draw a non-empty period of up to ~3 years."""
    start = draw(dates)
    return Period(start, start + timedelta(days=draw(st.integers(1, 1100))))


@given(periods(), periods(), st.decimals(min_value=0, max_value=10**9, places=2))
def test_proration_stays_within_zero_and_the_full_amount(
    part: Period, whole: Period, amount: Decimal
) -> None:
    fraction = proration_fraction(part, whole)
    assert 0 <= fraction <= 1
    prorated = prorate(amount, part, whole, "EUR", "by_day", ROUND_HALF_UP)
    assert D(0) <= prorated <= amount


@given(
    st.integers(2000, 2100),
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(-40, 40),
    st.sampled_from(sorted(CYCLE_MONTHS)),
)
def test_add_cycles_round_trips_on_bill_dates(
    year: int, month: int, billing_day: int, n: int, cycle: str
) -> None:
    bill_date = bill_date_in(year, month, billing_day)
    moved = add_cycles(bill_date, n, billing_day, cycle)
    assert add_cycles(moved, -n, billing_day, cycle) == bill_date


@given(
    dates,
    st.integers(1, 31),
    st.sampled_from(sorted(CYCLE_MONTHS)),
    st.sampled_from(["anniversary", "calendar"]),
)
def test_first_bill_date_is_a_bill_date_within_one_cycle_after_start(
    start: date, billing_day: int, cycle: str, alignment: str
) -> None:
    first = first_bill_date(start, billing_day, cycle, alignment)
    assert first > start
    assert first == bill_date_in(first.year, first.month, billing_day)
    assert add_cycles(first, -1, billing_day, cycle) <= start
