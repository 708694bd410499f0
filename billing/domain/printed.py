"""How an invoice line is printed so that the customer can redo its arithmetic.

A printed line shows ``quantity x unit price = amount`` (EN 16931 BT-129 x BT-146 = BT-131,
base quantity BT-149 of 1): the unit price is printed with all its decimals, so the product
of the two printed numbers, rounded to the currency's minor units half up (the engine's
``LINE_ROUNDING``), is the printed amount. Where no single unit price does that:

- graduated, volume and package usage prints no unit price on the line and its tiers or
  packages as sub-lines, each with its exact (unrounded) amount; the line's amount is their
  sum rounded once, as ``pricing.rate_usage`` rounds it;
- a recurring fee for part of its cycle (``by_day`` proration) prints its full unit price and
  ``n of m days``: ``quantity x unit price x n / m`` rounded is the amount.

Pure: values in, values out (``PricePlan`` and ``Period`` from the domain).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

from billing.domain.enums import PriceModel, Proration
from billing.domain.money import LINE_ROUNDING, exact_product, exact_sum, quantize_money
from billing.domain.periods import Period
from billing.domain.pricing import UNIT_PRICE_PLACES, PricePlan, _packages

TIERED = (PriceModel.GRADUATED.value, PriceModel.VOLUME.value, PriceModel.PACKAGE.value)


@dataclass(frozen=True)
class SubLine:
    """A tier, a tier's flat fee or the packages of a line: ``quantity x unit_price = amount``.

    ``kind`` is ``tier`` (graduated slice from ``low`` to ``high``), ``volume`` (the whole
    quantity at the tier from ``low`` to ``high``, ``None``: open-ended), ``packages``
    (``quantity`` packages of ``size``) or ``flat_fee`` (``amount`` alone). ``amount`` is exact.
    """

    kind: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    low: Decimal | None = None
    high: Decimal | None = None
    size: Decimal | None = None


@dataclass(frozen=True)
class PrintedLine:
    """What the lines table shows besides description, period and VAT.

    ``unit_price`` is None when the line prints ``sub_lines`` instead; ``days`` is
    ``(n, m)`` for a fee prorated over n of the m days of its cycle.
    """

    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal
    days: tuple[int, int] | None = None
    sub_lines: tuple[SubLine, ...] = ()


def rounded(value: Decimal | Fraction, currency: str) -> Decimal:
    """``value`` to the currency's minor units, half up, as the engine rounds a line."""
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return quantize_money(value, currency, LINE_ROUNDING)


def checks(line: PrintedLine, currency: str) -> bool:
    """True when the printed numbers give the printed amount (the customer's check)."""
    if line.unit_price is None:
        if not line.sub_lines:
            return False
        for sub in line.sub_lines:
            if sub.kind != "flat_fee" and exact_product(sub.quantity, sub.unit_price) != sub.amount:
                return False
        return rounded(exact_sum(s.amount for s in line.sub_lines), currency) == line.amount
    product = Fraction(exact_product(line.quantity, line.unit_price))
    if line.days is not None:
        product *= Fraction(*line.days)
    return rounded(product, currency) == line.amount


def _low(floor: Decimal, whole: bool) -> Decimal:
    """The first quantity of a tier after ``floor``: 0 for the first tier, the next whole
    unit when quantities are whole (10 001 after 10 000), ``floor`` itself otherwise."""
    if floor == 0 or not whole:
        return floor
    return floor + 1


def sub_lines(plan: PricePlan, quantity: Decimal) -> tuple[SubLine, ...]:
    """The tiers (graduated, volume) or packages of ``quantity`` under ``plan``, exact."""
    if quantity <= 0:
        return ()
    if plan.model == PriceModel.PACKAGE:
        assert plan.package_size is not None and plan.unit_price is not None
        count = _packages(quantity, plan.package_size)
        amount = exact_product(count, plan.unit_price)
        return (SubLine("packages", count, plan.unit_price, amount, size=plan.package_size),)
    subs: list[SubLine] = []
    floor = Decimal(0)
    whole = quantity == quantity.to_integral_value() and all(
        t.up_to is None or t.up_to == t.up_to.to_integral_value() for t in plan.tiers
    )
    for tier in plan.tiers:
        low = _low(floor, whole)
        if plan.model == PriceModel.VOLUME:
            if tier.up_to is None or quantity <= tier.up_to:
                amount = exact_product(quantity, tier.unit_price)
                subs.append(SubLine("volume", quantity, tier.unit_price, amount, low, tier.up_to))
                if tier.flat_fee:
                    subs.append(SubLine("flat_fee", Decimal(1), tier.flat_fee, tier.flat_fee))
                break
            floor = tier.up_to
            continue
        ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if ceiling <= floor:
            break
        part = ceiling - floor
        amount = exact_product(part, tier.unit_price)
        subs.append(SubLine("tier", part, tier.unit_price, amount, low, ceiling))
        if tier.flat_fee:
            subs.append(SubLine("flat_fee", Decimal(1), tier.flat_fee, tier.flat_fee))
        floor = ceiling
    return tuple(subs)


def _cycle_price(plan: PricePlan, price: Decimal, cycle_months: int) -> Decimal | None:
    """The price of one billing cycle of a recurring plan, if it is exact in
    ``UNIT_PRICE_PLACES`` decimals (None otherwise, or when the plan is not recurring)."""
    if plan.model != PriceModel.RECURRING:
        return None
    full = Fraction(price) * cycle_months / plan.period_months
    cycle_price = Decimal(full.numerator) / Decimal(full.denominator)
    if full.denominator == 1 or cycle_price == cycle_price.quantize(
        Decimal(1).scaleb(-UNIT_PRICE_PLACES)
    ):
        return cycle_price
    return None


def _cycle_forms(
    quantity: Decimal,
    price: Decimal,
    amount: Decimal,
    plan: PricePlan,
    cycle: Period | None,
    period: Period | None,
    cycle_months: int,
) -> list[PrintedLine]:
    """A recurring fee at its cycle price: prorated ``n of m days`` first when it covers part
    of its cycle under ``by_day`` proration, then the whole cycle."""
    cycle_price = _cycle_price(plan, price, cycle_months)
    if cycle_price is None:
        return []
    forms = []
    if (
        cycle is not None
        and period is not None
        and plan.proration == Proration.BY_DAY
        and period.days < cycle.days
    ):
        forms.append(PrintedLine(quantity, cycle_price, amount, (period.days, cycle.days)))
    forms.append(PrintedLine(quantity, cycle_price, amount))
    return forms


def negated(line: PrintedLine) -> PrintedLine:
    """``line`` with its prices and amounts of the other sign: a credit note prints positive
    what it stores negative. Its arithmetic still checks (half-up rounding is symmetric)."""
    return replace(
        line,
        unit_price=None if line.unit_price is None else -line.unit_price,
        amount=-line.amount,
        sub_lines=tuple(
            replace(sub, unit_price=-sub.unit_price, amount=-sub.amount) for sub in line.sub_lines
        ),
    )


def credit_line(
    quantity: Decimal,
    price: Decimal,
    amount: Decimal,
    currency: str,
    *,
    plan: PricePlan,
    cycle: Period | None,
    period: Period | None,
    cycle_months: int = 1,
) -> PrintedLine | None:
    """A cancellation credit (``amount`` < 0) as the item's ``quantity`` x its cycle price,
    negative, x ``n / m`` for the n unused days of the m-day cycle (``by_day`` proration), or
    for the whole cycle. None when neither gives the amount: the credit is the fee for the kept
    days minus the fee charged, each rounded, so a half cent can separate the two.
    """
    for form in _cycle_forms(quantity, -price, amount, plan, cycle, period, cycle_months):
        if checks(form, currency):
            return form
    return None


def printed_line(
    quantity: Decimal,
    unit_price: Decimal,
    amount: Decimal,
    currency: str,
    *,
    plan: PricePlan | None = None,
    usage: bool = False,
    price: Decimal | None = None,
    cycle: Period | None = None,
    period: Period | None = None,
    cycle_months: int = 1,
) -> PrintedLine:
    """How to print a line of ``quantity`` at ``unit_price`` (the stored average) for ``amount``.

    ``plan`` is the line's price plan when known, ``usage`` says the line rates usage,
    ``price`` is the item's unit price (its override or the plan's), ``cycle`` and ``period``
    the cycle a recurring fee belongs to and the part of it the line bills. The first form
    whose arithmetic checks is chosen: tiers or packages, prorated days, the item's price,
    the stored unit price (up to ``UNIT_PRICE_PLACES`` decimals). A line none of them fits
    (an old plan edited since) prints its quantity and amount without a unit price.
    """
    candidates: list[PrintedLine] = []
    if plan is not None and usage and plan.model in TIERED:
        if plan.model == PriceModel.PACKAGE and price is not None and price != plan.unit_price:
            plan = replace(plan, unit_price=price)
        candidates.append(PrintedLine(quantity, None, amount, None, sub_lines(plan, quantity)))
    if plan is not None and price is not None:
        candidates.extend(_cycle_forms(quantity, price, amount, plan, cycle, period, cycle_months))
    if price is not None and plan is not None and plan.model not in TIERED:
        candidates.append(PrintedLine(quantity, price, amount))
    candidates.append(PrintedLine(quantity, unit_price, amount))
    for candidate in candidates:
        if checks(candidate, currency):
            return candidate
    return PrintedLine(quantity, None, amount)
