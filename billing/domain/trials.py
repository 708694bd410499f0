"""Trials: moving an item's trial end after its fees were charged (pure, issue #21).

An item's recurring fee is zero before its trial end (``ItemTerms.paid``). When the trial end
moves (extended, or shortened), the days between the old and the new end change from paid to
free or back. For each cycle those days touch:

- if its fee is charged already (a ``rec:`` charge is stored), or the schedule has passed it
  (it ends on or before the unit's last bill date, so it will never be scheduled again), the
  fee moves by a correction: the fee of the cycle under the new trial end minus its fee under
  the old one, both at the item's current terms and each rounded once under the plan's
  proration policy (``by_day``: by days; ``full``: any paid day is the whole cycle; ``none``:
  only a wholly paid cycle is charged). An extension gives a credit, a shortening a charge. It
  names the charged fee it corrects (``corrects_charge_id``), and is billed on the first bill
  not made yet (``billing.domain.corrections.settle_on``, applied by the writer);
- otherwise the schedule still has to charge it, and will, at the new trial end: nothing now.

Each correction is an ``adjustment`` keyed ``trl:{item id}:{cycle start}:{n}``: ``n`` counts
the corrections of that cycle's fee (from 1), so moving the trial end back and forth never
meets a key already taken; the same move twice does nothing (the end is already there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from billing.domain import charge_keys
from billing.domain.enums import ChargeKind
from billing.domain.periods import Period
from billing.domain.schedule import ChargeSpec, CycleGrid, ItemTerms, cycle_fee


def trial_corrections(
    item: ItemTerms,
    new_end: date,
    grid: CycleGrid,
    since: date | None,
    charged: Mapping[date, int],
    numbers: Mapping[date, int] | None = None,
) -> list[ChargeSpec]:
    """The corrections that move ``item``'s trial end from ``item.trial_end`` to ``new_end``.

    ``since`` is the unit's last bill date; ``charged`` the ids of the item's charged fees by
    cycle start; ``numbers`` how many trial corrections each cycle's fee has already (by
    cycle start). Returns no zero correction.
    """
    new = dataclasses.replace(item, trial_end=new_end)
    old_start = _paid_from(item)
    new_start = _paid_from(new)
    low, high = min(old_start, new_start), max(old_start, new_start)
    if item.end is not None:
        high = min(high, item.end)
    if low >= high:
        return []
    done = numbers or {}
    specs = []
    for cycle in grid.cycles_from(low):
        if cycle.start >= high:
            break
        passed = since is not None and cycle.end <= since
        if cycle.start not in charged and not passed:
            continue  # the schedule charges it later, at the new trial end
        difference = _fee(new, grid, cycle) - _fee(item, grid, cycle)
        if difference == 0:
            continue
        part = Period(max(cycle.start, low), min(cycle.end, high))
        specs.append(
            ChargeSpec(
                charge_key=charge_keys.trial(
                    item.item_id, cycle.start, done.get(cycle.start, 0) + 1
                ),
                kind=ChargeKind.ADJUSTMENT.value,
                contract_item_id=item.item_id,
                description=f"{item.description} (trial until {new_end.isoformat()})",
                period_start=part.start,
                period_end=part.end,
                bill_on=part.start,
                quantity=Decimal(1),
                unit_price=difference,
                amount=difference,
                tax_category=item.tax_category,
                corrects_charge_id=charged.get(cycle.start),
            )
        )
    return specs


def _paid_from(item: ItemTerms) -> date:
    """The first day the item's fee is charged for: its start, or its trial end if later."""
    if item.trial_end is None:
        return item.start
    return max(item.start, item.trial_end)


def _fee(item: ItemTerms, grid: CycleGrid, cycle: Period) -> Decimal:
    """The item's fee for ``cycle`` (zero when no day of it is paid)."""
    paid = item.paid(cycle)
    return Decimal(0) if paid is None else cycle_fee(item, grid, cycle, paid).amount
