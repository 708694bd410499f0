"""Contract terms and renewal rules (Cn285 *Contract Item Renewal*), pure: dates in, dates out.

A contract's current term ends on ``end_date``, or ``start_date + term_months`` while
``end_date`` is empty. Its *notice deadline* is ``notice_days`` before that end. On the first
run on or after the deadline, an auto-renewing contract renews (its end moves by
``term_months``, on the start date's day of month, so terms do not drift); one that is not
renewing ends once its term is over. ``billing.ops.renewal`` reads the contracts and writes
what these rules decide; see docs/daemons.md.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.domain import charge_keys
from billing.domain.enums import ChargeKind
from billing.domain.periods import Period
from billing.domain.schedule import ChargeSpec, CycleGrid, ItemTerms, cycle_fee


@dataclass(frozen=True)
class Term:
    """A contract's renewal facts, as plain values."""

    start: date
    end_date: date | None
    term_months: int
    auto_renew: bool
    notice_days: int


def add_months(day: date, months: int, day_of_month: int) -> date:
    """``day`` moved by ``months``, on ``day_of_month`` (or the month's last day)."""
    year, index = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, index + 1)[1]
    return date(year, index + 1, min(day_of_month, last))


def term_end(term: Term) -> date:
    """The end (exclusive) of the current term."""
    if term.end_date is not None:
        return term.end_date
    return add_months(term.start, term.term_months, term.start.day)


def next_term_end(term: Term) -> date:
    """The end of the term that a renewal now would add."""
    return add_months(term_end(term), term.term_months, term.start.day)


def notice_deadline(term: Term) -> date:
    """The last day a termination notice can come in: ``notice_days`` before the term end."""
    return date.fromordinal(term_end(term).toordinal() - term.notice_days)


def renewal_due(term: Term, on: date) -> bool:
    """Auto-renewing and past its notice deadline: renew now."""
    return term.auto_renew and on >= notice_deadline(term)


def ending_due(term: Term, on: date) -> bool:
    """Not renewing and its term is over: end now."""
    return not term.auto_renew and on >= term_end(term)


def forecast_horizon(term_end_day: date) -> date:
    """How far a renewal forecasts the new term's fees: 13 months past its end."""
    return add_months(term_end_day, 13, term_end_day.day)


def extension_fees(
    terms: ItemTerms, grid: CycleGrid, charged: Sequence[ChargeSpec], old_end: date
) -> list[ChargeSpec]:
    """Fees charged up to the old term end inside a cycle that goes on: charge the rest.

    The schedule stops an item's fee at its contract's end, so a cycle that straddles the old
    end and was charged before the renewal was charged short. ``ext:{item}:{cycle}`` charges
    the difference with the fee of the cycle under the extended ``terms``.
    """
    specs = []
    for fee in charged:
        cycle = next(grid.cycles_from(fee.period_start))
        if fee.period_end != old_end or cycle.end <= old_end:
            continue
        active = terms.active(cycle)
        full = Period(min(fee.period_start, old_end), active.end if active else old_end)
        difference = cycle_fee(terms, grid, cycle, full).amount - fee.amount
        if difference == 0:
            continue
        specs.append(
            ChargeSpec(
                charge_key=charge_keys.extension(terms.item_id, cycle.start),
                kind=ChargeKind.ADJUSTMENT.value,
                contract_item_id=terms.item_id,
                description=f"{terms.description} (renewed {old_end.isoformat()})",
                period_start=old_end,
                period_end=full.end,
                bill_on=old_end,
                quantity=Decimal(1),
                unit_price=difference,
                amount=difference,
                tax_category=terms.tax_category,
            )
        )
    return specs
