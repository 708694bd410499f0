"""Late usage: usage that arrives for a cycle already billed (pure; ``billing.ops.rating`` runs it).

A usage record is *late* when its event falls before the cut-off of a cycle its bill unit has
already closed: before midnight of the unit's last bill date (``is_late``). Bill day used to
rate it into the next cycle's charge, priced at that cycle's tiers; Kill Bill drops usage
older than two periods without a word. Here, per price plan (``late_usage_days``, imported
with the catalogue, default ``DEFAULT_LATE_USAGE_DAYS``):

- **Within the window** (its event at most ``late_usage_days`` days before the bill date that
  takes it), it is rated on that bill as a *delta* of its own cycle: the price of the cycle's
  whole quantity (what was billed for it plus the late quantity) less what was billed for it
  (``delta``). A tiered or volume plan prices the late calls at the tiers the cycle reached,
  not from its first tier. The delta is a charge ``lat:{item}:{cycle bill date}:{bill date}``
  whose period is the original cycle (``original_cycle``) and which names the usage charge it
  follows (``corrects_charge_id``): its line says ``corrects invoice ...`` as a correction's
  does (``billing.domain.corrections``).
- **Beyond the window**, it is *held*: status ``held`` with its reason (``held_reason``),
  listed by ``billing issues``, counted by ``billing status`` and by the run that held it.
  Nothing is dropped.

The window is counted in days from the event to the bill date of the bill that would carry the
delta, the run's own date, never the clock.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from billing.domain.money import LINE_ROUNDING
from billing.domain.periods import Period, add_cycles
from billing.domain.pricing import PricePlan, Rated, _rated, rate_usage

DEFAULT_LATE_USAGE_DAYS = 90
"""A price plan's lookback window when its catalogue entry sets none: about three monthly
cycles, so usage of the last two closed months is still billed (Kill Bill drops it)."""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def is_late(occurred_at: datetime, last_bill_date: date | None) -> bool:
    """Whether the event falls in a cycle its unit has already closed (billed, or closed with
    nothing to bill): before midnight of the unit's last bill date."""
    return last_bill_date is not None and occurred_at < _midnight(last_bill_date)


def age_days(occurred_at: datetime, bill_date: date) -> int:
    """Whole days from the event's day to the bill date."""
    return (bill_date - occurred_at.date()).days


def within_window(occurred_at: datetime, bill_date: date, late_usage_days: int) -> bool:
    """Whether late usage is still billed on the bill dated ``bill_date``: its event is at most
    ``late_usage_days`` days before it (0: late usage is always held)."""
    return age_days(occurred_at, bill_date) <= late_usage_days


def original_cycle(day: date, last_bill_date: date, billing_day: int, cycle: str) -> Period:
    """The cycle ``[start, bill date)`` of the unit's grid that holds ``day``, a day before
    ``last_bill_date`` (the grid is the unit's: its billing day and cycle length)."""
    end = last_bill_date
    start = add_cycles(end, -1, billing_day, cycle)
    while start > day:
        end, start = start, add_cycles(start, -1, billing_day, cycle)
    return Period(start, end)


def delta(
    plan: PricePlan, billed_quantity: Decimal, billed_amount: Decimal, late_quantity: Decimal
) -> Rated:
    """The late quantity's charge: the price of the cycle's whole quantity (``billed_quantity``
    plus ``late_quantity``) less ``billed_amount``, what its charges already billed. Each price
    is rounded once, as a usage charge is (``LINE_ROUNDING``); the unit price is the average
    the line prints when no tier sub-lines give its amount."""
    whole = rate_usage(plan, billed_quantity + late_quantity, LINE_ROUNDING)
    amount = whole.amount - billed_amount
    list_price = plan.unit_price if plan.unit_price is not None else plan.tiers[0].unit_price
    return _rated(plan, late_quantity, amount, list_price, LINE_ROUNDING)


def held_reason(
    occurred_at: datetime, bill_date: date, plan_code: str, late_usage_days: int
) -> str:
    """Why a late record is held, as ``billing issues`` shows it."""
    return (
        f"late usage of {occurred_at.date().isoformat()} is {age_days(occurred_at, bill_date)} "
        f"days old at the bill of {bill_date.isoformat()}; price plan {plan_code} bills late "
        f"usage up to {late_usage_days} days (late_usage_days)"
    )
