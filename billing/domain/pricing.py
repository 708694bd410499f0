"""Price plans and rating: usage (per unit, graduated, volume, package) and cycle fees.

Each function rounds once, at the end, to the currency's minor units with the rounding mode it
is given. Tier bounds are inclusive: a quantity equal to ``up_to`` falls in that tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.domain.enums import ItemType, PriceModel, Timing
from billing.domain.errors import BillingError, PricingError
from billing.domain.money import (
    divmod_exact,
    exact_difference,
    exact_product,
    exact_sum,
    minor_units,
    quantize_money,
    round_quotient,
    to_decimal,
)
from billing.domain.periods import PRORATION_POLICIES, Period, proration_factor

MODELS = tuple(model.value for model in PriceModel)
USAGE_MODELS = tuple(
    model.value
    for model in (PriceModel.PER_UNIT, PriceModel.GRADUATED, PriceModel.VOLUME, PriceModel.PACKAGE)
)
UNIT_PRICED_MODELS = (PriceModel.PER_UNIT.value, PriceModel.PACKAGE.value)
"""Usage models priced by one unit price: an item's price override replaces it."""
TIMINGS = tuple(timing.value for timing in Timing)
ITEM_MODELS: dict[str, tuple[str, ...]] = {
    ItemType.RECURRING.value: (PriceModel.RECURRING.value,),
    ItemType.USAGE.value: USAGE_MODELS,
    ItemType.UTI.value: USAGE_MODELS,
    ItemType.ONE_TIME.value: (PriceModel.ONE_TIME.value,),
}
"""The plan models that can price each item type: a recurring item is billed by
``schedule.py`` with ``recurring_fee``, a one-time item with ``one_time_fee``, a usage or UTI
item by rating (``rate_usage``). Any other pairing fails at bill day."""
UNIT_PRICE_PLACES = 6


@dataclass(frozen=True)
class Tier:
    """A price tier up to ``up_to`` units inclusive (``None``: no upper bound)."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True)
class PricePlan:
    """How a product is priced; validated on construction (``PricingError`` names the field)."""

    code: str
    model: str
    currency: str
    unit_price: Decimal | None
    tiers: tuple[Tier, ...] = ()
    package_size: Decimal | None = None
    proration: str = "by_day"
    timing: str | None = None
    period_months: int = 1

    def __post_init__(self) -> None:
        """Check every field against the model; raise ``PricingError`` on the first problem."""
        _check_choice(self, "model", self.model, MODELS)
        _check_currency(self)
        _check_choice(self, "proration", self.proration, PRORATION_POLICIES)
        _check_price_fields(self)
        _check_tiers(self)
        _check_package(self)
        _check_timing(self)


@dataclass(frozen=True)
class Rated:
    """A priced quantity: ``amount`` is rounded, ``unit_price`` is the effective average price."""

    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


def _fail(plan: PricePlan, field: str, message: str) -> PricingError:
    """Build the error for an invalid plan field."""
    return PricingError(f"price plan {plan.code!r}: {field}: {message}")


def _check_choice(plan: PricePlan, field: str, value: object, choices: tuple[str, ...]) -> None:
    """Refuse a value outside its allowed choices."""
    if value not in choices:
        raise _fail(plan, field, f"{value!r} is not one of {list(choices)}")


def _check_currency(plan: PricePlan) -> None:
    """Refuse a currency without known minor units."""
    try:
        minor_units(plan.currency)
    except BillingError as error:
        raise _fail(plan, "currency", str(error)) from None


def _check_amount(plan: PricePlan, field: str, value: object, positive: bool = False) -> None:
    """Refuse a non-Decimal (float included), non-finite or negative amount."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise _fail(plan, field, f"must be a finite Decimal, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise _fail(plan, field, f"must be {'positive' if positive else 'zero or more'}")


def _check_price_fields(plan: PricePlan) -> None:
    """Require ``unit_price`` for non-tiered models and a whole ``period_months`` >= 1."""
    if plan.unit_price is not None:
        _check_amount(plan, "unit_price", plan.unit_price)
    elif plan.model not in (PriceModel.GRADUATED, PriceModel.VOLUME):
        raise _fail(plan, "unit_price", f"a {plan.model} plan needs a unit price")
    months = plan.period_months
    if isinstance(months, bool) or not isinstance(months, int) or months < 1:
        raise _fail(plan, "period_months", f"must be a whole number >= 1, got {months!r}")


def _check_tiers(plan: PricePlan) -> None:
    """Require ascending tiers, open-ended last, for graduated and volume plans only."""
    if plan.model not in (PriceModel.GRADUATED, PriceModel.VOLUME):
        if plan.tiers:
            raise _fail(plan, "tiers", f"a {plan.model} plan takes no tiers")
        return
    if not plan.tiers:
        raise _fail(plan, "tiers", f"a {plan.model} plan needs at least one tier")
    previous = Decimal(0)
    for index, tier in enumerate(plan.tiers):
        _check_amount(plan, f"tiers[{index}].unit_price", tier.unit_price)
        _check_amount(plan, f"tiers[{index}].flat_fee", tier.flat_fee)
        if tier.up_to is None:
            if index != len(plan.tiers) - 1:
                raise _fail(plan, "tiers", f"only the last tier may be open-ended (tier {index})")
            continue
        _check_amount(plan, f"tiers[{index}].up_to", tier.up_to, positive=True)
        if tier.up_to <= previous:
            raise _fail(plan, "tiers", f"tier {index} up_to {tier.up_to} is not ascending")
        previous = tier.up_to
    if plan.tiers[-1].up_to is not None:
        raise _fail(plan, "tiers", "the last tier must be open-ended (up_to=None)")


def _check_package(plan: PricePlan) -> None:
    """Require a positive ``package_size`` for package plans and none for others."""
    if plan.model == PriceModel.PACKAGE:
        _check_amount(plan, "package_size", plan.package_size, positive=True)
    elif plan.package_size is not None:
        raise _fail(plan, "package_size", f"a {plan.model} plan takes no package size")


def _check_timing(plan: PricePlan) -> None:
    """Require advance or arrears timing for recurring plans and none for others."""
    if plan.model == PriceModel.RECURRING:
        _check_choice(plan, "timing", plan.timing, TIMINGS)
    elif plan.timing is not None:
        raise _fail(plan, "timing", f"a {plan.model} plan takes no timing")


def _quantity(value: Decimal) -> Decimal:
    """Return a quantity as an exact Decimal; negative or float quantities are refused."""
    try:
        quantity = to_decimal(value)
    except BillingError as error:
        raise PricingError(f"quantity: {error}") from None
    if quantity < 0:
        raise PricingError(f"quantity must not be negative, got {quantity}")
    return quantity


def _require_model(plan: PricePlan, models: tuple[str, ...], operation: str) -> None:
    """Refuse to price a plan with an operation meant for other models."""
    if plan.model not in models:
        raise PricingError(
            f"price plan {plan.code!r}: {operation} cannot price a {plan.model} plan"
        )


def _rated(
    plan: PricePlan, quantity: Decimal, amount: Decimal, list_price: Decimal, rounding: str
) -> Rated:
    """Derive the effective unit price from the amount, already rounded once."""
    if quantity == 0:
        return Rated(quantity, list_price, amount)
    unit_price = round_quotient(amount, quantity, UNIT_PRICE_PLACES, rounding)
    return Rated(quantity, unit_price, amount)


def _graduated(tiers: tuple[Tier, ...], quantity: Decimal) -> Decimal:
    """Price each slice of the quantity at its own tier, plus each touched tier's flat fee."""
    total, floor = Decimal(0), Decimal(0)
    for tier in tiers:
        ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if ceiling <= floor:
            break
        slice_price = exact_product(exact_difference(ceiling, floor), tier.unit_price)
        total = exact_sum((total, slice_price, tier.flat_fee))
        floor = ceiling
    return total


def _volume(tiers: tuple[Tier, ...], quantity: Decimal) -> Decimal:
    """Price the whole quantity at the tier it falls in, plus that tier's flat fee."""
    tier = next(t for t in tiers if t.up_to is None or quantity <= t.up_to)
    return exact_sum((exact_product(quantity, tier.unit_price), tier.flat_fee))


def _packages(quantity: Decimal, size: Decimal) -> Decimal:
    """The number of whole packages of ``size`` that hold ``quantity`` (rounded up)."""
    whole, rest = divmod_exact(quantity, size)
    return exact_sum((whole, Decimal(1))) if rest else whole


def _usage_amount(plan: PricePlan, quantity: Decimal) -> Decimal:
    """Return the exact, unrounded amount of a usage quantity under the plan's model."""
    if quantity == 0:
        return Decimal(0)
    if plan.model == PriceModel.GRADUATED:
        return _graduated(plan.tiers, quantity)
    if plan.model == PriceModel.VOLUME:
        return _volume(plan.tiers, quantity)
    price = _list_price(plan)
    if plan.model == PriceModel.PACKAGE:
        assert plan.package_size is not None  # validated by PricePlan.__post_init__
        return exact_product(_packages(quantity, plan.package_size), price)
    return exact_product(quantity, price)


def _list_price(plan: PricePlan) -> Decimal:
    """Return the plan's quoted unit price (the first tier's for tiered plans)."""
    return plan.unit_price if plan.unit_price is not None else plan.tiers[0].unit_price


def rate_usage(plan: PricePlan, quantity: Decimal, rounding: str) -> Rated:
    """Rate a usage quantity (per_unit, graduated, volume or package), rounded once."""
    _require_model(plan, USAGE_MODELS, "rate_usage")
    exact = _quantity(quantity)
    amount = quantize_money(_usage_amount(plan, exact), plan.currency, rounding)
    return _rated(plan, exact, amount, _list_price(plan), rounding)


def _price(plan: PricePlan, price_override: Decimal | None) -> Decimal:
    """Return the override price when given, else the plan's unit price."""
    if price_override is None:
        return _list_price(plan)
    try:
        return to_decimal(price_override)
    except BillingError as error:
        raise PricingError(f"price plan {plan.code!r}: price_override: {error}") from None


def recurring_fee(
    plan: PricePlan,
    quantity: Decimal,
    cycle: Period,
    active: Period | None,
    cycle_months: int,
    rounding: str,
    price_override: Decimal | None = None,
) -> Rated:
    """Return a cycle fee: price x quantity x cycle_months / period_months, prorated, rounded."""
    _require_model(plan, (PriceModel.RECURRING.value,), "recurring_fee")
    if isinstance(cycle_months, bool) or not isinstance(cycle_months, int) or cycle_months < 1:
        raise PricingError(f"cycle_months must be a whole number >= 1, got {cycle_months!r}")
    price = _price(plan, price_override)
    exact = _quantity(quantity)
    factor = proration_factor(active, cycle, plan.proration)
    prorated = exact_product(price, exact, Decimal(cycle_months * factor.numerator))
    amount = round_quotient(
        prorated,
        Decimal(plan.period_months * factor.denominator),
        minor_units(plan.currency),
        rounding,
    )
    return _rated(plan, exact, amount, price, rounding)


def one_time_fee(
    plan: PricePlan, quantity: Decimal, rounding: str, price_override: Decimal | None = None
) -> Rated:
    """Return a one-time charge: price x quantity, rounded once."""
    _require_model(plan, (PriceModel.ONE_TIME.value,), "one_time_fee")
    price = _price(plan, price_override)
    exact = _quantity(quantity)
    amount = quantize_money(exact_product(exact, price), plan.currency, rounding)
    return _rated(plan, exact, amount, price, rounding)


def item_plan_problem(item_type: str, plan_code: str, model: str) -> str | None:
    """Why a price plan of ``model`` cannot price an item of ``item_type`` (None: it can)."""
    models = ITEM_MODELS.get(item_type, ())
    if model in models:
        return None
    wanted = " or ".join(models) if len(models) < 3 else f"{', '.join(models[:-1])} or {models[-1]}"
    return (
        f"a {item_type} item cannot be billed on price plan {plan_code!r}, a {model} plan; "
        f"it needs a {wanted} plan"
    )
