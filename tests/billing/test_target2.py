"""The TARGET2 calendar and the SEPA Core collection-date rule (pure: no database)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.direct_debit import (
    DEBIT_HORIZON_DAYS,
    collection_date,
    earliest_collection_date,
    may_send,
)
from billing.domain.errors import PeriodError
from billing.domain.target2 import (
    add_target2_business_days,
    easter_sunday,
    is_target2_business_day,
    next_target2_business_day,
    target2_holidays,
)

# --- the calendar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (1961, date(1961, 4, 2)),
        (2000, date(2000, 4, 23)),
        (2019, date(2019, 4, 21)),
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2038, date(2038, 4, 25)),
    ],
)
def test_easter_is_the_gregorian_one(year, easter):
    assert easter_sunday(year) == easter
    assert easter.weekday() == 6


def test_easter_2027_closes_good_friday_and_easter_monday():
    assert easter_sunday(2027) == date(2027, 3, 28)
    assert not is_target2_business_day(date(2027, 3, 26))  # Good Friday
    assert not is_target2_business_day(date(2027, 3, 29))  # Easter Monday
    assert is_target2_business_day(date(2027, 3, 25))  # Maundy Thursday: open
    assert is_target2_business_day(date(2027, 3, 30))


def test_fixed_closing_days_and_weekends():
    assert date(2027, 5, 1).weekday() == 5  # 1 May 2027 is a Saturday: closed anyway
    assert not is_target2_business_day(date(2027, 5, 1))
    assert not is_target2_business_day(date(2026, 5, 1))  # a Friday, closed as Labour Day
    assert not is_target2_business_day(date(2025, 12, 25))  # Thursday
    assert not is_target2_business_day(date(2025, 12, 26))  # Friday
    assert is_target2_business_day(date(2025, 12, 24))
    assert not is_target2_business_day(date(2026, 1, 1))  # Thursday
    assert is_target2_business_day(date(2026, 1, 2))
    assert not is_target2_business_day(date(2027, 12, 25))  # Saturday
    assert not is_target2_business_day(date(2027, 12, 26))  # Sunday
    assert not is_target2_business_day(date(2027, 2, 6))  # Saturday
    assert not is_target2_business_day(date(2027, 2, 7))  # Sunday
    # Other public holidays do not close TARGET2 (Ascension, 14 July, 15 August, ...).
    assert is_target2_business_day(date(2027, 5, 6))  # Ascension Day 2027
    assert is_target2_business_day(date(2027, 7, 14))
    assert target2_holidays(2027) == {
        date(2027, 1, 1),
        date(2027, 3, 26),
        date(2027, 3, 29),
        date(2027, 5, 1),
        date(2027, 12, 25),
        date(2027, 12, 26),
    }


def test_next_business_day_is_the_day_itself_when_open():
    assert next_target2_business_day(date(2027, 3, 25)) == date(2027, 3, 25)
    assert next_target2_business_day(date(2027, 3, 26)) == date(2027, 3, 30)  # Easter
    assert next_target2_business_day(date(2025, 12, 25)) == date(2025, 12, 29)
    assert next_target2_business_day(date(2027, 1, 1)) == date(2027, 1, 4)  # Fri -> Mon


def test_add_business_days():
    assert add_target2_business_days(date(2027, 3, 25), 1) == date(2027, 3, 30)
    assert add_target2_business_days(date(2027, 3, 24), 2) == date(2027, 3, 30)
    assert add_target2_business_days(date(2027, 2, 5), 1) == date(2027, 2, 8)  # Fri -> Mon
    assert add_target2_business_days(date(2027, 2, 6), 1) == date(2027, 2, 8)  # Sat -> Mon
    assert add_target2_business_days(date(2025, 12, 24), 1) == date(2025, 12, 29)
    assert add_target2_business_days(date(2025, 12, 31), 1) == date(2026, 1, 2)
    assert add_target2_business_days(date(2027, 3, 26), 0) == date(2027, 3, 30)
    assert add_target2_business_days(date(2027, 2, 1), 5) == date(2027, 2, 8)
    with pytest.raises(PeriodError, match="zero or more"):
        add_target2_business_days(date(2027, 2, 1), -1)


@given(st.dates(date(1990, 1, 1), date(2100, 12, 31)), st.integers(0, 40))
def test_added_days_are_open_and_counted(start, n):
    end = add_target2_business_days(start, n)
    assert is_target2_business_day(end)
    days = [start + timedelta(days=i) for i in range(1, (end - start).days + 1)]
    assert sum(map(is_target2_business_day, days)) == max(n, 1) or (
        n == 0 and end == next_target2_business_day(start)
    )


# --- the collection date ------------------------------------------------------------------


def test_collection_date_is_the_due_date_on_a_business_day():
    as_of = date(2027, 2, 1)  # a Monday
    assert collection_date(date(2027, 3, 3), as_of, 2) == date(2027, 3, 3)
    assert collection_date(date(2027, 3, 20), as_of, 2) == date(2027, 3, 22)  # Sat -> Mon
    assert collection_date(date(2027, 3, 26), as_of, 2) == date(2027, 3, 30)  # Good Friday


def test_collection_date_is_never_earlier_than_the_rulebook_allows():
    # D-1: a file sent on Thursday 25 March 2027 reaches the debtor bank that day; the next
    # TARGET2 day is Tuesday 30 March (Good Friday and Easter Monday are closed).
    thursday = date(2027, 3, 25)
    assert earliest_collection_date(thursday, 0) == date(2027, 3, 30)
    assert earliest_collection_date(thursday, 1) == date(2027, 3, 30)
    assert collection_date(date(2027, 3, 26), thursday, 0) == date(2027, 3, 30)
    assert collection_date(thursday, thursday, 0) == date(2027, 3, 30)  # due today
    assert collection_date(date(2027, 1, 15), thursday, 1) == date(2027, 3, 30)  # overdue
    # The creditor's own lead time, when longer, counts TARGET2 days too.
    assert collection_date(date(2027, 3, 26), thursday, 2) == date(2027, 3, 31)
    assert collection_date(date(2027, 3, 26), thursday, 5) == date(2027, 4, 5)  # 30,31,1,2,5
    # A file made on a closing day goes out on the next open day.
    assert earliest_collection_date(date(2027, 2, 6), 1) == date(2027, 2, 9)  # Sat -> Tue
    with pytest.raises(PeriodError, match="lead days"):
        collection_date(thursday, thursday, -1)


@given(
    st.dates(date(2000, 1, 1), date(2090, 12, 31)),
    st.integers(-30, 60),
    st.integers(0, 10),
)
def test_collection_date_rule_holds(as_of, due_in, lead_days):
    due = as_of + timedelta(days=due_in)
    on = collection_date(due, as_of, lead_days)
    assert is_target2_business_day(on)
    assert on >= due and on > as_of
    assert on >= add_target2_business_days(next_target2_business_day(as_of), max(1, lead_days))
    # Neither later than needed: the due date's business day, or the earliest allowed.
    assert on in {next_target2_business_day(due), earliest_collection_date(as_of, lead_days)}


def test_horizon():
    as_of = date(2027, 2, 1)
    assert DEBIT_HORIZON_DAYS == 14
    assert may_send(date(2027, 2, 15), as_of)  # the default: 14 calendar days
    assert not may_send(date(2027, 2, 16), as_of)
    assert may_send(date(2027, 2, 15), as_of, 14)
    assert not may_send(date(2027, 2, 16), as_of, 14)
    assert may_send(date(2027, 4, 2), as_of, 60)  # a bank that holds files longer
    with pytest.raises(PeriodError):
        may_send(date(2027, 2, 2), as_of, -1)


def test_horizon_never_holds_back_the_earliest_date():
    """A lead time longer than the horizon: the earliest date allowed is still sendable (else
    an overdue bill would wait for ever), and nothing later than it beyond the horizon."""
    # Thursday 25 March 2027, 10 TARGET2 days (Good Friday and Easter Monday closed): 12 April.
    as_of = date(2027, 3, 25)
    earliest = earliest_collection_date(as_of, 10)
    assert earliest == date(2027, 4, 12) and earliest > as_of + timedelta(days=14)
    assert may_send(earliest, as_of, 14, 10)
    assert not may_send(earliest + timedelta(days=1), as_of, 14, 10)
    assert may_send(earliest, as_of, 0, 10)
