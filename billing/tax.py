"""Tax per invoice line, and the tax breakdown summed from the already-rounded lines.

Tax is rounded once per line; the breakdown and the document totals are sums of those
rounded lines, so totals always reconcile with the lines to the minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from billing.errors import MoneyError
from billing.money import exact_sum, round_money, to_decimal


@dataclass(frozen=True)
class TaxLine:
    """One invoice line's contribution to the tax breakdown: rounded base and tax."""

    category: str
    rate: Decimal
    base: Decimal
    tax: Decimal


@dataclass(frozen=True)
class TaxSummaryRow:
    """One row of the tax breakdown: a (category, rate) with its summed base and tax."""

    category: str
    rate: Decimal
    base: Decimal
    tax: Decimal


def line_tax(net: Decimal, rate: Decimal, currency: str, rounding: str) -> Decimal:
    """Return the tax of one line, ``net x rate`` (rate like ``Decimal("0.20")``), rounded once."""
    rate = to_decimal(rate)
    if rate < 0:
        raise MoneyError(f"tax rate must not be negative, got {rate}")
    return round_money(Fraction(to_decimal(net)) * Fraction(rate), currency, rounding)


def tax_summary(lines: Iterable[TaxLine]) -> tuple[TaxSummaryRow, ...]:
    """Group lines by (category, rate), summing their rounded bases and taxes; sorted by key."""
    groups: dict[tuple[str, Decimal], list[TaxLine]] = {}
    for line in lines:
        groups.setdefault((line.category, line.rate), []).append(line)
    return tuple(
        TaxSummaryRow(
            category=category,
            rate=rate,
            base=exact_sum(line.base for line in group),
            tax=exact_sum(line.tax for line in group),
        )
        for (category, rate), group in sorted(groups.items(), key=lambda item: item[0])
    )
