"""Discounts on a cycle bill: percentage or fixed, on an item, a plan or the bill (issue #21).

Pure: ``discount_specs`` takes a unit's terms, the cycle the bill closes and the bill's charges
and returns the discount lines as new charges (``billing.domain.commercial`` says where they
sit in the bill's order; docs/architecture.md, "Discounts", is the same rules for people).

**When a discount applies.** Per cycle bill: the bill that closes the cycle ``[a, b)`` gets a
discount's lines when that cycle is *active* for it:

- ``b > start_date`` (the cycle ends after the discount starts);
- ``a < end_date`` when it has one (it applies to cycles that start before its end);
- with ``cycles = N``: ``a`` is one of the N cycles from the one that contains ``start_date``
  (on the bill unit's grid).

A discount counts cycle bills, not service periods: everything the active cycle's bill holds is
discounted, so the first bill of an item billed in advance (its partial first cycle and the
next one) and the last active bill (the next cycle's advance fee) are discounted whole.

**What it reduces (targets).** The bill's charges of kind ``recurring``, ``usage``,
``one_time`` and ``adjustment`` (a mid-cycle upgrade, a top-up, a late usage delta) whose amount
is positive. Never a negative line, another discount, a commitment shortfall or a prepayment
(credits bought for a wallet). A credit of a charge discounts reduced gets the discounts' share
of it back instead (``reversal_specs``, below).

- ``item``: the targets of its contract item;
- ``plan``: the targets of every item of the account on its price plan;
- ``bill``: every target, after all item and plan discounts.

**Order and stacking.** Item and plan discounts first, then bill discounts; within each group
in ``(priority, id)`` order. Each discount reduces what the ones before it left of a target
(its *remaining* amount), never below zero. A discount that is not ``stackable`` applies only
to targets no discount has reduced yet, and no later discount reduces a target it reduced.

**Amounts.** A ``percent`` discount takes ``value`` % of the remaining amount, rounded to the
currency's minor unit (``ROUND_HALF_UP``): per target for item and plan discounts, per tax
category for bill discounts. A ``fixed`` discount takes ``value`` per cycle bill (rounded to
the currency, never prorated), at most what remains; over several targets (or categories) it
is split in proportion to what remains of each (``money.allocate``: the parts sum exactly).

**Lines.** Kind ``discount``, a negative amount, quantity 1, unit price = amount, billed on the
cycle's end (the bill date), taxed like what it reduces (its ``tax_category``):

- item and plan discounts: one line per target, with the target's period and contract item;
  a plan discount's text names the target (``"Spring offer - Fibre 100"``);
- bill discounts: one line per tax category of the targets it reduces (EN 16931 wants one VAT
  category per document-level allowance), the cycle's period, no contract item.

Keys are ``dsc:{discount id}:{cycle start}:{n}``, ``n`` counting the discount's lines on that
bill from 1, in target order (period start, period end, charge key) or category order (code):
the same bill always gives the same keys, so a rerun adds nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from billing.domain import charge_keys
from billing.domain.commercial import BilledLine, DiscountTerm, TermTarget, UnitTerms
from billing.domain.corrections import DESCRIPTION_LENGTH
from billing.domain.enums import ChargeKind, DiscountKind, DiscountScope
from billing.domain.errors import BillingError
from billing.domain.money import (
    LINE_ROUNDING,
    allocate,
    exact_product,
    quantize_money,
    round_money,
)
from billing.domain.periods import Period
from billing.domain.schedule import ChargeSpec, CycleGrid

TARGET_KINDS = frozenset(
    {ChargeKind.RECURRING, ChargeKind.USAGE, ChargeKind.ONE_TIME, ChargeKind.ADJUSTMENT}
)
"""The kinds of charge a discount reduces (when positive)."""

DEFAULT_REASON_CODE = "95"
"""UNTDID 5189 "Discount": a discount's allowance reason code (BT-98) unless it says another
(``discounts.reason_code``; 100 "Special agreement", 102 "Fixed long term", ...)."""

ALLOWANCE_REASONS = {
    "41": "Bonus for works ahead of schedule",
    "42": "Other bonus",
    "60": "Manufacturer's consumer discount",
    "62": "Due to military status",
    "63": "Due to work accident",
    "64": "Special agreement",
    "65": "Production error discount",
    "66": "New outlet discount",
    "67": "Sample discount",
    "68": "End-of-range discount",
    "70": "Incoterm discount",
    "71": "Point of sales threshold allowance",
    "88": "Material surcharge/deduction",
    "95": "Discount",
    "100": "Special rebate",
    "102": "Fixed long term",
    "103": "Temporary",
    "104": "Standard",
    "105": "Yearly turnover",
}
"""The allowance reason codes EN 16931 takes (its subset of UNTDID 5189, BT-98)."""

ZERO = Decimal(0)
HUNDRED = Decimal(100)
ONE_PERCENT = Decimal("0.01")
_DISCOUNT = ChargeKind.DISCOUNT.value
_CORRECTS = re.compile(r", corrects (?:invoice \S+|the invoice of \d{4}-\d{2}-\d{2})$")
"""The reference a correction's line ends with (``billing.domain.corrections``)."""


def active(discount: DiscountTerm, grid: CycleGrid, cycle: Period) -> bool:
    """Whether the bill of ``cycle`` gets ``discount``'s lines (the module's rules)."""
    if cycle.end <= discount.start:
        return False
    if discount.end is not None and cycle.start >= discount.end:
        return False
    if discount.cycles is None:
        return True
    # the N cycles from the one holding its start: is ``cycle`` (its start) within them?
    for counted, period in enumerate(grid.cycles_from(discount.start), start=1):
        if period.end > cycle.start:
            return True
        if counted >= discount.cycles:
            return False
    return False  # pragma: no cover (cycles_from never ends)


@dataclass
class _Target:
    """A charge a discount may reduce, with what is left of it."""

    charge: TermTarget
    remaining: Decimal
    reduced: bool = False
    """Some discount reduced it (a non-stackable one then skips it)."""
    closed: bool = False
    """A non-stackable discount reduced it: no later discount does."""


def discount_specs(
    terms: UnitTerms,
    grid: CycleGrid,
    cycle: Period,
    targets: Sequence[TermTarget],
    currency: str,
) -> list[ChargeSpec]:
    """The discount lines of the cycle bill of ``cycle`` (``bill_on`` its end)."""
    discounts = sorted(
        (d for d in terms.discounts if active(d, grid, cycle)), key=lambda d: (d.priority, d.id)
    )
    if not discounts:
        return []
    pool = [
        _Target(t, t.amount)
        for t in sorted(targets, key=lambda t: (t.period_start, t.period_end, t.charge_key))
        if t.kind in TARGET_KINDS and t.amount > 0
    ]
    specs: list[ChargeSpec] = []
    for discount in discounts:  # item and plan scope first
        if discount.scope != DiscountScope.BILL:
            chosen = _chooser(discount, terms)
            specs.extend(_on_targets(discount, [t for t in pool if chosen(t)], cycle, currency))
    for discount in discounts:  # then the bill, on what is left
        if discount.scope == DiscountScope.BILL:
            specs.extend(_on_bill(discount, pool, cycle, currency))
    return specs


def _chooser(discount: DiscountTerm, terms: UnitTerms) -> Callable[[_Target], bool]:
    """Which targets an item or plan discount reduces."""
    if discount.scope == DiscountScope.ITEM:
        if discount.item_id is None:
            raise BillingError(f"discount {discount.ref}: an item discount names no item")
        return lambda t: t.charge.contract_item_id == discount.item_id
    if discount.scope == DiscountScope.PLAN:
        if discount.plan_id is None:
            raise BillingError(f"discount {discount.ref}: a plan discount names no price plan")
        on_plan = {i for i, item in terms.items.items() if item.price_plan_id == discount.plan_id}
        return lambda t: t.charge.contract_item_id in on_plan
    raise BillingError(f"discount {discount.ref}: unknown scope {discount.scope!r}")


def _open(discount: DiscountTerm, targets: Sequence[_Target]) -> list[_Target]:
    """The targets ``discount`` may still reduce (stacking rules), with something left."""
    return [
        t
        for t in targets
        if t.remaining > 0 and not t.closed and (discount.stackable or not t.reduced)
    ]


def _amounts(discount: DiscountTerm, bases: Sequence[Decimal], currency: str) -> list[Decimal]:
    """What ``discount`` takes off each base (positive, each at most its base)."""
    if discount.kind == DiscountKind.PERCENT:
        if not ZERO <= discount.value <= HUNDRED:
            raise BillingError(f"discount {discount.ref}: {discount.value} % is not in 0..100")
        return [min(base, _percent(base, discount.value, currency)) for base in bases]
    if discount.kind == DiscountKind.FIXED:
        value = quantize_money(discount.value, currency, LINE_ROUNDING)
        total = min(value, sum(bases, ZERO))
        if total <= 0:
            return [ZERO for _ in bases]
        return allocate(total, bases, currency)
    raise BillingError(f"discount {discount.ref}: unknown kind {discount.kind!r}")


def _percent(base: Decimal, percent: Decimal, currency: str) -> Decimal:
    """``percent`` % of ``base``, rounded once to the currency (an exact product with 0.01)."""
    return quantize_money(exact_product(base, percent, ONE_PERCENT), currency, LINE_ROUNDING)


def _take(target: _Target, amount: Decimal, discount: DiscountTerm) -> None:
    """Reduce ``target`` by ``amount`` (the stacking marks)."""
    target.remaining -= amount
    target.reduced = True
    if not discount.stackable:
        target.closed = True


def _on_targets(
    discount: DiscountTerm, chosen: Sequence[_Target], cycle: Period, currency: str
) -> list[ChargeSpec]:
    """An item or plan discount: one line per target it reduces."""
    targets = _open(discount, chosen)
    if not targets:
        return []
    specs: list[ChargeSpec] = []
    for target, amount in zip(
        targets, _amounts(discount, [t.remaining for t in targets], currency), strict=True
    ):
        if amount <= 0:
            continue
        _take(target, amount, discount)
        charge = target.charge
        text = discount.description
        if discount.scope == DiscountScope.PLAN:
            text = f"{text} - {_CORRECTS.sub('', charge.description)}"
        specs.append(
            _line(
                discount,
                cycle,
                len(specs) + 1,
                -amount,
                Period(charge.period_start, charge.period_end)
                if charge.period_start < charge.period_end
                else cycle,
                charge.contract_item_id,
                charge.tax_category,
                text,
            )
        )
    return specs


def _on_bill(
    discount: DiscountTerm, pool: Sequence[_Target], cycle: Period, currency: str
) -> list[ChargeSpec]:
    """A bill discount: one line per tax category of what it reduces."""
    targets = _open(discount, pool)
    if not targets:
        return []
    categories = sorted({t.charge.tax_category for t in targets})
    groups = [[t for t in targets if t.charge.tax_category == c] for c in categories]
    bases = [sum((t.remaining for t in group), ZERO) for group in groups]
    specs: list[ChargeSpec] = []
    for category, group, amount in zip(
        categories, groups, _amounts(discount, bases, currency), strict=True
    ):
        if amount <= 0:
            continue
        # what it takes off the category, spread over the category's targets
        for target, part in zip(
            group, allocate(amount, [t.remaining for t in group], currency), strict=True
        ):
            if part > 0:
                _take(target, part, discount)
        number = len(specs) + 1
        specs.append(
            _line(discount, cycle, number, -amount, cycle, None, category, discount.description)
        )
    return specs


def _line(
    discount: DiscountTerm,
    cycle: Period,
    number: int,
    amount: Decimal,
    period: Period,
    item_id: int | None,
    tax_category: str,
    description: str,
) -> ChargeSpec:
    return ChargeSpec(
        charge_key=charge_keys.discount(discount.id, cycle.start, number),
        kind=_DISCOUNT,
        contract_item_id=item_id,
        description=description[:DESCRIPTION_LENGTH],
        period_start=period.start,
        period_end=period.end,
        bill_on=cycle.end,
        quantity=Decimal(1),
        unit_price=amount,
        amount=amount,
        tax_category=tax_category,
    )


# -- credits of discounted charges ------------------------------------------------------------


def discounted_share(charge: BilledLine, lines: Sequence[BilledLine]) -> Fraction:
    """The share (0 to 1) of ``charge``'s list price that the discounts of its bill took.

    Its item and plan discounts are the discount lines of its item and period, shared among
    that item's positive lines of the period in proportion to their amounts; its bill
    discounts are those of its tax category, shared among what the category's positive lines
    kept after their item and plan discounts. 100.00 with a 10 % item discount: 1/10.
    """
    amount = Fraction(charge.amount)
    if amount <= 0:
        return Fraction(0)

    def of_item(line: BilledLine) -> bool:
        return (
            line.contract_item_id == charge.contract_item_id
            and line.period_start == charge.period_start
        )

    def target(line: BilledLine) -> bool:
        return line.kind in TARGET_KINDS and line.amount > 0

    def item_discount(line: BilledLine) -> bool:
        return line.kind == ChargeKind.DISCOUNT and line.contract_item_id is not None

    item_targets = sum((Fraction(x.amount) for x in lines if target(x) and of_item(x)), Fraction(0))
    item_off = sum(
        (Fraction(x.amount) for x in lines if item_discount(x) and of_item(x)), Fraction(0)
    )
    share_item = item_off * amount / item_targets if item_targets else Fraction(0)
    category = [x for x in lines if x.tax_category == charge.tax_category]
    kept = sum((Fraction(x.amount) for x in category if target(x)), Fraction(0)) + sum(
        (Fraction(x.amount) for x in category if item_discount(x)), Fraction(0)
    )
    bill_off = sum(
        (
            Fraction(x.amount)
            for x in category
            if x.kind == ChargeKind.DISCOUNT and x.contract_item_id is None
        ),
        Fraction(0),
    )
    share_bill = bill_off * (amount + share_item) / kept if kept > 0 else Fraction(0)
    return min(Fraction(1), max(Fraction(0), -(share_item + share_bill) / amount))


def reversal_specs(
    terms: UnitTerms, cycle: Period, targets: Sequence[TermTarget], currency: str
) -> list[ChargeSpec]:
    """A credit of a discounted charge credits its list price; the line this returns gives
    back the share the discounts took, which the customer never paid: 50.00 credited of a fee
    discounted 10 % gives back 5.00. Kind ``discount``, positive, keyed
    ``dsr:{credit charge id}``, billed with the credit, taxed like it, on its period."""
    specs = []
    for credit in targets:
        found = terms.reversals.get(credit.charge_key)
        if found is None or credit.amount >= 0:
            continue
        amount = round_money(Fraction(-credit.amount) * found.share, currency, LINE_ROUNDING)
        if amount <= 0:
            continue
        specs.append(
            ChargeSpec(
                charge_key=charge_keys.discount_reversal(credit.id),
                kind=ChargeKind.DISCOUNT.value,
                contract_item_id=credit.contract_item_id,
                description=credit.description[:DESCRIPTION_LENGTH],
                period_start=credit.period_start,
                period_end=credit.period_end,
                bill_on=cycle.end,
                quantity=Decimal(1),
                unit_price=amount,
                amount=amount,
                tax_category=credit.tax_category,
            )
        )
    return specs
