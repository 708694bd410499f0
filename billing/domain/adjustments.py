"""What a contract change charges: the proration arithmetic of a quantity or price change (pure).

A change on ``effective`` moves an item from its old terms to new ones. For a fee already
charged for a period that runs past ``effective``, the adjustment is the fee of the rest of
that period at the new terms minus the fee of the rest at the old terms (each rounded once,
under the plan's proration policy). For a cycle not yet charged, the schedule will charge it
whole at the new terms, so the adjustment corrects its head instead: old terms minus new terms
for the days before ``effective``. Each adjustment is keyed ``chg:{request id}:{cycle start}``
(``billing.domain.charge_keys.change``). ``billing.ops.changes`` reads the charged fees and
writes what this returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

from billing.domain import charge_keys
from billing.domain.enums import ChargeKind
from billing.domain.periods import Period
from billing.domain.schedule import ChargeSpec, CycleGrid, ItemTerms, cycle_fee


def change_adjustments(
    old: ItemTerms,
    new: ItemTerms,
    grid: CycleGrid,
    charged: Sequence[ChargeSpec],
    effective: date,
    request_id: int,
    since: date | None,
    charged_ids: Mapping[str, int] | None = None,
) -> list[ChargeSpec]:
    """The adjustments that move an item from ``old`` to ``new`` terms on ``effective``.

    ``charged`` are the item's fees already charged for periods ending after ``effective``;
    ``request_id`` is the change request's id (in the keys); ``since`` is the unit's last bill
    date (cycles ending on or before it are never charged again by the schedule);
    ``charged_ids`` the charged fees' ids by key: an adjustment of a charged fee corrects it.
    """
    ids = charged_ids or {}
    specs, covered = [], set()
    for fee in charged:
        cycle = next(grid.cycles_from(fee.period_start))
        covered.add(cycle.start)
        # A trial extended into the fee's period after it was charged leaves only its tail paid.
        start = max(effective, fee.period_start, old.trial_end or fee.period_start)
        if start >= fee.period_end:
            continue
        rest = Period(start, fee.period_end)
        difference = (
            cycle_fee(new, grid, cycle, rest).amount - cycle_fee(old, grid, cycle, rest).amount
        )
        key = charge_keys.change(request_id, cycle.start)
        specs.append(adjustment(new, key, rest, effective, difference, ids.get(fee.charge_key)))
    cycle = next(grid.cycles_from(effective))
    active = old.paid(cycle)
    to_come = since is None or cycle.end > since
    if cycle.start not in covered and to_come and active and active.start < effective:
        head = Period(active.start, effective)
        difference = (
            cycle_fee(old, grid, cycle, head).amount - cycle_fee(new, grid, cycle, head).amount
        )
        key = charge_keys.change(request_id, cycle.start)
        specs.append(adjustment(new, key, head, effective, difference))
    return [s for s in specs if s.amount != 0]


def adjustment(
    terms: ItemTerms,
    key: str,
    part: Period,
    effective: date,
    amount: Decimal,
    corrects: int | None = None,
) -> ChargeSpec:
    """An adjustment charge of ``amount`` for ``part`` of a cycle, billed from ``effective``
    (``corrects``: the id of the charged fee it corrects, if any)."""
    return ChargeSpec(
        charge_key=key,
        kind=ChargeKind.ADJUSTMENT.value,
        contract_item_id=terms.item_id,
        description=f"{terms.description} (changed {effective.isoformat()})",
        period_start=part.start,
        period_end=part.end,
        bill_on=effective,
        quantity=Decimal(1),
        unit_price=amount,
        amount=amount,
        tax_category=terms.tax_category,
        corrects_charge_id=corrects,
    )
