"""Tax per invoice line, and the tax breakdown summed from the already-rounded lines.

Tax is rounded once per line; the breakdown and the document totals are sums of those
rounded lines, so totals always reconcile with the lines to the minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from billing.domain.errors import MoneyError
from billing.domain.money import exact_product, exact_sum, quantize_money, to_decimal


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
    return quantize_money(exact_product(to_decimal(net), rate), currency, rounding)


def tax_summary(lines: Iterable[TaxLine]) -> tuple[TaxSummaryRow, ...]:
    """Group lines by (category, rate), summing their rounded bases and taxes; sorted by key."""
    return summarize((line.category, line.rate, line.base, line.tax) for line in lines)


def summarize(lines: Iterable[tuple[str, Decimal, Decimal, Decimal]]) -> tuple[TaxSummaryRow, ...]:
    """``tax_summary`` of (category, rate, base, tax) tuples, for callers that hold no TaxLine."""
    groups: dict[tuple[str, Decimal], list[tuple[Decimal, Decimal]]] = {}
    for category, rate, base, tax in lines:
        groups.setdefault((category, rate), []).append((base, tax))
    return tuple(
        TaxSummaryRow(
            category=category,
            rate=rate,
            base=exact_sum(base for base, _ in group),
            tax=exact_sum(tax for _, tax in group),
        )
        for (category, rate), group in sorted(groups.items(), key=lambda item: item[0])
    )
