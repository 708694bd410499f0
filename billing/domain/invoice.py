"""Assemble a bill from charges (Kill Bill's ``generate_invoice``): returns a draft, never saves.

Each line's tax is rounded once; every total is the exact sum of its lines, so
``net + tax == gross`` on the bill and on each line (EN 16931 BR-CO-10 style totals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from billing.domain.errors import MoneyError, PeriodError, PricingError
from billing.domain.money import LINE_ROUNDING, exact_sum, quantize_money, to_decimal
from billing.domain.tax import TaxSummaryRow, line_tax, summarize
from billing.domain.vat import LineTax


@dataclass(frozen=True)
class ChargeIn:
    """A rated charge to bill: its net ``amount`` is already rounded to the currency."""

    charge_id: int
    description: str
    period_start: date
    period_end: date
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    tax_category: str


@dataclass(frozen=True)
class DraftLine:
    """One bill line: the charge with its tax rate, rounded tax and gross amount."""

    charge_id: int
    description: str
    period_start: date
    period_end: date
    quantity: Decimal
    unit_price: Decimal
    net: Decimal
    tax_category: str
    tax_rate: Decimal
    tax: Decimal
    gross: Decimal
    vat_category: str = "S"
    """The EN 16931 VAT category (``billing.domain.vat``): S, Z, E, AE, K, G or O."""


@dataclass(frozen=True)
class DraftBill:
    """An unsaved bill: lines in (period_start, charge_id) order and totals summed from them."""

    currency: str
    bill_date: date
    due_date: date
    period_start: date
    period_end: date
    lines: tuple[DraftLine, ...]
    net: Decimal
    tax: Decimal
    gross: Decimal
    tax_summary: tuple[TaxSummaryRow, ...]


def _check_charges(currency: str, charges: Sequence[ChargeIn]) -> None:
    """Refuse an empty bill, duplicate charges, reversed periods and unrounded amounts."""
    if not charges:
        raise PricingError("a bill needs at least one charge")
    ids = [charge.charge_id for charge in charges]
    if len(set(ids)) != len(ids):
        raise PricingError(f"duplicate charge ids in {sorted(ids)}")
    for charge in charges:
        if charge.period_end < charge.period_start:
            raise PeriodError(f"charge {charge.charge_id}: period ends before it starts")
        amount = to_decimal(charge.amount)
        if not _is_rounded(amount, currency):
            raise MoneyError(f"charge {charge.charge_id}: {amount} is not rounded to {currency}")


@lru_cache(maxsize=1 << 16)
def _is_rounded(amount: Decimal, currency: str) -> bool:
    """Tell whether a finite amount is already rounded to the currency (pure: memoized)."""
    return quantize_money(amount, currency, LINE_ROUNDING) == amount


def _line_tax(taxes: Mapping[str, LineTax | str], category: str) -> LineTax:
    """Return the VAT of a tax category's lines, or raise ``PricingError`` naming it (a text
    in ``taxes`` says why the category has no VAT for this buyer)."""
    try:
        found = taxes[category]
    except KeyError:
        raise PricingError(f"no tax rate for tax category {category!r}") from None
    if isinstance(found, str):
        raise PricingError(found)
    return found


@lru_cache(maxsize=1 << 16, typed=True)
def _line_amounts(
    amount: Decimal, rate: Decimal, currency: str, rounding: str
) -> tuple[Decimal, Decimal, Decimal]:
    """A line's net, tax rounded once, and gross. Pure, and most lines of a bill run share their
    amount and rate: memoized."""
    net = quantize_money(amount, currency, rounding)
    tax = line_tax(net, rate, currency, rounding)
    return net, tax, exact_sum((net, tax))


def _draft_line(
    charge: ChargeIn, currency: str, taxes: Mapping[str, LineTax | str], rounding: str
) -> DraftLine:
    """Turn a charge into a bill line with its tax rounded once."""
    vat = _line_tax(taxes, charge.tax_category)
    rate = vat.rate
    net, tax, gross = _line_amounts(charge.amount, rate, currency, rounding)
    return DraftLine(
        charge_id=charge.charge_id,
        description=charge.description,
        period_start=charge.period_start,
        period_end=charge.period_end,
        quantity=charge.quantity,
        unit_price=charge.unit_price,
        net=net,
        tax_category=charge.tax_category,
        tax_rate=rate,
        tax=tax,
        gross=gross,
        vat_category=vat.category.value,
    )


def generate_invoice(
    *,
    currency: str,
    charges: Sequence[ChargeIn],
    taxes: Mapping[str, LineTax | str],
    bill_date: date,
    payment_terms_days: int,
    rounding: str = LINE_ROUNDING,
) -> DraftBill:
    """Assemble a draft bill: one line per charge, tax per line, totals summed from the lines.

    ``taxes`` holds the VAT of each tax category (``billing.domain.vat.determine``) for this
    buyer on ``bill_date``."""
    _check_charges(currency, charges)
    if payment_terms_days < 0:
        raise PeriodError(f"payment terms must be zero or more days, got {payment_terms_days}")
    ordered = sorted(charges, key=lambda charge: (charge.period_start, charge.charge_id))
    lines = tuple(_draft_line(charge, currency, taxes, rounding) for charge in ordered)
    net = quantize_money(exact_sum(line.net for line in lines), currency, rounding)
    tax = quantize_money(exact_sum(line.tax for line in lines), currency, rounding)
    return DraftBill(
        currency=currency,
        bill_date=bill_date,
        due_date=bill_date + timedelta(days=payment_terms_days),
        period_start=min(line.period_start for line in lines),
        period_end=max(line.period_end for line in lines),
        lines=lines,
        net=net,
        tax=tax,
        gross=exact_sum((net, tax)),
        tax_summary=summarize(
            (line.vat_category, line.tax_rate, line.net, line.tax) for line in lines
        ),
    )
