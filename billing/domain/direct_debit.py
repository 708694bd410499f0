"""SEPA Core direct debits: which date a debit is collected on, and when it may be sent.

The rules (EPC016-09 SEPA Core Direct Debit Scheme Rulebook, the versions since November 2016,
section 4.3 "time cycle"; docs/payments.md names each):

- A collection is due on a TARGET2 business day: a due date that falls on a closing day moves
  to the next TARGET2 business day (rulebook 4.3.2; the "Inter-Bank Business Day" is a
  TARGET2 day, see ``billing.domain.target2``).
- The collection must reach the debtor bank at the latest 1 TARGET2 business day before the
  due date (D-1), for FRST, RCUR, OOFF and FNAL alike (since rulebook v9, November 2016; before
  it was D-5 for first and D-2 for recurrent collections). A file sent on ``as_of`` therefore
  asks for a collection date of at least 1 TARGET2 business day after the day it is sent
  (the first open day on or after ``as_of``).
- The creditor's own lead time with its bank (``lead_days``, TARGET2 business days) applies
  when it is longer than the rulebook's.
- A collection may be presented at the earliest 14 calendar days before its due date
  (rulebook 4.3.2, time cycle): ``DEBIT_HORIZON_DAYS``, the default horizon of a file. A debit
  whose collection date is the earliest a file sent that day may ask for is always sendable
  (waiting would only push it later), whatever the horizon.

Pure: dates in, dates out; ``as_of`` is the day the file is sent, never the clock.
"""

from __future__ import annotations

from datetime import date, timedelta

from billing.domain.errors import PeriodError
from billing.domain.target2 import add_target2_business_days, next_target2_business_day

RULEBOOK_LEAD_DAYS = 1
"""D-1: TARGET2 business days between the collection reaching the debtor bank and its due date."""

DEFAULT_LEAD_DAYS = 2
"""The creditor's own lead time with its bank, TARGET2 business days, unless configured."""

DEBIT_HORIZON_DAYS = 14
"""A collection is presented at most 14 calendar days before its due date (EPC SDD Core
rulebook, chapter 4 time cycle, 4.3.2): the default of ``PaymentConfig.debit_horizon_days``."""


def earliest_collection_date(as_of: date, lead_days: int) -> date:
    """The first collection date a file sent on ``as_of`` may ask for.

    ``max(1, lead_days)`` TARGET2 business days after the first open day on or after ``as_of``.
    """
    if lead_days < 0:
        raise PeriodError(f"debit lead days must be zero or more, not {lead_days}")
    sent = next_target2_business_day(as_of)
    return add_target2_business_days(sent, max(RULEBOOK_LEAD_DAYS, lead_days))


def collection_date(due_date: date, as_of: date, lead_days: int) -> date:
    """The ReqdColltnDt of a debit for an invoice due on ``due_date``, in a file sent on ``as_of``.

    The due date moved to the next TARGET2 business day, but never earlier than
    ``earliest_collection_date(as_of, lead_days)`` (an invoice already due, or due too soon, is
    collected on the earliest date allowed). Always a TARGET2 business day.
    """
    return max(next_target2_business_day(due_date), earliest_collection_date(as_of, lead_days))


def may_send(
    collection_on: date,
    as_of: date,
    horizon_days: int = DEBIT_HORIZON_DAYS,
    lead_days: int = DEFAULT_LEAD_DAYS,
) -> bool:
    """Whether a debit collected on ``collection_on`` may go into a file sent on ``as_of``.

    True when it is at most ``horizon_days`` calendar days ahead, or on the earliest collection
    date a file sent on ``as_of`` may ask for (a lead time longer than the horizon must not
    hold a debit back for ever). Otherwise a later day's run sends it, for the same date.
    """
    if horizon_days < 0:
        raise PeriodError(f"debit horizon days must be zero or more, not {horizon_days}")
    return collection_on <= max(
        as_of + timedelta(days=horizon_days), earliest_collection_date(as_of, lead_days)
    )
