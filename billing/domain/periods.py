"""Billing periods and cycles: bill dates on a billing day, cycle arithmetic and proration.

A period is ``[start, end)``: the end date is exclusive, so ``days`` is ``end - start``.
A bill date is the billing day (1..31) of its month, or the month's last day when the
month is shorter (billing day 31 bills on Feb 28/29, Apr 30, ...).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from billing.domain.enums import Cycle, Proration
from billing.domain.errors import PeriodError, PricingError
from billing.domain.money import round_money, to_decimal

CYCLE_MONTHS = {Cycle.MONTHLY.value: 1, Cycle.QUARTERLY.value: 3, Cycle.YEARLY.value: 12}
ALIGNMENTS = ("anniversary", "calendar")
PRORATION_POLICIES = (Proration.BY_DAY.value, Proration.FULL.value, Proration.NONE.value)


@dataclass(frozen=True)
class Period:
    """A half-open date range ``[start, end)`` with ``start < end``."""

    start: date
    end: date

    def __post_init__(self) -> None:
        """Refuse empty or reversed periods."""
        if not self.start < self.end:
            raise PeriodError(f"period start {self.start} must be before its end {self.end}")

    @property
    def days(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days

    def overlap(self, other: Period) -> Period | None:
        """Return the days both periods share, or ``None`` when they share none."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Period(start, end) if start < end else None

    def contains(self, day: date) -> bool:
        """Tell whether ``day`` falls in ``[start, end)``."""
        return self.start <= day < self.end


def cycle_months(cycle: str) -> int:
    """Return the length in months of a billing cycle name."""
    try:
        return CYCLE_MONTHS[cycle]
    except KeyError:
        known = sorted(CYCLE_MONTHS)
        raise PeriodError(f"unknown billing cycle {cycle!r}; use one of {known}") from None


def bill_date_in(year: int, month: int, billing_day: int) -> date:
    """Return the bill date of a month: the billing day, or the last day of a shorter month."""
    if isinstance(billing_day, bool) or not 1 <= billing_day <= 31:
        raise PeriodError(f"billing day must be within 1..31, got {billing_day!r}")
    if not 1 <= month <= 12 or not 1 <= year <= 9999:
        raise PeriodError(f"no such month: {year}-{month}")
    return date(year, month, min(billing_day, calendar.monthrange(year, month)[1]))


def is_bill_date(day: date, billing_day: int) -> bool:
    """Tell whether ``day`` is the bill date of its month for ``billing_day``."""
    return day == bill_date_in(day.year, day.month, billing_day)


def add_cycles(bill_date: date, n: int, billing_day: int, cycle: str) -> date:
    """Move a bill date by ``n`` cycles (``n`` may be negative), recomputed from the billing day."""
    if not is_bill_date(bill_date, billing_day):
        raise PeriodError(f"{bill_date} is not a bill date for billing day {billing_day}")
    return _bill_date_after_months(bill_date, n * cycle_months(cycle), billing_day)


def _bill_date_after_months(day: date, months: int, billing_day: int) -> date:
    """Return the bill date in the month ``months`` after (or before) the month of ``day``."""
    year, month_index = divmod(day.year * 12 + day.month - 1 + months, 12)
    return bill_date_in(year, month_index + 1, billing_day)


def first_bill_date(
    start: date, billing_day: int, cycle: str, alignment: str = "anniversary"
) -> date:
    """Return the first bill date strictly after ``start`` that ends a cycle.

    The candidates are the bill dates (see ``bill_date_in``) of the boundary months, and the
    first candidate ``> start`` wins. Boundary months are every ``CYCLE_MONTHS[cycle]``-th
    month counted from an anchor month, the anchor month itself included:

    - ``"anniversary"``: the anchor is ``start``'s month. Quarterly from Feb 10 with billing
      day 1 bills May 1, Aug 1, ...; with billing day 15 it bills Feb 15 (a short first cycle),
      then May 15, ... Monthly is simply the next billing-day date after ``start``.
    - ``"calendar"``: the anchor is January: quarterly bills in Jan/Apr/Jul/Oct, yearly in
      January, monthly every month (the same as anniversary).
    """
    if alignment not in ALIGNMENTS:
        raise PeriodError(f"unknown alignment {alignment!r}; use one of {list(ALIGNMENTS)}")
    months = cycle_months(cycle)
    anchor = start.month if alignment == "anniversary" else 1
    first = (anchor - start.month) % months
    candidate = _bill_date_after_months(start, first, billing_day)
    if candidate > start:
        return candidate
    return _bill_date_after_months(start, first + months, billing_day)


def cycle_ending(bill_date: date, billing_day: int, cycle: str) -> Period:
    """Return the cycle that a bill date closes: ``[bill_date - 1 cycle, bill_date)``."""
    return Period(add_cycles(bill_date, -1, billing_day, cycle), bill_date)


def proration_fraction(part: Period | None, whole: Period) -> Fraction:
    """Return the share of ``whole`` covered by ``part``, in days, within [0, 1]."""
    shared = part.overlap(whole) if part is not None else None
    return Fraction(shared.days, whole.days) if shared is not None else Fraction(0)


def proration_factor(part: Period | None, whole: Period, policy: str) -> Fraction:
    """Return the factor a policy applies: by_day share, full (any overlap) or none (all)."""
    share = proration_fraction(part, whole)
    if policy == Proration.BY_DAY:
        return share
    if policy == Proration.FULL:
        return Fraction(1) if share > 0 else Fraction(0)
    if policy == Proration.NONE:
        return Fraction(1) if share == 1 else Fraction(0)
    raise PricingError(f"unknown proration policy {policy!r}; use one of {PRORATION_POLICIES}")


def prorate(
    amount: Decimal, part: Period | None, whole: Period, currency: str, policy: str, rounding: str
) -> Decimal:
    """Return ``amount`` for the ``part`` of ``whole`` under a policy, rounded once."""
    factor = proration_factor(part, whole, policy)
    return round_money(Fraction(to_decimal(amount)) * factor, currency, rounding)
