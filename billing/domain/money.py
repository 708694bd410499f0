"""Money as ``Decimal`` with an ISO 4217 currency: minor units, explicit rounding, exact splits.

Every rounding takes its mode as an argument; arithmetic runs in an exact local decimal context,
never the ambient one. Building money from a ``float`` (or a ``bool``) raises ``MoneyError``.
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType

from billing.domain.errors import MoneyError

MINOR_UNITS: Mapping[str, int] = MappingProxyType(
    {
        "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "CZK": 2,
        "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "INR": 2, "ISK": 0, "JOD": 3,
        "JPY": 0, "KRW": 0, "KWD": 3, "MAD": 2, "MXN": 2, "NOK": 2, "NZD": 2, "OMR": 3,
        "PLN": 2, "RON": 2, "SEK": 2, "SGD": 2, "TND": 3, "TRY": 2, "USD": 2, "XAF": 0,
        "XOF": 0, "ZAR": 2,
    }
)  # fmt: skip

LINE_ROUNDING = decimal.ROUND_HALF_UP
"""Rounding at the invoice line: half away from zero, the commercial rounding that EU tax
authorities expect, and symmetric so that a credit note mirrors its invoice to the cent."""

ROUNDING_MODES = frozenset(
    {
        decimal.ROUND_CEILING, decimal.ROUND_DOWN, decimal.ROUND_FLOOR, decimal.ROUND_HALF_DOWN,
        decimal.ROUND_HALF_EVEN, decimal.ROUND_HALF_UP, decimal.ROUND_UP, decimal.ROUND_05UP,
    }
)  # fmt: skip

_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    traps=[decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)
"""Context for operations that are exact (add, multiply, quantize); never used to divide."""


def minor_units(currency: str) -> int:
    """Return the number of decimals of ``currency`` (EUR 2, JPY 0, TND 3)."""
    try:
        return MINOR_UNITS[currency]
    except (KeyError, TypeError):
        raise MoneyError(f"unknown currency {currency!r}") from None


_MINOR_UNIT = {currency: Decimal((0, (1,), -units)) for currency, units in MINOR_UNITS.items()}
"""The smallest amount of each currency (EUR 0.01, JPY 1), the exponent it rounds to."""


def minor_unit(currency: str) -> Decimal:
    """Return the smallest amount of ``currency`` (EUR ``0.01``, JPY ``1``, TND ``0.001``)."""
    try:
        return _MINOR_UNIT[currency]
    except (KeyError, TypeError):
        raise MoneyError(f"unknown currency {currency!r}") from None


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Return ``value`` as a finite ``Decimal``; floats, bools and non-numbers are refused."""
    if type(value) is Decimal:  # already one: Decimal(value) would only copy it
        result = value
    elif isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise MoneyError(f"money cannot be built from {type(value).__name__} {value!r}")
    else:
        try:
            result = Decimal(value)
        except decimal.InvalidOperation:
            raise MoneyError(f"not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return result


def check_rounding(rounding: str) -> str:
    """Return ``rounding`` if it is one of the ``decimal.ROUND_*`` modes."""
    if rounding not in ROUNDING_MODES:
        raise MoneyError(f"unknown rounding mode {rounding!r}")
    return rounding


def quantize_money(amount: Decimal, currency: str, rounding: str) -> Decimal:
    """Round ``amount`` to the minor units of ``currency`` with the given rounding mode."""
    exponent = minor_unit(currency)
    rounding = check_rounding(rounding)
    rounded = to_decimal(amount).quantize(exponent, rounding=rounding, context=_EXACT)
    return _without_negative_zero(rounded)


def exact_product(*factors: Decimal) -> Decimal:
    """Multiply decimals exactly, whatever the ambient context precision."""
    return functools.reduce(_EXACT.multiply, factors, Decimal(1))


def exact_difference(minuend: Decimal, subtrahend: Decimal) -> Decimal:
    """Subtract exactly, whatever the ambient context precision."""
    return _EXACT.subtract(minuend, subtrahend)


def divmod_exact(dividend: Decimal, divisor: Decimal) -> tuple[Decimal, Decimal]:
    """The whole number of times ``divisor`` goes into ``dividend`` (toward zero), and the rest."""
    whole, rest = _EXACT.divmod(dividend, divisor)
    return whole, rest


def round_fraction(value: Fraction, places: int, rounding: str) -> Decimal:
    """Round an exact rational to ``places`` decimals; the only rounding is the final one."""
    return _round_ratio(value.numerator, value.denominator, places, rounding)


def round_quotient(dividend: Decimal, divisor: Decimal, places: int, rounding: str) -> Decimal:
    """Round ``dividend / divisor`` to ``places`` decimals, exactly as ``round_fraction`` of the
    exact quotient does, without building a ``Fraction``."""
    numerator, scale = to_decimal(dividend).as_integer_ratio()
    divisor_numerator, divisor_scale = to_decimal(divisor).as_integer_ratio()
    if divisor_numerator == 0:
        raise MoneyError(f"cannot divide {dividend} by zero")
    numerator, denominator = numerator * divisor_scale, scale * divisor_numerator
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    return _round_ratio(numerator, denominator, places, rounding)


def _round_ratio(numerator: int, denominator: int, places: int, rounding: str) -> Decimal:
    """Round ``numerator / denominator`` (``denominator > 0``) to ``places`` decimals, once."""
    whole, rest = divmod(numerator * 10**places, denominator)
    twice = 2 * rest
    marker = (
        Decimal(0) if rest == 0
        else Decimal("0.25") if twice < denominator
        else Decimal("0.5") if twice == denominator
        else Decimal("0.75")
    )  # fmt: skip
    nearest = _EXACT.add(Decimal(whole), marker)
    rounded = nearest.quantize(Decimal(1), rounding=check_rounding(rounding), context=_EXACT)
    return _without_negative_zero(_EXACT.scaleb(rounded, Decimal(-places)))


def _without_negative_zero(amount: Decimal) -> Decimal:
    """Turn ``-0.00`` into ``0.00`` so that a rounded-away amount never prints a sign."""
    return amount.copy_abs() if amount.is_zero() else amount


def round_money(value: Fraction, currency: str, rounding: str) -> Decimal:
    """Round an exact rational amount to the minor units of ``currency``."""
    return round_fraction(value, minor_units(currency), rounding)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """Sum decimals exactly, whatever the ambient context precision."""
    return functools.reduce(_EXACT.add, values, Decimal(0))


def allocate(total: Decimal, weights: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Split ``total`` by ``weights`` (largest remainder); the parts always sum to ``total``."""
    units = _to_minor_units(total, currency)
    exact = [Fraction(to_decimal(w)) for w in weights]
    if any(w < 0 for w in exact):
        raise MoneyError("allocation weights must not be negative")
    weight_sum = sum(exact, Fraction(0))
    if weight_sum == 0:
        raise MoneyError("allocation needs at least one positive weight")
    sign = -1 if units < 0 else 1
    shares = [abs(units) * w / weight_sum for w in exact]
    parts = [share.numerator // share.denominator for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for index in by_remainder[: abs(units) - sum(parts)]:
        parts[index] += 1
    return [_from_minor_units(sign * part, currency) for part in parts]


def _to_minor_units(amount: Decimal, currency: str) -> int:
    """Return ``amount`` as an integer count of minor units; it must already be rounded."""
    scale: int = 10 ** minor_units(currency)
    scaled = Fraction(to_decimal(amount)) * scale
    if scaled.denominator != 1:
        raise MoneyError(f"{amount} has more decimals than {currency} allows")
    return scaled.numerator


def _from_minor_units(units: int, currency: str) -> Decimal:
    """Return an integer count of minor units as an amount of ``currency``."""
    return _EXACT.scaleb(Decimal(units), Decimal(-minor_units(currency)))


@dataclass(frozen=True)
class Money:
    """An amount in one currency; adds and subtracts only with the same currency."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        """Refuse floats and unknown currencies; store the amount as a ``Decimal``."""
        object.__setattr__(self, "amount", to_decimal(self.amount))
        minor_units(self.currency)

    def __add__(self, other: Money) -> Money:
        """Add two amounts of the same currency, exactly."""
        return Money(_EXACT.add(self.amount, self._same(other).amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        """Subtract two amounts of the same currency, exactly."""
        return Money(_EXACT.subtract(self.amount, self._same(other).amount), self.currency)

    def __neg__(self) -> Money:
        """Return the opposite amount."""
        return Money(_EXACT.minus(self.amount), self.currency)

    def rounded(self, rounding: str) -> Money:
        """Return the amount rounded to the currency's minor units."""
        return Money(quantize_money(self.amount, self.currency, rounding), self.currency)

    def _same(self, other: Money) -> Money:
        """Return ``other`` if it is money in this currency, else raise ``MoneyError``."""
        if not isinstance(other, Money) or other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other!r}")
        return other


def add_to_total(totals: dict[str, Decimal], currency: str, amount: Decimal) -> None:
    """Add ``amount`` to the running total of its currency (totals per currency, in place)."""
    totals[currency] = totals.get(currency, Decimal(0)) + amount
