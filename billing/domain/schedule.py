"""Which fees an item owes up to a date: the Invoicing Schedule of recurring and one-time items.

Pure: it takes an item's terms and a bill unit's cycle grid and returns charge specs. The caller
inserts them with their ``charge_key``; keys are stable, so materializing twice adds nothing.

Timing (docs/architecture.md, "When a fee is billed"):
- a fee *in advance* for cycle ``[a, b)`` is billed on the bill dated ``a`` (or, for an item that
  starts inside the cycle, on the first bill after its start);
- a fee *in arrears* for ``[a, b)`` is billed on the bill dated ``b``;
- a one-time fee is billed on the first bill on or after the item's start.

Trials: an item's recurring fee is zero before its ``trial_end``. A cycle entirely in trial
has no fee line; a cycle the trial ends inside is charged from the trial end, prorated and
timed as if the item started that day (``ItemTerms.paid``). One-time fees and usage are
charged as usual during a trial. ``billing.domain.trials`` corrects the fees already charged
when a trial's end moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from billing.domain import charge_keys
from billing.domain.enums import ChargeKind, ItemType, Timing
from billing.domain.money import LINE_ROUNDING
from billing.domain.periods import Period, add_cycles, cycle_months
from billing.domain.pricing import PricePlan, Rated, one_time_fee, recurring_fee

# The kinds as plain strings, looked up once: specs are built for every item of a bill day.
_RECURRING, _ONE_TIME, _ADJUSTMENT = (
    ChargeKind.RECURRING.value,
    ChargeKind.ONE_TIME.value,
    ChargeKind.ADJUSTMENT.value,
)

# Pure and called with the same few arguments for every account of a batch: memoized.
_add_cycles = lru_cache(maxsize=1 << 16)(add_cycles)


@dataclass(frozen=True)
class CycleGrid:
    """A bill unit's cycle boundaries: every bill date on ``billing_day``, ``cycle`` apart."""

    anchor: date
    billing_day: int
    cycle: str

    def boundary(self, k: int) -> date:
        """The k-th bill date from the anchor (negative k goes back)."""
        return _add_cycles(self.anchor, k, self.billing_day, self.cycle)

    def cycles_from(self, day: date) -> Iterator[Period]:
        """The cycles in order, starting with the one that contains ``day``."""
        k = 0
        while self.boundary(k) > day:
            k -= 1
        while self.boundary(k + 1) <= day:
            k += 1
        while True:
            yield Period(self.boundary(k), self.boundary(k + 1))
            k += 1


@dataclass(frozen=True)
class ItemTerms:
    """What the schedule needs to know of a contract item."""

    item_id: int
    item_type: str
    description: str
    plan: PricePlan
    tax_category: str
    quantity: Decimal
    price_override: Decimal | None
    start: date
    end: date | None
    trial_end: date | None = None
    """A free trial: the recurring fee is zero before this day (None: no trial)."""

    def active(self, cycle: Period) -> Period | None:
        """The part of ``cycle`` in which the item is active."""
        end = cycle.end if self.end is None else min(cycle.end, self.end)
        start = max(cycle.start, self.start)
        return Period(start, end) if start < end else None

    def paid(self, cycle: Period) -> Period | None:
        """The part of ``cycle`` the recurring fee is charged for: active, after the trial."""
        active = self.active(cycle)
        if active is None or self.trial_end is None or self.trial_end <= active.start:
            return active
        return Period(self.trial_end, active.end) if self.trial_end < active.end else None


@dataclass(frozen=True)
class ChargeSpec:
    """A charge to insert (the account, bill unit and currency are the caller's)."""

    charge_key: str
    kind: str
    contract_item_id: int | None
    description: str
    period_start: date
    period_end: date
    bill_on: date
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    tax_category: str
    corrects_charge_id: int | None = None
    """A correction's corrected charge (``billing.domain.corrections``); None otherwise."""

    @classmethod
    def from_row(cls, row: Any) -> ChargeSpec:
        """The spec of a stored charge (any object with the charges table's attributes)."""
        kind = row.kind.value if hasattr(row.kind, "value") else row.kind
        return cls(
            row.charge_key,
            kind,
            row.contract_item_id,
            row.description,
            row.period_start,
            row.period_end,
            row.bill_on,
            row.quantity,
            row.unit_price,
            row.amount,
            row.tax_category,
            getattr(row, "corrects_charge_id", None),
        )


def scheduled_charges(
    item: ItemTerms, grid: CycleGrid, through: date, since: date | None
) -> list[ChargeSpec]:
    """Every recurring or one-time charge of ``item`` billable by ``through``.

    ``since`` is the unit's last bill date: charges billed on or before it already exist.
    """
    if item.item_type == ItemType.ONE_TIME:
        return _one_time(item, through)
    if item.item_type != ItemType.RECURRING:
        return []
    specs = []
    first = max(item.start, since) if since is not None else item.start
    for cycle in grid.cycles_from(first):
        if cycle.start > through or (item.end is not None and cycle.start >= item.end):
            break
        spec = _recurring(item, grid, cycle)
        if spec is not None and spec.bill_on <= through:
            specs.append(spec)
    return specs


def _recurring(item: ItemTerms, grid: CycleGrid, cycle: Period) -> ChargeSpec | None:
    active = item.paid(cycle)
    if active is None:
        return None
    rated = cycle_fee(item, grid, cycle, active)
    advance = item.plan.timing == Timing.ADVANCE
    return ChargeSpec(
        charge_key=charge_keys.recurring(item.item_id, cycle.start),
        kind=_RECURRING,
        contract_item_id=item.item_id,
        description=item.description,
        period_start=active.start,
        period_end=active.end,
        bill_on=active.start if advance else cycle.end,
        quantity=rated.quantity,
        unit_price=rated.unit_price,
        amount=rated.amount,
        tax_category=item.tax_category,
    )


def cycle_fee(item: ItemTerms, grid: CycleGrid, cycle: Period, active: Period | None) -> Rated:
    """The recurring fee of the ``active`` part of ``cycle`` at the item's terms, rounded once."""
    return _recurring_fee(
        item.plan,
        item.quantity,
        cycle,
        active,
        cycle_months(grid.cycle),
        LINE_ROUNDING,
        item.price_override,
    )


_recurring_fee = lru_cache(maxsize=1 << 16)(recurring_fee)


def _one_time(item: ItemTerms, through: date) -> list[ChargeSpec]:
    if item.start > through:
        return []
    rated = one_time_fee(item.plan, item.quantity, LINE_ROUNDING, item.price_override)
    return [
        ChargeSpec(
            charge_key=charge_keys.one_time(item.item_id),
            kind=_ONE_TIME,
            contract_item_id=item.item_id,
            description=item.description,
            period_start=item.start,
            period_end=item.start + timedelta(days=1),
            bill_on=item.start,
            quantity=rated.quantity,
            unit_price=rated.unit_price,
            amount=rated.amount,
            tax_category=item.tax_category,
        )
    ]


def cancellation_credit(
    item: ItemTerms,
    grid: CycleGrid,
    charged: ChargeSpec,
    cancel_on: date,
    charged_id: int | None = None,
) -> ChargeSpec | None:
    """The credit for the part of a fee after ``cancel_on`` (None if nothing to credit).

    It is the difference between the fee re-priced for the shortened period and the fee
    charged, so every proration policy is honoured. ``cancel_on`` is the first day not served.
    ``charged_id`` is the charged fee's id: the credit corrects it.

    A trial extended into the charged period after it was charged was corrected then
    (``billing.domain.trials``): the fee now stands at the fee of its part after the trial end,
    and only that part is served.
    """
    if charged.period_end <= cancel_on:
        return None
    cycle = next(grid.cycles_from(charged.period_start))
    start, owed = charged.period_start, charged.amount
    if item.trial_end is not None and item.trial_end > start:
        start = min(item.trial_end, charged.period_end)
        rest = Period(start, charged.period_end) if start < charged.period_end else None
        owed = cycle_fee(item, grid, cycle, rest).amount
    kept = Period(start, cancel_on) if start < cancel_on else None
    difference = cycle_fee(item, grid, cycle, kept).amount - owed
    if difference == 0:
        return None
    return ChargeSpec(
        charge_key=charge_keys.cancellation(item.item_id, charged.period_start),
        kind=_ADJUSTMENT,
        contract_item_id=item.item_id,
        description=f"{item.description} (cancelled {cancel_on.isoformat()})",
        period_start=max(cancel_on, charged.period_start),
        period_end=charged.period_end,
        bill_on=cancel_on,
        quantity=Decimal(1),
        unit_price=difference,
        amount=difference,
        tax_category=item.tax_category,
        corrects_charge_id=charged_id,
    )
