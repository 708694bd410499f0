"""Prepaid credits (wallets): grants, purchases, the bill-day step that spends them before
collection, balances, and the movements' journal. The rules are pure, in
``billing.domain.wallets``; this module reads and writes them on a session, never commits.

**Credits in.** Every movement is a ``wallet_entries`` row under a unique ``entry_key``
(``billing.domain.charge_keys``), so doing anything twice writes nothing twice.

- A *grant* (free credits: ``billing wallet grant``, an import's ``grants``) is a lot at once,
  ``gnt:{wallet}:{reference}``.
- A *purchase* (``billing wallet buy``, an automatic top-up) is sold by a bill of its own: one
  line, a ``prepayment`` charge (``buy:{wallet}:{reference}`` or ``top:{wallet}:{date}``),
  tax category ``prepaid``, EN 16931 category O (a multi-purpose voucher: VAT is due when the
  credits pay a taxed supply). The bill (``pb:{charge key}``) is in the series of the
  account's bill unit, numbered at once by the numbering step's own ``assign_bill_numbers``,
  collected like any bill. **The lot is credited when the bill is issued**, in the same
  transaction (``lot:{charge id}``): credits bought are usable before they are paid, as any
  invoice is owed before it is paid.

**Credits out** (``apply_wallets_page``, bill day's ``apply_wallets`` step between numbering
and collection), for a page of accounts that have wallets, under their row locks:

1. the accounts' own money (unapplied credit) goes to their open bills first, as collection
   would apply it (``billing.payments.ledger.apply_credits``);
2. lots whose expiry is on or before ``as_of`` lose what they have left (``exp:{lot}``, dated
   their expiry day);
3. each issued invoice with an amount still due (not a credit note, not a purchase bill),
   oldest first, is paid from the account's wallets in its currency (``plan_consumption``):
   one ``spd:{lot}:{bill}`` entry per lot and bill; the bill's ``amount_paid`` rises and the
   balance drops, as a settled payment's would (``billing.payments.ledger.pay_from_credits``);
   collection then collects only what remains;
4. a wallet with a threshold whose balance is below it buys ``topup_amount``
   (``top:{wallet}:{as_of}``: once a day at most), unless an earlier top-up's bill is still
   unpaid; the new lot then pays what step 3 left due, so running the step again for the same
   date adds nothing.

**Journal** (``journal_entries``, written by the RevRec Summary Journal with the month's
revenue): credits bought are a customer prepayment, never revenue; their line gets no revenue
shares (``billing.ops.revrec``). See docs/architecture.md, "Prepaid credits".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from billing.domain import charge_keys
from billing.domain.credit_notes import CREDIT_NOTE
from billing.domain.enums import (
    AccountStatus,
    BillStatus,
    ChargeKind,
    ChargeStatus,
    WalletEntryKind,
)
from billing.domain.errors import BillingError
from billing.domain.money import LINE_ROUNDING, add_to_total, quantize_money
from billing.domain.results import Mergeable
from billing.domain.revenue import first_of_next_month
from billing.domain.wallets import (
    PREPAID_TAX_CATEGORY,
    PREPAID_TAX_CLASS,
    DueBill,
    Lot,
    MovementTotals,
    amount_problem,
    journal_lines,
    needs_topup,
    plan_consumption,
)
from billing.ops.numbering import assign_bill_numbers
from billing.payments.ledger import (
    apply_credits,
    bills_issued,
    lock_account,
    lock_balances,
    pay_from_credits,
)
from billing.store.models import Account, Bill, BillUnit, Charge, JournalEntry, TaxCategory
from billing.store.models_terms import Wallet, WalletEntry
from billing.store.sqlkit import bulk_insert, id_in, insert_ignoring_duplicates, lock_for_update

STEP = "apply_wallets"
PAGE_SIZE = 10_000
"""Accounts with wallets per transaction of the bill-day step."""
DEFAULT_WALLET_NAME = "Prepaid credits"
RECENT_MOVEMENTS = 10
LOTS = (WalletEntryKind.GRANT, WalletEntryKind.PURCHASE)


class WalletError(BillingError):
    """A wallet operation that cannot be done: unknown wallet, bad amount, no bill unit..."""


@dataclass
class WalletsResult(Mergeable):
    """What the bill-day step did (pages merge)."""

    accounts: int = 0
    """Accounts with wallets looked at."""
    lots_expired: int = 0
    expired_amounts: dict[str, Decimal] = field(default_factory=dict)
    consumptions: int = 0
    """Consumption entries written (one per lot and bill)."""
    bills_paid: int = 0
    """Bills prepaid credits paid something of."""
    consumed_amounts: dict[str, Decimal] = field(default_factory=dict)
    topups: int = 0
    topup_amounts: dict[str, Decimal] = field(default_factory=dict)
    topup_bills: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Plain values, for a task result or a report."""

        def amounts(totals: dict[str, Decimal]) -> dict[str, str]:
            return {c: str(quantize_money(v, c, LINE_ROUNDING)) for c, v in sorted(totals.items())}

        return {
            "accounts": self.accounts,
            "lots expired": self.lots_expired,
            "expired": amounts(self.expired_amounts),
            "consumptions": self.consumptions,
            "bills paid": self.bills_paid,
            "consumed": amounts(self.consumed_amounts),
            "top-ups": self.topups,
            "top-up amounts": amounts(self.topup_amounts),
            "top-up bills": sorted(self.topup_bills),
        }


# --- finding wallets -------------------------------------------------------------------------


def find_wallet(session: Session, ref: str, *, create_on: date | None = None) -> Wallet:
    """The wallet ``ref`` names: a wallet's ref, else an account's ref whose only wallet it is.

    An account without a wallet gets one (``{account ref}-credits``, in its currency) when
    ``create_on`` is given; an account with several must name one.
    """
    wallet = session.scalars(select(Wallet).where(Wallet.ref == ref)).one_or_none()
    if wallet is not None:
        return wallet
    account = session.scalars(select(Account).where(Account.ref == ref)).one_or_none()
    if account is None:
        raise WalletError(f"no wallet and no account with ref {ref!r}")
    wallets = list(
        session.scalars(
            select(Wallet)
            .where(Wallet.account_id == account.id)
            .order_by(Wallet.priority, Wallet.id)
        )
    )
    if len(wallets) == 1:
        return wallets[0]
    if wallets:
        names = ", ".join(w.ref for w in wallets)
        raise WalletError(f"account {ref!r} has {len(wallets)} wallets ({names}): name one")
    if create_on is None:
        raise WalletError(f"account {ref!r} has no wallet")
    wallet = Wallet(
        ref=f"{account.ref}-credits"[:64],
        account_id=account.id,
        name=DEFAULT_WALLET_NAME,
        currency=account.currency,
        priority=0,
        created_on=create_on,
    )
    session.add(wallet)
    session.flush()
    return wallet


def _checked_amount(amount: Decimal, currency: str, what: str) -> Decimal:
    problem = amount_problem(amount, currency)
    if problem:
        raise WalletError(f"{what}: {problem}")
    return amount


def _checked_reference(reference: str) -> str:
    try:
        return charge_keys.checked_reference(reference)
    except ValueError as error:
        raise WalletError(f"key {reference!r}: {error}") from None


def default_reference(on: date, amount: Decimal, expires_on: date | None = None) -> str:
    """A grant's or a purchase's key when the caller gives none: its date, amount and expiry
    (``2027-02-01/50.00/2027-06-30``). Running the same command again adds nothing; to give
    the same amount twice on one day, give each its own key."""
    text = f"{on.isoformat()}/{amount:f}"
    return f"{text}/{expires_on.isoformat()}" if expires_on else text


# --- credits in: grants ----------------------------------------------------------------------


@dataclass(frozen=True)
class Granted:
    """A grant, as stored; ``inserted`` is False when its key was there already."""

    wallet_ref: str
    account_ref: str
    key: str
    amount: Decimal
    currency: str
    on_date: date
    expires_on: date | None
    inserted: bool


def grant_credits(
    session: Session,
    wallet: Wallet,
    amount: Decimal,
    *,
    on: date,
    reference: str,
    expires_on: date | None = None,
    description: str | None = None,
) -> Granted:
    """Free credits for ``wallet``: a lot of ``amount`` from ``on``, expiring on ``expires_on``
    (its credit left that day expires). Its key is ``gnt:{wallet}:{reference}``: granting
    again under the same reference writes nothing (a different amount or expiry is refused)."""
    _checked_amount(amount, wallet.currency, f"grant to wallet {wallet.ref}")
    if expires_on is not None and expires_on <= on:
        raise WalletError(f"a grant expiring on {expires_on} must start before, not on {on}")
    account = lock_account(session, wallet.account_id)
    key = charge_keys.grant(wallet.id, _checked_reference(reference))
    stored = session.scalars(select(WalletEntry).where(WalletEntry.entry_key == key)).one_or_none()
    if stored is not None:
        if (stored.amount, stored.on_date, stored.expires_on) != (amount, on, expires_on):
            raise WalletError(
                f"grant {reference!r} of wallet {wallet.ref} is stored with {stored.amount:f} "
                f"from {stored.on_date} expiring {stored.expires_on}; it is never changed"
            )
        return Granted(
            wallet.ref, account.ref, key, stored.amount, wallet.currency, on, expires_on, False
        )
    session.add(
        WalletEntry(
            entry_key=key,
            wallet_id=wallet.id,
            kind=WalletEntryKind.GRANT,
            amount=amount,
            on_date=on,
            expires_on=expires_on,
            description=(description or f"Granted credits ({reference})")[:200],
        )
    )
    session.flush()
    return Granted(wallet.ref, account.ref, key, amount, wallet.currency, on, expires_on, True)


# --- credits in: purchases -------------------------------------------------------------------


@dataclass(frozen=True)
class _Sale:
    """A purchase to bill: its prepayment charge's key, the wallet, the amount, the expiry."""

    charge_key: str
    wallet_id: int
    account_id: int
    currency: str
    amount: Decimal
    description: str
    expires_on: date | None = None


@dataclass(frozen=True)
class Sold:
    """A purchase bill issued and its lot credited."""

    wallet_id: int
    account_id: int
    bill_id: int
    bill_no: str
    charge_key: str
    currency: str
    amount: Decimal
    lot_id: int


def ensure_prepaid_category(session: Session) -> None:
    """The tax category of prepayment lines (``prepaid``, VAT category O), inserted if missing;
    refused when a category of that code says anything else."""
    tax_class = PREPAID_TAX_CLASS
    insert_ignoring_duplicates(
        session,
        TaxCategory.__table__,
        [
            {
                "code": tax_class.code,
                "name": "Prepaid credits (multi-purpose voucher)",
                "vat_category": tax_class.category.value,
                "supply": tax_class.supply.value,
                "exemption_code": tax_class.exemption_code,
                "exemption_reason": tax_class.exemption_reason,
            }
        ],
    )
    stored = session.scalar(
        select(TaxCategory.vat_category).where(TaxCategory.code == tax_class.code)
    )
    if stored != tax_class.category.value:
        raise WalletError(
            f"tax category {PREPAID_TAX_CATEGORY!r} exists with VAT category {stored}: prepaid "
            "credits are sold outside the scope of VAT (O); rename that category"
        )


def _sell(session: Session, sales: Sequence[_Sale], as_of: date, run_id: str | None) -> list[Sold]:
    """Bill each sale on a bill of its own, number the bills, credit their lots.

    A sale whose bill key exists already is skipped (a rerun). The accounts are locked.
    """
    if not sales:
        return []
    ensure_prepaid_category(session)
    accounts = sorted({s.account_id for s in sales})
    units = {
        row.account_id: row
        for row in session.execute(
            select(
                BillUnit.account_id,
                func.min(BillUnit.id).label("unit_id"),
            )
            .where(id_in(session, BillUnit.account_id, accounts))
            .group_by(BillUnit.account_id)
        )
    }
    unit_ids = [row.unit_id for row in units.values()]
    series = dict(
        session.execute(
            select(BillUnit.id, BillUnit.series_code).where(id_in(session, BillUnit.id, unit_ids))
        )
        .tuples()
        .all()
    )
    terms = dict(
        session.execute(
            select(Account.id, Account.payment_terms_days).where(
                id_in(session, Account.id, accounts)
            )
        )
        .tuples()
        .all()
    )
    for sale in sales:
        if sale.account_id not in units:
            ref = session.scalar(select(Account.ref).where(Account.id == sale.account_id))
            raise WalletError(f"account {ref} has no bill unit to bill prepaid credits on")
    wanted = {charge_keys.purchase_bill(s.charge_key): s for s in sales}
    made = bulk_insert(
        session,
        Bill.__table__,
        [
            {
                "bill_key": bill_key,
                "account_id": s.account_id,
                "bill_unit_id": units[s.account_id].unit_id,
                "series_code": series[units[s.account_id].unit_id],
                "status": BillStatus.BILLED,
                "bill_date": as_of,
                "due_date": as_of + timedelta(days=terms[s.account_id]),
                "period_start": as_of,
                "period_end": as_of + timedelta(days=1),
                "currency": s.currency,
                "net": s.amount,
                "tax": Decimal(0),
                "gross": s.amount,
                "amount_paid": Decimal(0),
                "run_id": run_id,
            }
            for bill_key, s in wanted.items()
        ],
        on_conflict="nothing",
        returning=("bill_key", "id"),
    )
    if not made:
        return []
    bill_ids = {bill_key: bill_id for bill_key, bill_id in made}
    new = [(bill_ids[key], wanted[key]) for key in sorted(bill_ids)]
    charges = dict(
        bulk_insert(
            session,
            Charge.__table__,
            [
                {
                    "charge_key": s.charge_key,
                    "account_id": s.account_id,
                    "bill_unit_id": units[s.account_id].unit_id,
                    "contract_item_id": None,
                    "kind": ChargeKind.PREPAYMENT,
                    "description": s.description,
                    "period_start": as_of,
                    "period_end": as_of + timedelta(days=1),
                    "bill_on": as_of,
                    "quantity": Decimal(1),
                    "unit_price": s.amount,
                    "amount": s.amount,
                    "currency": s.currency,
                    "tax_category": PREPAID_TAX_CATEGORY,
                    "status": ChargeStatus.OPEN,
                    "bill_id": bill_id,
                    "line_no": 1,
                    "tax_rate": Decimal(0),
                    "tax": Decimal(0),
                    "vat_category": PREPAID_TAX_CLASS.category.value,
                    "immediate": False,
                    "created_on": as_of,
                }
                for bill_id, s in new
            ],
            returning=("charge_key", "id"),
        )
    )
    assign_bill_numbers(session, sorted({series[units[s.account_id].unit_id] for _, s in new}))
    gross: dict[int, Decimal] = defaultdict(Decimal)
    for _, s in new:
        gross[s.account_id] += s.amount
    bills_issued(session, gross)
    numbers = dict(
        session.execute(
            select(Bill.id, Bill.bill_no).where(id_in(session, Bill.id, [b for b, _ in new]))
        )
        .tuples()
        .all()
    )
    lots = dict(
        bulk_insert(
            session,
            WalletEntry.__table__,
            [
                {
                    "entry_key": charge_keys.lot(charges[s.charge_key]),
                    "wallet_id": s.wallet_id,
                    "kind": WalletEntryKind.PURCHASE,
                    "amount": s.amount,
                    "on_date": as_of,
                    "expires_on": s.expires_on,
                    "lot_id": None,
                    "bill_id": bill_id,
                    "charge_id": charges[s.charge_key],
                    "description": f"Bought on bill {numbers[bill_id]}",
                }
                for bill_id, s in new
            ],
            returning=("charge_id", "id"),
        )
    )
    return [
        Sold(
            s.wallet_id,
            s.account_id,
            bill_id,
            numbers[bill_id] or "",
            s.charge_key,
            s.currency,
            s.amount,
            lots[charges[s.charge_key]],
        )
        for bill_id, s in new
    ]


@dataclass(frozen=True)
class Bought:
    """``buy_credits``' answer: the bill that sells them (None: bought already)."""

    wallet_ref: str
    account_ref: str
    charge_key: str
    amount: Decimal
    currency: str
    bill_no: str | None
    inserted: bool


def buy_credits(
    session: Session,
    wallet: Wallet,
    amount: Decimal,
    *,
    as_of: date,
    reference: str,
    expires_on: date | None = None,
    run_id: str | None = None,
) -> Bought:
    """Sell ``amount`` of credits to ``wallet`` on ``as_of``: a bill of its own, issued at once
    (numbered), and the lot credited (expiring on ``expires_on``). Buying again under the same
    reference writes nothing."""
    _checked_amount(amount, wallet.currency, f"purchase for wallet {wallet.ref}")
    if expires_on is not None and expires_on <= as_of:
        raise WalletError(f"credits bought on {as_of} cannot expire on {expires_on}")
    account = lock_account(session, wallet.account_id)
    key = charge_keys.purchase(wallet.id, _checked_reference(reference))
    sold = _sell(
        session,
        [
            _Sale(
                key,
                wallet.id,
                wallet.account_id,
                wallet.currency,
                amount,
                wallet.name[:255],  # the PDF tags the line "Prepaid credits", translated
                expires_on,
            )
        ],
        as_of,
        run_id,
    )
    if sold:
        return Bought(wallet.ref, account.ref, key, amount, wallet.currency, sold[0].bill_no, True)
    stored = session.execute(
        select(Charge.amount, Bill.bill_no).join(Bill).where(Charge.charge_key == key)
    ).one()
    if stored.amount != amount:
        raise WalletError(
            f"purchase {reference!r} of wallet {wallet.ref} was billed for {stored.amount:f} "
            f"on {stored.bill_no}; it is never changed"
        )
    return Bought(wallet.ref, account.ref, key, amount, wallet.currency, stored.bill_no, False)


# --- credits out: the bill-day step ----------------------------------------------------------


def wallet_accounts(session: Session, *, after: int = 0, limit: int = PAGE_SIZE) -> list[int]:
    """The next ``limit`` accounts with a wallet after id ``after``, in id order."""
    return list(
        session.scalars(
            select(Wallet.account_id)
            .where(Wallet.account_id > after)
            .distinct()
            .order_by(Wallet.account_id)
            .limit(limit)
        )
    )


def _taken(wallets: Any) -> Any:
    """What consumption and expiry took from each lot (negative) of the ``wallets`` (a
    condition on ``WalletEntry.wallet_id``), by lot id."""
    return (
        select(WalletEntry.lot_id, func.sum(WalletEntry.amount).label("taken"))
        .where(WalletEntry.lot_id.is_not(None), wallets)
        .group_by(WalletEntry.lot_id)
        .subquery()
    )


def _lot_rows(session: Session, account_ids: Sequence[int]) -> list[Any]:
    """The accounts' lots with what each has left (over 0), its wallet and its dates."""
    of_accounts = select(Wallet.id).where(id_in(session, Wallet.account_id, account_ids))
    taken = _taken(WalletEntry.wallet_id.in_(of_accounts))
    remaining = WalletEntry.amount + func.coalesce(taken.c.taken, 0)
    return list(
        session.execute(
            select(
                WalletEntry.id,
                WalletEntry.wallet_id,
                WalletEntry.on_date,
                WalletEntry.expires_on,
                Wallet.account_id,
                Wallet.currency,
                Wallet.priority,
                remaining.label("remaining"),
            )
            .join(Wallet, Wallet.id == WalletEntry.wallet_id)
            .outerjoin(taken, taken.c.lot_id == WalletEntry.id)
            .where(
                id_in(session, Wallet.account_id, account_ids),
                WalletEntry.kind.in_(LOTS),
                remaining > 0,
            )
            .order_by(WalletEntry.id)
        )
    )


def _expire(session: Session, lots: Sequence[Any], as_of: date, result: WalletsResult) -> None:
    """An expiry entry of what each lot expired by ``as_of`` has left, dated its expiry day."""
    rows = [
        {
            "entry_key": charge_keys.expiry(lot.id),
            "wallet_id": lot.wallet_id,
            "kind": WalletEntryKind.EXPIRY,
            "amount": -lot.remaining,
            "on_date": lot.expires_on,
            "lot_id": lot.id,
            "description": f"Expired on {lot.expires_on.isoformat()}",
        }
        for lot in lots
        if lot.expires_on is not None and lot.expires_on <= as_of
    ]
    done = bulk_insert(
        session, WalletEntry.__table__, rows, on_conflict="nothing", returning=("lot_id", "amount")
    )
    currency = {lot.id: lot.currency for lot in lots}
    for lot_id, amount in done:
        result.lots_expired += 1
        add_to_total(result.expired_amounts, currency[lot_id], -amount)


def _due_bills(session: Session, account_ids: Sequence[int], as_of: date) -> list[Any]:
    """The accounts' issued invoices with an amount due, oldest first (not credit notes, not
    purchase bills), locked like a payment locks them."""
    query = (
        select(
            Bill.id,
            Bill.account_id,
            Bill.currency,
            Bill.bill_no,
            (Bill.gross - Bill.amount_paid).label("due"),
        )
        .where(
            id_in(session, Bill.account_id, account_ids),
            Bill.status == BillStatus.INVOICED,
            Bill.type_code != CREDIT_NOTE,
            Bill.gross > Bill.amount_paid,
            Bill.bill_date <= as_of,
            Bill.bill_key.not_like(charge_keys.like_purchase_bills()),
        )
        .order_by(Bill.account_id, Bill.bill_date, Bill.id)
    )
    return list(session.execute(lock_for_update(session, query)))


def _consume(
    session: Session, account_ids: Sequence[int], as_of: date, result: WalletsResult
) -> None:
    """Pay the accounts' due invoices from their lots (``plan_consumption``)."""
    bills = _due_bills(session, account_ids, as_of)
    if not bills:
        return
    lots = [
        Lot(r.id, r.account_id, r.wallet_id, r.currency, r.priority, r.expires_on, r.remaining)
        for r in _lot_rows(session, account_ids)
        if r.on_date <= as_of and (r.expires_on is None or r.expires_on > as_of)
    ]
    takes = plan_consumption([DueBill(b.id, b.account_id, b.currency, b.due) for b in bills], lots)
    numbers = {b.id: b.bill_no for b in bills}
    done = bulk_insert(
        session,
        WalletEntry.__table__,
        [
            {
                "entry_key": charge_keys.spend(t.lot_id, t.bill_id),
                "wallet_id": t.wallet_id,
                "kind": WalletEntryKind.CONSUMPTION,
                "amount": -t.amount,
                "on_date": as_of,
                "lot_id": t.lot_id,
                "bill_id": t.bill_id,
                "description": f"Paid bill {numbers[t.bill_id]}",
            }
            for t in takes
        ],
        on_conflict="nothing",
        returning=("entry_key",),
    )
    written = {key for (key,) in done}
    paid = [t for t in takes if charge_keys.spend(t.lot_id, t.bill_id) in written]
    pay_from_credits(session, [(t.account_id, t.bill_id, t.amount) for t in paid])
    result.consumptions += len(paid)
    result.bills_paid += len({t.bill_id for t in paid})
    for t in paid:  # amounts read back carry six decimals: the total in the currency's units
        add_to_total(
            result.consumed_amounts, t.currency, quantize_money(t.amount, t.currency, LINE_ROUNDING)
        )


def _balances(session: Session, wallet_ids: Sequence[int]) -> dict[int, Decimal]:
    """Each wallet's balance: the sum of its entries."""
    return {
        wallet_id: total
        for wallet_id, total in session.execute(
            select(WalletEntry.wallet_id, func.sum(WalletEntry.amount))
            .where(id_in(session, WalletEntry.wallet_id, wallet_ids))
            .group_by(WalletEntry.wallet_id)
        )
    }


def _top_up(
    session: Session, account_ids: Sequence[int], as_of: date, run_id: str | None
) -> list[Sold]:
    """A purchase of ``topup_amount`` for each active account's wallet below its threshold,
    unless an earlier top-up of the wallet is still unpaid."""
    wallets = list(
        session.execute(
            select(
                Wallet.id,
                Wallet.account_id,
                Wallet.currency,
                Wallet.name,
                Wallet.topup_threshold,
                Wallet.topup_amount,
            )  # fmt: skip
            .join(Account, Account.id == Wallet.account_id)
            .where(
                id_in(session, Wallet.account_id, account_ids),
                Wallet.topup_threshold.is_not(None),
                Account.status == AccountStatus.ACTIVE,
            )
            .order_by(Wallet.id)
        )
    )
    if not wallets:
        return []
    balances = _balances(session, [w.id for w in wallets])
    unpaid = {
        charge_keys.parse_key(str(charge_keys.parse_key(key).owner)).owner
        for key in session.scalars(
            select(Bill.bill_key).where(
                id_in(session, Bill.account_id, account_ids),
                Bill.bill_key.like(charge_keys.like_topup_bills()),
                Bill.gross > Bill.amount_paid,
            )
        )
    }
    sales = [
        _Sale(
            charge_keys.topup(w.id, as_of),
            w.id,
            w.account_id,
            w.currency,
            w.topup_amount,
            w.name[:255],  # tagged "Prepaid credits" on the PDF, as a purchase
        )
        for w in wallets
        if needs_topup(
            balances.get(w.id, Decimal(0)), w.topup_threshold, topup_unpaid=w.id in unpaid
        )
    ]
    return _sell(session, sales, as_of, run_id)


def apply_wallets_page(
    session: Session, account_ids: Sequence[int], as_of: date, run_id: str | None
) -> WalletsResult:
    """Bill day's wallet step for these accounts (ids in order), under their row locks:
    unapplied money first, expiry, consumption, top-ups, and consumption of the top-ups."""
    result = WalletsResult(accounts=len(account_ids))
    if not account_ids:
        return result
    lock_balances(session, account_ids)
    apply_credits(session, {account_id: () for account_id in account_ids})
    _expire(session, _lot_rows(session, account_ids), as_of, result)
    _consume(session, account_ids, as_of, result)
    sold = _top_up(session, account_ids, as_of, run_id)
    for sale in sold:
        result.topups += 1
        add_to_total(result.topup_amounts, sale.currency, sale.amount)
        result.topup_bills.append(sale.bill_no)
    if sold:
        _consume(session, sorted({s.account_id for s in sold}), as_of, result)
    return result


# --- balances --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LotInfo:
    kind: str
    on_date: date
    amount: Decimal
    remaining: Decimal
    expires_on: date | None
    description: str


@dataclass(frozen=True)
class MovementInfo:
    on_date: date
    kind: str
    amount: Decimal
    bill_no: str | None
    description: str


@dataclass(frozen=True)
class WalletInfo:
    """A wallet as an operator sees it: balance, open lots, last movements."""

    ref: str
    name: str
    currency: str
    priority: int
    topup_threshold: Decimal | None
    topup_amount: Decimal | None
    balance: Decimal
    lots: tuple[LotInfo, ...]
    movements: tuple[MovementInfo, ...]


def wallets_of(
    session: Session, account_id: int, *, movements: int = RECENT_MOVEMENTS
) -> tuple[WalletInfo, ...]:
    """The account's wallets in consumption order: balance, lots with credit left (soonest
    expiry first) and the last ``movements`` movements (newest first)."""
    wallets = list(
        session.scalars(
            select(Wallet)
            .where(Wallet.account_id == account_id)
            .order_by(Wallet.priority, Wallet.id)
        )
    )
    if not wallets:
        return ()
    ids = [w.id for w in wallets]
    balances = _balances(session, ids)
    taken = _taken(WalletEntry.wallet_id.in_(ids))
    remaining = WalletEntry.amount + func.coalesce(taken.c.taken, 0)
    lots: dict[int, list[LotInfo]] = defaultdict(list)
    for row in session.execute(
        select(WalletEntry, remaining.label("remaining"))
        .outerjoin(taken, taken.c.lot_id == WalletEntry.id)
        .where(WalletEntry.wallet_id.in_(ids), WalletEntry.kind.in_(LOTS), remaining > 0)
        .order_by(WalletEntry.expires_on.is_(None), WalletEntry.expires_on, WalletEntry.id)
    ):
        entry = row[0]
        lots[entry.wallet_id].append(
            LotInfo(
                str(entry.kind),
                entry.on_date,
                entry.amount,
                row.remaining,
                entry.expires_on,
                entry.description,
            )  # fmt: skip
        )
    recent: dict[int, list[MovementInfo]] = defaultdict(list)
    for wallet_id in ids:
        for entry, bill_no in session.execute(
            select(WalletEntry, Bill.bill_no)
            .outerjoin(Bill, Bill.id == WalletEntry.bill_id)
            .where(WalletEntry.wallet_id == wallet_id)
            .order_by(WalletEntry.on_date.desc(), WalletEntry.id.desc())
            .limit(movements)
        ).tuples():
            recent[wallet_id].append(
                MovementInfo(
                    entry.on_date, str(entry.kind), entry.amount, bill_no, entry.description
                )  # fmt: skip
            )
    return tuple(
        WalletInfo(
            ref=w.ref,
            name=w.name,
            currency=w.currency,
            priority=w.priority,
            topup_threshold=w.topup_threshold,
            topup_amount=w.topup_amount,
            balance=balances.get(w.id, Decimal(0)),
            lots=tuple(lots[w.id]),
            movements=tuple(recent[w.id]),
        )
        for w in wallets
    )


def account_wallets(session: Session, account_ref: str) -> tuple[WalletInfo, ...]:
    """``wallets_of`` the account ``account_ref``; ``WalletError`` when there is none."""
    account_id = session.scalar(select(Account.id).where(Account.ref == account_ref))
    if account_id is None:
        raise WalletError(f"no account with ref {account_ref!r}")
    return wallets_of(session, account_id)


# --- the journal -----------------------------------------------------------------------------


def movement_totals(session: Session, year: int, month: int) -> list[MovementTotals]:
    """The month's movements per currency (by their entries' ``on_date``)."""
    start = date(year, month, 1)
    lot = aliased(WalletEntry)
    rows = (
        session.execute(
            select(Wallet.currency, WalletEntry.kind, lot.kind, func.sum(WalletEntry.amount))
            .join(Wallet, Wallet.id == WalletEntry.wallet_id)
            .outerjoin(lot, lot.id == WalletEntry.lot_id)
            .where(WalletEntry.on_date >= start, WalletEntry.on_date < first_of_next_month(start))
            .group_by(Wallet.currency, WalletEntry.kind, lot.kind)
            .order_by(Wallet.currency)
        )
        .tuples()
        .all()
    )
    found: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for currency, kind, lot_kind, total in rows:
        bought = lot_kind == WalletEntryKind.PURCHASE
        name = {
            (WalletEntryKind.PURCHASE, False): "purchased",
            (WalletEntryKind.CONSUMPTION, True): "spent_purchased",
            (WalletEntryKind.CONSUMPTION, False): "spent_granted",
            (WalletEntryKind.EXPIRY, True): "expired_purchased",
            (WalletEntryKind.EXPIRY, False): "expired_granted",
        }.get((kind, bought))
        if name is not None:
            amount = quantize_money(abs(total), currency, LINE_ROUNDING)
            found[currency][name] = found[currency].get(name, Decimal(0)) + amount
    return [MovementTotals(currency, **values) for currency, values in sorted(found.items())]


def journal_entries(session: Session, year: int, month: int, *, post: bool) -> list[JournalEntry]:
    """The month's wallet movements as balanced journal entries (``journal_lines``)."""
    entries = []
    for totals in movement_totals(session, year, month):
        for pair in journal_lines(totals):
            text = f"RevRec {year:04d}-{month:02d} prepaid credits: {pair.what}"
            for account, debit, credit in (
                (pair.debit_account, pair.amount, Decimal(0)),
                (pair.credit_account, Decimal(0), pair.amount),
            ):
                entries.append(
                    JournalEntry(
                        year=year,
                        month=month,
                        gl_account=account,
                        product_id=None,
                        currency=totals.currency,
                        debit=debit,
                        credit=credit,
                        description=text,
                        posted=post,
                    )
                )
    return entries
