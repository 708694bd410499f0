"""Prepaid credits (wallets), pure: which lots pay which bills, when a wallet tops up, how a
purchase is taxed, and the journal of the movements. No database here: billing/ops/wallets.py
reads the lots and the bills, asks these rules, and writes the entries.

- A **lot** is credits in (a grant, free; a purchase, bought) with an optional expiry. What it
  has left is its amount less what consumption and expiry took from it.
- **Consumption** pays an issued invoice's amount still due (gross - amount paid) from the
  account's wallets in the bill's currency: wallets in (priority, id) order, and within a
  wallet its lots by expiry (soonest first, lots that never expire last), then id. One bill
  after the other, oldest first; a lot and a bill meet at most once (``plan_consumption``).
- **Top-up**: a wallet with a threshold whose balance fell below it buys ``topup_amount``,
  unless an earlier top-up of it is still unpaid (``needs_topup``).
- **VAT**: prepaid credits are a multi-purpose voucher (Directive 2006/112/EC art. 30b(2),
  added by Directive 2016/1065): VAT is due when the credits pay a taxed supply, and that
  supply's invoice charges it. Selling them is outside the scope of VAT: EN 16931 category
  O, no rate (BR-O-05), on an invoice of its own (BR-O-11..14 forbid O beside any other
  category). The tax category ``prepaid`` says so (``PREPAID_TAX_CLASS``).
- **Journal** (French PCG accounts, as ``billing.ops.revrec``'s 487000 and 706000): buying
  credits is a customer prepayment, a liability, not revenue (``journal_lines``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.domain.errors import MoneyError
from billing.domain.money import minor_unit, to_decimal
from billing.domain.vat import TaxClass, VatCategory

ZERO = Decimal(0)
MAX_AMOUNT = Decimal(10) ** 12
"""Amounts stay under 10^12 (billing.store.types.Amount)."""

PREPAID_TAX_CATEGORY = "prepaid"
"""The tax category of a prepayment line (``charges.tax_category``)."""
PREPAID_EXEMPTION_REASON = (
    "Multi-purpose voucher: VAT is due when the credits pay a taxed supply "
    "(Directive 2006/112/EC, art. 30b(2))"
)
"""Printed as the line's VAT exemption reason (EN 16931 BT-120)."""
PREPAID_TAX_CLASS = TaxClass(
    PREPAID_TAX_CATEGORY,
    VatCategory.OUTSIDE_SCOPE,
    exemption_code="VATEX-EU-O",
    exemption_reason=PREPAID_EXEMPTION_REASON,
)
"""A class no catalogue import may declare (the importer takes S, Z and E only): the
operations insert it when they first sell credits (``billing.ops.wallets``)."""

# --- the general ledger (French PCG, like billing.ops.revrec's accounts) ---------------------
RECEIVABLE_ACCOUNT = "411000"
"""Customers (PCG 411 *clients*): what the customer owes, settled by consumption."""
PREPAYMENT_ACCOUNT = "419100"
"""Customer prepayments (PCG 4191 *clients, avances et acomptes reçus*): bought credits not
used yet, a liability."""
GRANTED_ACCOUNT = "709000"
"""Price reductions granted (PCG 709 *rabais, remises et ristournes accordés*): free credits
when they pay a bill (nothing is booked when they are granted, nor when they expire)."""
BREAKAGE_ACCOUNT = "758000"
"""Other operating income (PCG 758 *produits divers de gestion courante*): bought credits
that expired unused (breakage)."""
LEDGER_ACCOUNTS = frozenset({RECEIVABLE_ACCOUNT, PREPAYMENT_ACCOUNT})
"""Balance-sheet accounts: their entries are not revenue (the journal's ``recognized``)."""


def amount_problem(amount: Decimal, currency: str) -> str | None:
    """What is wrong with an amount of credits, or None: positive, in the currency's minor
    units (EUR cents), under 10^12."""
    try:
        value = to_decimal(amount)
        unit = minor_unit(currency)
    except MoneyError as error:
        return str(error)
    if value <= 0:
        return f"an amount of credits is positive, not {value}"
    if value >= MAX_AMOUNT:
        return f"{value} is too large (at most 10^12)"
    if value % unit:
        return f"{value} has more decimals than {currency} allows ({unit})"
    return None


@dataclass(frozen=True)
class Lot:
    """A lot that can pay now: credits in, not expired, with something left."""

    id: int
    account_id: int
    wallet_id: int
    currency: str
    priority: int
    expires_on: date | None
    remaining: Decimal


@dataclass(frozen=True)
class DueBill:
    """An issued invoice with an amount still due (gross - amount paid > 0)."""

    id: int
    account_id: int
    currency: str
    due: Decimal


@dataclass(frozen=True)
class Take:
    """What one lot pays of one bill."""

    lot_id: int
    wallet_id: int
    bill_id: int
    account_id: int
    currency: str
    amount: Decimal


def consumption_order(lot: Lot) -> tuple[int, int, bool, date, int]:
    """Wallets by (priority, id); in a wallet, lots expiring soonest first, never last, by id."""
    return (lot.priority, lot.wallet_id, lot.expires_on is None, lot.expires_on or date.max, lot.id)


def plan_consumption(bills: Sequence[DueBill], lots: Iterable[Lot]) -> list[Take]:
    """What each lot pays of each bill, bills in the order given (oldest first).

    A bill takes from the lots of its account and currency in ``consumption_order`` until it
    is paid or they are empty. A lot pays a bill at most once: it gives the bill all it has
    left or all the bill still owes.
    """
    pools: dict[tuple[int, str], list[Lot]] = defaultdict(list)
    for lot in lots:
        if lot.remaining > 0:
            pools[lot.account_id, lot.currency].append(lot)
    for pool in pools.values():
        pool.sort(key=consumption_order)
    left = {lot.id: lot.remaining for pool in pools.values() for lot in pool}
    takes: list[Take] = []
    for bill in bills:
        due = bill.due
        for lot in pools.get((bill.account_id, bill.currency), ()):
            if due <= 0:
                break
            part = min(due, left[lot.id])
            if part <= 0:
                continue
            takes.append(Take(lot.id, lot.wallet_id, bill.id, bill.account_id, bill.currency, part))
            left[lot.id] -= part
            due -= part
    return takes


def needs_topup(balance: Decimal, threshold: Decimal | None, *, topup_unpaid: bool) -> bool:
    """A wallet tops up when its balance is below its threshold, and no earlier top-up's bill
    is still unpaid: a declined card does not buy credits again and again."""
    return threshold is not None and balance < threshold and not topup_unpaid


@dataclass(frozen=True)
class MovementTotals:
    """A period's wallet movements in one currency, as positive amounts."""

    currency: str
    purchased: Decimal = ZERO
    spent_purchased: Decimal = ZERO
    spent_granted: Decimal = ZERO
    expired_purchased: Decimal = ZERO
    expired_granted: Decimal = ZERO


@dataclass(frozen=True)
class JournalPair:
    """One movement as a debit and a credit of the same amount."""

    debit_account: str
    credit_account: str
    amount: Decimal
    what: str


def journal_lines(totals: MovementTotals) -> list[JournalPair]:
    """The movements' journal: each non-zero movement as a balanced pair.

    ==========================  =================================  =========================
    movement                    debit                              credit
    ==========================  =================================  =========================
    credits bought (issued)     411000 receivable                  419100 prepayments
    bought credits pay a bill   419100 prepayments                 411000 receivable
    free credits pay a bill     709000 price reductions            411000 receivable
    bought credits expire       419100 prepayments                 758000 breakage
    free credits expire         nothing (nothing was booked)
    ==========================  =================================  =========================
    """
    pairs = (
        (RECEIVABLE_ACCOUNT, PREPAYMENT_ACCOUNT, totals.purchased, "credits bought"),
        (PREPAYMENT_ACCOUNT, RECEIVABLE_ACCOUNT, totals.spent_purchased, "bought credits used"),
        (GRANTED_ACCOUNT, RECEIVABLE_ACCOUNT, totals.spent_granted, "free credits used"),
        (PREPAYMENT_ACCOUNT, BREAKAGE_ACCOUNT, totals.expired_purchased, "bought credits expired"),
    )
    return [JournalPair(dr, cr, amount, what) for dr, cr, amount, what in pairs if amount != 0]
