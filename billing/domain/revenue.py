"""Revenue recognition by day (Cn285 RevRec), pure: a line's net split over its service months.

Every invoiced bill line is split over the calendar months of its service period
``[period_start, period_end)``, by day, with largest remainder
(``billing.domain.money.allocate``), so its monthly shares sum to the line's net exactly. A
credit (a negative line) gives negative shares. ``billing.ops.revrec`` stores the shares and
writes the monthly summary journal from them (docs/revrec.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.domain.errors import PeriodError
from billing.domain.money import allocate


@dataclass(frozen=True)
class MonthShare:
    """The part of a line's net recognized in one service month."""

    year: int
    month: int
    days: int
    amount: Decimal


def check_month(year: int, month: int) -> None:
    """Refuse a month that does not exist."""
    if isinstance(year, bool) or isinstance(month, bool) or not 1 <= month <= 12:
        raise PeriodError(f"no such month: {year}-{month}")
    if not 1 <= year <= 9998:
        raise PeriodError(f"no such month: {year}-{month}")


def month_index(year: int, month: int) -> int:
    """A month as one integer, so months compare and subtract (``year * 12 + month - 1``)."""
    return year * 12 + month - 1


def previous_month(day: date) -> tuple[int, int]:
    """The month before the one of ``day`` (the daemon's default: last month)."""
    year, index = divmod(month_index(day.year, day.month) - 1, 12)
    return year, index + 1


def first_of_next_month(day: date) -> date:
    """The first day of the month after the one of ``day``."""
    year, index = divmod(month_index(day.year, day.month) + 1, 12)
    return date(year, index + 1, 1)


def service_months(start: date, end: date) -> list[tuple[int, int, int]]:
    """(year, month, days) of each month that ``[start, end)`` covers.

    A period with ``start == end`` (allowed by the schema, never produced by the schedule)
    counts as the one day ``start``.
    """
    if end < start:
        raise PeriodError(f"period start {start} is after its end {end}")
    if end == start:
        return [(start.year, start.month, 1)]
    months = []
    cursor = start
    while cursor < end:
        boundary = min(first_of_next_month(cursor), end)
        months.append((cursor.year, cursor.month, (boundary - cursor).days))
        cursor = boundary
    return months


def revenue_schedule(net: Decimal, currency: str, start: date, end: date) -> list[MonthShare]:
    """Split ``net`` over the months of ``[start, end)`` by day; the shares sum to ``net``."""
    months = service_months(start, end)
    parts = allocate(net, [Decimal(days) for _, _, days in months], currency)
    return [MonthShare(y, m, d, part) for (y, m, d), part in zip(months, parts, strict=True)]
