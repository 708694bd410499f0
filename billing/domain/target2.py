"""The TARGET2 calendar: the days on which euro interbank payments (and SEPA debits) settle.

TARGET2 (T2 since March 2023) is closed on Saturdays, Sundays and six holidays, as published by
the ECB ("TARGET2 closing days", unchanged since 2002): 1 January, Good Friday, Easter Monday,
1 May (Labour Day), 25 December and 26 December. Easter is the Gregorian (Western) one.

Pure: dates in, dates out; no clock.
"""

from __future__ import annotations

from datetime import date, timedelta

from billing.domain.errors import PeriodError

_FIXED_HOLIDAYS = {(1, 1), (5, 1), (12, 25), (12, 26)}


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday of ``year`` (the anonymous Gregorian computus, Meeus/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def target2_holidays(year: int) -> frozenset[date]:
    """The TARGET2 closing days of ``year`` that are not weekends by definition."""
    easter = easter_sunday(year)
    fixed = {date(year, month, day) for month, day in _FIXED_HOLIDAYS}
    return frozenset(fixed | {easter - timedelta(days=2), easter + timedelta(days=1)})


def is_target2_business_day(d: date) -> bool:
    """Whether TARGET2 is open on ``d``: not a Saturday, a Sunday or a TARGET2 holiday."""
    return d.weekday() < 5 and d not in target2_holidays(d.year)


def next_target2_business_day(d: date) -> date:
    """``d`` itself if TARGET2 is open on it, else the first open day after it."""
    while not is_target2_business_day(d):
        d += timedelta(days=1)
    return d


def add_target2_business_days(d: date, n: int) -> date:
    """The ``n``-th TARGET2 business day after ``d`` (``d`` itself need not be open).

    ``n == 0`` gives ``next_target2_business_day(d)``. A Friday plus 1 is the Monday (if open);
    Saturday plus 1 is Monday too: the days counted are the open days after ``d``.
    """
    if n < 0:
        raise PeriodError(f"business days to add must be zero or more, not {n}")
    if n == 0:
        return next_target2_business_day(d)
    for _ in range(n):
        d = next_target2_business_day(d + timedelta(days=1))
    return d
