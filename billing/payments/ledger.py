"""Recording payments and refunds, and applying them to the account's open bills.

BRM: "the account balance is updated when a payment is recorded". Here:

- ``accounts.balance`` = bills' gross - settled payments + settled refunds - prepaid credits
  consumed (the expectation ``account_balance_matches_ledger``). Pending and failed payments
  do not move it.
- A settled payment is applied to open bills, the bill it was collected for first, then the
  oldest first: ``bills.amount_paid`` grows, and a fully paid bill's charges go open -> closed.
- What is paid beyond the open bills is credit (a negative balance). Credit left on an account
  is applied to the next bills by ``apply_credit`` (collect runs it first). The credit is
  never stored: it is ``open dues - balance``, so it cannot drift from the ledger.
- Prepaid credits (wallets) pay a bill like a settled payment applied to it
  (``pay_from_credits``): the wallet's consumption entry is the payment's record.

Every change is guarded by a status transition (``pending -> settled``) or a unique
idempotency key, so recording the same payment twice changes nothing. Nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing.domain.money import exact_sum
from billing.payments.errors import PaymentRecordError
from billing.store.models import (
    Account,
    Bill,
    Charge,
    ChargeStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
)
from billing.store.models_payments import AccountDunning, DunningState
from billing.store.sqlkit import (
    bulk_insert,
    bulk_update,
    dialect,
    id_in,
    insert_ignoring_duplicates,
    lock_for_update,
)

ZERO = Decimal(0)


@dataclass(frozen=True)
class OpenBill:
    id: int
    bill_no: str | None
    bill_date: date
    due: Decimal


def lock_account(session: Session, account_id: int) -> Account:
    """The account as stored now, locked for this transaction (a row lock on PostgreSQL)."""
    account = session.scalars(
        lock_for_update(session, select(Account).where(Account.id == account_id)),
        execution_options={"populate_existing": True},
    ).one_or_none()
    if account is None:
        raise PaymentRecordError(f"no account with id {account_id}")
    return account


def apply_credit(session: Session, account_id: int, *, first_bill_id: int | None = None) -> Decimal:
    """Apply the account's unapplied money (open dues - balance) to its open bills.

    The bill ``first_bill_id`` first, then oldest first. Returns the amount applied; closes the
    charges of every bill now fully paid, and clears a dunning state once nothing is due.
    """
    firsts = () if first_bill_id is None else (first_bill_id,)
    return apply_credits(session, {account_id: firsts})[account_id]


def apply_credits(session: Session, first_bills: Mapping[int, Sequence[int]]) -> dict[int, Decimal]:
    """``apply_credit`` for many accounts at once, in a handful of statements.

    ``first_bills`` maps each account to the bills its money goes to first, in that order;
    then oldest first. Returns the amount applied per account.
    """
    account_ids = sorted(first_bills)
    if not account_ids:
        return {}
    balances = lock_balances(session, account_ids)
    bills = _open_bills_of(session, account_ids)
    applied: dict[int, Decimal] = {}
    parts: list[dict[str, Any]] = []
    settled_up: list[int] = []
    for account_id in account_ids:
        own = bills.get(account_id, [])
        dues = exact_sum(b.due for b in own)
        left = min(dues - balances[account_id], dues)
        rank = {bill_id: n for n, bill_id in enumerate(first_bills[account_id])}
        own.sort(key=lambda b: rank.get(b.id, len(rank)))  # stable: then oldest first
        total = ZERO
        for bill in own:
            if left <= 0:
                break
            part = min(bill.due, left)
            parts.append({"id": bill.id, "amount_paid": part})
            left -= part
            total += part
        applied[account_id] = total
        if total == dues:
            settled_up.append(account_id)
    bulk_update(
        session,
        Bill.__table__,
        parts,
        values=lambda src: {"amount_paid": Bill.__table__.c.amount_paid + src.c.amount_paid},
    )
    _close_paid_charges(session, account_ids)
    _clear_dunning(session, settled_up)
    return applied


def pay_from_credits(session: Session, parts: Sequence[tuple[int, int, Decimal]]) -> None:
    """Prepaid credits (wallets, ``billing.ops.wallets``) paid bills: ``(account id, bill id,
    amount)`` each. As a settled payment applied to that bill: the bill's ``amount_paid``
    grows and the account's balance drops by the amount; a fully paid bill's charges close,
    and an account with nothing left due leaves dunning. The caller locked the accounts
    (``lock_balances``) and never pays a bill more than it owes."""
    if not parts:
        return
    per_bill: dict[int, Decimal] = defaultdict(lambda: ZERO)
    deltas: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for account_id, bill_id, amount in parts:
        per_bill[bill_id] += amount
        deltas[account_id] -= amount
    bulk_update(
        session,
        Bill.__table__,
        [{"id": bill_id, "amount_paid": amount} for bill_id, amount in sorted(per_bill.items())],
        values=lambda src: {"amount_paid": Bill.__table__.c.amount_paid + src.c.amount_paid},
    )
    _move_balances(session, deltas)
    account_ids = sorted(deltas)
    _close_paid_charges(session, account_ids)
    still_due = set(
        session.scalars(
            select(Bill.account_id)
            .where(id_in(session, Bill.account_id, account_ids), Bill.gross > Bill.amount_paid)
            .distinct()
        )
    )
    _clear_dunning(session, [a for a in account_ids if a not in still_due])


def lock_balances(session: Session, account_ids: Sequence[int]) -> dict[int, Decimal]:
    """The accounts' balances as stored now, locked in id order (row locks on PostgreSQL)."""
    rows = session.execute(
        lock_for_update(
            session,
            select(Account.id, Account.balance)
            .where(id_in(session, Account.id, account_ids))
            .order_by(Account.id),
        )
    )
    found = {account_id: balance for account_id, balance in rows}
    missing = set(account_ids) - set(found)
    if missing:
        raise PaymentRecordError(f"no account with id {min(missing)}")
    return found


def _open_bills_of(session: Session, account_ids: Sequence[int]) -> dict[int, list[OpenBill]]:
    """The accounts' bills not fully paid, oldest first, locked."""
    rows = session.execute(
        lock_for_update(
            session,
            select(
                Bill.id, Bill.account_id, Bill.bill_no, Bill.bill_date, Bill.gross, Bill.amount_paid
            )
            .where(id_in(session, Bill.account_id, account_ids), Bill.gross > Bill.amount_paid)
            .order_by(Bill.account_id, Bill.bill_date, Bill.id),
        )
    )
    found: dict[int, list[OpenBill]] = defaultdict(list)
    for r in rows:
        found[r.account_id].append(OpenBill(r.id, r.bill_no, r.bill_date, r.gross - r.amount_paid))
    return found


def _close_paid_charges(session: Session, account_ids: Sequence[int]) -> None:
    paid = select(Bill.id).where(
        id_in(session, Bill.account_id, account_ids), Bill.amount_paid >= Bill.gross
    )
    session.execute(
        update(Charge)
        .where(Charge.bill_id.in_(paid), Charge.status == ChargeStatus.OPEN)
        .values(status=ChargeStatus.CLOSED)
        .execution_options(synchronize_session=False)
    )


def _clear_dunning(session: Session, account_ids: Sequence[int]) -> None:
    if not account_ids:
        return
    session.execute(
        update(AccountDunning)
        .where(
            id_in(session, AccountDunning.account_id, account_ids),
            AccountDunning.state == DunningState.DUNNING,
        )
        .values(state=DunningState.CLEARED)
        .execution_options(synchronize_session=False)
    )


def _move_balance(session: Session, account_id: int, delta: Decimal) -> None:
    _move_balances(session, {account_id: delta})


def _move_balances(session: Session, deltas: Mapping[int, Decimal]) -> None:
    """Add each account's delta to its balance (one statement)."""
    bulk_update(
        session,
        Account.__table__,
        [{"id": account_id, "balance": delta} for account_id, delta in sorted(deltas.items())],
        values=lambda src: {"balance": Account.__table__.c.balance + src.c.balance},
    )


def bill_issued(
    session: Session, account_id: int, gross: Decimal, *, first_bill_id: int | None = None
) -> Decimal:
    """A bill issued outside a bill run (a credit note by hand, ``gross`` < 0): the balance
    moves by its gross, then the account's money is applied to its open bills, the bill
    ``first_bill_id`` first (the invoice a credit note corrects). What is left is credit, for
    the refund step. Returns the amount applied. The caller locked the account."""
    _move_balance(session, account_id, gross)
    return apply_credit(session, account_id, first_bill_id=first_bill_id)


def bills_issued(session: Session, gross_by_account: Mapping[int, Decimal]) -> dict[int, Decimal]:
    """Bills issued outside a bill run for many accounts at once (prepaid credits sold,
    ``billing.ops.wallets``): each balance moves by its bills' gross, then the account's money
    is applied to its open bills, oldest first. Returns the amount applied per account. The
    caller locked the accounts."""
    _move_balances(session, gross_by_account)
    return apply_credits(session, {account_id: () for account_id in gross_by_account})


def record_payment(
    session: Session,
    *,
    idempotency_key: str,
    account_id: int,
    amount: Decimal,
    currency: str,
    received_on: date,
    method: PaymentMethod,
    status: PaymentStatus,
    reference: str | None = None,
    bill_id: int | None = None,
    reason: str | None = None,
) -> int | None:
    """Insert a payment; a settled one is applied at once. None when the key exists already."""
    account = lock_account(session, account_id)
    if currency != account.currency:
        raise PaymentRecordError(
            f"account {account.ref} pays in {account.currency}, not {currency}"
        )
    if amount <= 0:
        raise PaymentRecordError(f"a payment is positive, not {amount}")
    inserted = insert_once(
        session,
        Payment,
        {
            "idempotency_key": idempotency_key,
            "account_id": account_id,
            "bill_id": bill_id,
            "method": method,
            "amount": amount,
            "currency": currency,
            "received_on": received_on,
            "status": status,
            "reference": reference,
            "reason": reason,
        },
    )
    if inserted is not None and status is PaymentStatus.SETTLED:
        _move_balance(session, account_id, -amount)
        apply_credit(session, account_id, first_bill_id=bill_id)
    return inserted


def record_pending_payments(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert many pending payments in one statement; the ids of those inserted, by key.

    Each row holds ``payments`` columns (idempotency_key, account_id, bill_id, method, amount,
    currency, received_on, reference). A key that exists already is skipped: a rerun adds
    nothing. Pending payments do not move the balance.
    """
    if not rows:
        return {}
    accounts = {
        r.id: r
        for r in session.execute(
            select(Account.id, Account.ref, Account.currency).where(
                id_in(session, Account.id, sorted({row["account_id"] for row in rows}))
            )
        )
    }
    for row in rows:
        account = accounts.get(row["account_id"])
        if account is None:
            raise PaymentRecordError(f"no account with id {row['account_id']}")
        if row["currency"] != account.currency:
            raise PaymentRecordError(
                f"account {account.ref} pays in {account.currency}, not {row['currency']}"
            )
        if row["amount"] <= 0:
            raise PaymentRecordError(f"a payment is positive, not {row['amount']}")
    inserted = bulk_insert(
        session,
        Payment.__table__,
        [{**row, "status": PaymentStatus.PENDING} for row in rows],
        on_conflict="nothing",
        returning=("idempotency_key", "id"),
    )
    return {key: payment_id for key, payment_id in inserted}


def insert_once(
    session: Session, model: type[Payment] | type[Refund], values: dict[str, Any]
) -> int | None:
    """Insert a payment or refund unless its idempotency key exists; its id, else None."""
    make = postgresql.insert if dialect(session) == "postgresql" else sqlite.insert
    table = cast(Table, model.__table__)
    stmt = (
        make(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(table.c.id)
    )
    return session.scalar(stmt)  # type: ignore[no-any-return]


def settle_payment(session: Session, payment_id: int, *, reference: str | None = None) -> bool:
    """pending -> settled: the balance drops and the money is applied. False if not pending."""
    return bool(settle_payments(session, {payment_id: reference}))


def settle_payments(session: Session, references: Mapping[int, str | None]) -> list[int]:
    """pending -> settled for many payments: balances drop, the money is applied.

    ``references`` maps payment ids to the processor's reference (None keeps the stored one).
    Each account's money goes to the bills its payments were for first (in payment id order),
    then oldest first. Returns the ids settled (those not pending are left as they are).
    """
    if not references:
        return []
    payment = Payment.__table__.c
    lock_balances(session, _accounts_of(session, list(references)))
    rows = bulk_update(
        session,
        Payment.__table__,
        [{"id": pid, "reference": ref} for pid, ref in sorted(references.items())],
        values=lambda src: {
            "status": PaymentStatus.SETTLED,
            "reference": func.coalesce(src.c.reference, payment.reference),
        },
        where=payment.status == PaymentStatus.PENDING,
        returning=("id", "account_id", "amount", "bill_id"),
    )
    rows.sort(key=lambda r: r.id)
    deltas: dict[int, Decimal] = defaultdict(lambda: ZERO)
    firsts: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        deltas[row.account_id] -= row.amount
        if row.bill_id is not None:
            firsts[row.account_id].append(row.bill_id)
    _move_balances(session, deltas)
    apply_credits(session, {account_id: firsts[account_id] for account_id in deltas})
    return [row.id for row in rows]


def _accounts_of(session: Session, payment_ids: Sequence[int]) -> list[int]:
    return sorted(
        set(
            session.scalars(
                select(Payment.account_id).where(id_in(session, Payment.id, payment_ids))
            )
        )
    )


def fail_payment(session: Session, payment_id: int, reason: str) -> bool:
    """pending -> failed (declined card, returned debit); the balance does not move."""
    return bool(fail_payments(session, {payment_id: reason}))


def fail_payments(session: Session, reasons: Mapping[int, str]) -> list[int]:
    """pending -> failed for many payments, each with its reason; returns the ids failed."""
    payment = Payment.__table__.c
    rows = bulk_update(
        session,
        Payment.__table__,
        [{"id": pid, "reason": reason} for pid, reason in sorted(reasons.items())],
        values=lambda src: {"status": PaymentStatus.FAILED, "reason": src.c.reason},
        where=payment.status == PaymentStatus.PENDING,
        returning=("id",),
    )
    return sorted(row.id for row in rows)


def settle_refund(session: Session, refund_id: int, *, reference: str | None = None) -> bool:
    """pending -> settled: the refunded credit leaves the account (its balance rises)."""
    return bool(settle_refunds(session, {refund_id: reference}))


def settle_refunds(session: Session, references: Mapping[int, str | None]) -> list[int]:
    """pending -> settled for many refunds (None keeps the stored reference); the ids settled."""
    if not references:
        return []
    refund = Refund.__table__.c
    account_ids = session.scalars(
        select(Refund.account_id).where(id_in(session, Refund.id, list(references)))
    )
    lock_balances(session, sorted(set(account_ids)))
    rows = bulk_update(
        session,
        Refund.__table__,
        [{"id": rid, "reference": ref} for rid, ref in sorted(references.items())],
        values=lambda src: {
            "status": PaymentStatus.SETTLED,
            "reference": func.coalesce(src.c.reference, refund.reference),
        },
        where=refund.status == PaymentStatus.PENDING,
        returning=("id", "account_id", "amount"),
    )
    deltas: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        deltas[row.account_id] += row.amount
    _move_balances(session, deltas)
    return sorted(row.id for row in rows)


def fail_refund(session: Session, refund_id: int) -> bool:
    """pending -> failed; the credit stays on the account for the next refund run."""
    return bool(fail_refunds(session, [refund_id]))


def fail_refunds(session: Session, refund_ids: Sequence[int]) -> list[int]:
    """pending -> failed for many refunds; returns the ids failed."""
    refund = Refund.__table__.c
    rows = bulk_update(
        session,
        Refund.__table__,
        [{"id": rid} for rid in sorted(refund_ids)],
        values=lambda _src: {"status": PaymentStatus.FAILED},
        where=refund.status == PaymentStatus.PENDING,
        returning=("id",),
    )
    return sorted(row.id for row in rows)


def enter_dunning(
    session: Session, account_id: int, bill_id: int, since: date, reason: str
) -> None:
    """Put the account in dunning (once: the account has one dunning row)."""
    insert_ignoring_duplicates(
        session,
        AccountDunning.__table__,  # type: ignore[arg-type]
        [
            {
                "account_id": account_id,
                "state": DunningState.DUNNING,
                "since": since,
                "bill_id": bill_id,
                "reason": reason,
            }
        ],
    )
    session.execute(
        update(AccountDunning)
        .where(
            AccountDunning.account_id == account_id,
            AccountDunning.state == DunningState.CLEARED,
        )
        .values(state=DunningState.DUNNING, since=since, bill_id=bill_id, reason=reason)
        .execution_options(synchronize_session=False)
    )


def in_dunning(session: Session, account_ids: Sequence[int]) -> set[int]:
    return set(
        session.scalars(
            select(AccountDunning.account_id).where(
                id_in(session, AccountDunning.account_id, account_ids),
                AccountDunning.state == DunningState.DUNNING,
            )
        )
    )


def pending_refunds_of(session: Session, account_ids: Sequence[int]) -> dict[int, Decimal]:
    """Per account, credit already on its way back to the customer (accounts with some)."""
    rows = session.execute(
        select(Refund.account_id, func.sum(Refund.amount))
        .where(
            id_in(session, Refund.account_id, account_ids), Refund.status == PaymentStatus.PENDING
        )
        .group_by(Refund.account_id)
    )
    return {account_id: Decimal(total) for account_id, total in rows if total}
