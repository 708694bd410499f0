"""Minimum commitments on a cycle bill: the shortfall below a minimum spend (issue #21).

See ``billing.domain.commercial`` for where they sit in the bill's order. Pure: the cycle, the
bill's charges, its discount lines and what the reader found billed earlier come in; the
shortfall lines go out.

The rules (docs/architecture.md, "Minimum commitments"):

- **Target.** A commitment is on an item, or on a contract (every item of it, of any type).
- **Active part.** The days of the cycle on which the commitment *and* its target are active:
  ``[start_date, end_date)`` of the commitment, ``[start, end)`` of the item or contract (an
  item ends at its end date, its pending cancel date or its contract's end). No active day:
  no line.
- **Minimum.** ``amount`` is the minimum net spend of a full cycle; a partly active cycle's is
  prorated by day: ``amount x active days / cycle days``, rounded once (half up) to the
  currency.
- **Spend.** The net of the target's charges whose period overlaps the cycle: those on this bill
  (fees, usage, one-time fees, corrections of this cycle), those already on earlier bills (the
  fee in advance billed when the cycle opened, usage billed early on an immediate bill), and the
  item and plan discount lines on them (a discount line carries the period of what it reduces).
  A charge for another cycle does not count, so neither the next cycle's fee in advance on this
  bill nor a correction of an earlier cycle does. Bill discounts do not count: they reduce the
  bill, not the contract. Earlier shortfall lines never count.
- **Shortfall.** ``max(0, minimum - spend)``: a positive ``commitment`` line, quantity 1, for the
  active part, billed on the cycle's end (its cycle bill), on the item (item commitments) or on
  no item (contract commitments), taxed with the commitment's tax category, keyed
  ``min:{commitment id}:{cycle start}``: a rerun adds nothing.
- Settled once, on the cycle bill: what reaches the cycle later (late usage, a correction after
  the fact) does not reopen it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal

from billing.domain import charge_keys
from billing.domain.commercial import CommitmentTerm, TermItem, TermTarget, UnitTerms
from billing.domain.corrections import DESCRIPTION_LENGTH
from billing.domain.enums import ChargeKind, Proration
from billing.domain.money import LINE_ROUNDING, quantize_money
from billing.domain.periods import Period, prorate
from billing.domain.schedule import ChargeSpec, CycleGrid

NOT_SPEND = frozenset({ChargeKind.COMMITMENT.value, ChargeKind.PREPAYMENT.value})
"""Charge kinds that are never a target's spend: shortfalls themselves, prepaid credits sold."""


def shortfall_specs(
    terms: UnitTerms,
    grid: CycleGrid,
    cycle: Period,
    targets: Sequence[TermTarget],
    discounts: Sequence[ChargeSpec],
    currency: str,
) -> list[ChargeSpec]:
    """The shortfall lines of the cycle bill of ``cycle`` (on the net after ``discounts``)."""
    specs = []
    for commitment in terms.commitments:
        spec = shortfall(commitment, terms.items, cycle, targets, discounts, currency)
        if spec is not None:
            specs.append(spec)
    return specs


def shortfall(
    commitment: CommitmentTerm,
    items: Mapping[int, TermItem],
    cycle: Period,
    targets: Sequence[TermTarget],
    discounts: Sequence[ChargeSpec],
    currency: str,
) -> ChargeSpec | None:
    """One commitment's shortfall line in ``cycle``, or None (no active day, no shortfall)."""
    active = active_part(commitment, items, cycle)
    if active is None:
        return None
    minimum = prorated_minimum(commitment, cycle, active, currency)
    spent = spend(commitment, target_items(commitment, items), cycle, targets, discounts)
    missing = quantize_money(minimum - spent, currency, LINE_ROUNDING)
    if missing <= 0:
        return None
    # The PDF tags the line "Minimum commitment" in the buyer's language (documents).
    description = commitment.description or f"Minimum commitment {commitment.ref}"
    return ChargeSpec(
        charge_key=charge_keys.commitment(commitment.id, cycle.start),
        kind=ChargeKind.COMMITMENT.value,
        contract_item_id=commitment.item_id,
        description=description[:DESCRIPTION_LENGTH],
        period_start=active.start,
        period_end=active.end,
        bill_on=cycle.end,
        quantity=Decimal(1),
        unit_price=missing,
        amount=missing,
        tax_category=commitment.tax_category,
    )


def active_part(
    commitment: CommitmentTerm, items: Mapping[int, TermItem], cycle: Period
) -> Period | None:
    """The days of ``cycle`` on which the commitment and its target are both active.

    The target's bounds are the reader's (``target_start``, ``target_end``); without them an
    item commitment takes its item's start and end date from ``items``.
    """
    target_start, target_end = commitment.target_start, commitment.target_end
    item = items.get(commitment.item_id) if commitment.item_id is not None else None
    if target_start is None and target_end is None and item is not None:
        target_start, target_end = item.start, item.end
    start = max(d for d in (cycle.start, commitment.start, target_start) if d is not None)
    end = min(d for d in (cycle.end, commitment.end, target_end) if d is not None)
    return Period(start, end) if start < end else None


def prorated_minimum(
    commitment: CommitmentTerm, cycle: Period, active: Period, currency: str
) -> Decimal:
    """The minimum of the active part: ``amount x active days / cycle days``, rounded once."""
    return prorate(
        commitment.amount, active, cycle, currency, Proration.BY_DAY.value, LINE_ROUNDING
    )


def target_items(commitment: CommitmentTerm, items: Mapping[int, TermItem]) -> frozenset[int]:
    """The ids of the items whose charges are the commitment's spend."""
    if commitment.item_id is not None:
        return frozenset({commitment.item_id})
    return frozenset(i.item_id for i in items.values() if i.contract_id == commitment.contract_id)


def spend(
    commitment: CommitmentTerm,
    item_ids: frozenset[int],
    cycle: Period,
    targets: Sequence[TermTarget],
    discounts: Sequence[ChargeSpec],
) -> Decimal:
    """The target's net in ``cycle``: this bill's charges and discount lines on its items, and
    what earlier bills charged it, each counted when its period overlaps the cycle."""
    charges: list[TermTarget | ChargeSpec] = [*targets, *discounts]
    on_bill = (
        c.amount
        for c in charges
        if c.contract_item_id in item_ids
        and str(c.kind) not in NOT_SPEND
        and _overlaps(c.period_start, c.period_end, cycle)
    )
    earlier = (
        s.amount for s in commitment.billed if _overlaps(s.period_start, s.period_end, cycle)
    )
    return _sum(on_bill) + _sum(earlier)


def _overlaps(start: date, end: date, cycle: Period) -> bool:
    """Whether the period ``[start, end)`` shares a day with the cycle (an empty period
    ``[d, d)`` counts as the day ``d``)."""
    if end <= start:
        return cycle.contains(start)
    return start < cycle.end and end > cycle.start


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, Decimal(0))
