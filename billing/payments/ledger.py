"""Recording payments and refunds, and applying them to the account's open bills.

BRM: "the account balance is updated when a payment is recorded". Here:

- ``accounts.balance`` = bills' gross - settled payments + settled refunds (the expectation
  ``account_balance_matches_ledger``). Pending and failed payments do not move it.
- A settled payment is applied to open bills, the bill it was collected for first, then the
  oldest first: ``bills.amount_paid`` grows, and a fully paid bill's charges go open -> closed.
- What is paid beyond the open bills is credit (a negative balance). Credit left on an account
  is applied to the next bills by ``apply_credit`` (collect runs it first). The credit is
  never stored: it is ``open dues - balance``, so it cannot drift from the ledger.

Every change is guarded by a status transition (``pending -> settled``) or a unique
idempotency key, so recording the same payment twice changes nothing. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing.models import (
    Account,
    Bill,
    Charge,
    ChargeStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
)
from billing.models_payments import AccountDunning, DunningState
from billing.payments.errors import PaymentRecordError
from billing.sqlkit import dialect, id_in, insert_ignoring_duplicates, lock_for_update

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


def open_bills(session: Session, account_id: int) -> list[OpenBill]:
    """The account's bills not fully paid, oldest first."""
    rows = session.execute(
        lock_for_update(
            session,
            select(Bill.id, Bill.bill_no, Bill.bill_date, Bill.gross, Bill.amount_paid)
            .where(Bill.account_id == account_id, Bill.gross > Bill.amount_paid)
            .order_by(Bill.bill_date, Bill.id),
        )
    )
    return [OpenBill(r.id, r.bill_no, r.bill_date, r.gross - r.amount_paid) for r in rows]


def apply_credit(session: Session, account_id: int, *, first_bill_id: int | None = None) -> Decimal:
    """Apply the account's unapplied money (open dues - balance) to its open bills.

    The bill ``first_bill_id`` first, then oldest first. Returns the amount applied; closes the
    charges of every bill now fully paid, and clears a dunning state once nothing is due.
    """
    account = lock_account(session, account_id)
    bills = open_bills(session, account_id)
    dues = sum((b.due for b in bills), ZERO)
    left = min(dues - account.balance, dues)
    bills.sort(key=lambda b: b.id != first_bill_id)
    applied = ZERO
    for bill in bills:
        if left <= 0:
            break
        part = min(bill.due, left)
        session.execute(
            update(Bill)
            .where(Bill.id == bill.id)
            .values(amount_paid=Bill.amount_paid + part)
            .execution_options(synchronize_session=False)
        )
        left -= part
        applied += part
    _close_paid_charges(session, account_id)
    if applied == dues:
        _clear_dunning(session, account_id)
    return applied


def _close_paid_charges(session: Session, account_id: int) -> None:
    paid = select(Bill.id).where(Bill.account_id == account_id, Bill.amount_paid >= Bill.gross)
    session.execute(
        update(Charge)
        .where(Charge.bill_id.in_(paid), Charge.status == ChargeStatus.OPEN)
        .values(status=ChargeStatus.CLOSED)
        .execution_options(synchronize_session=False)
    )


def _clear_dunning(session: Session, account_id: int) -> None:
    session.execute(
        update(AccountDunning)
        .where(
            AccountDunning.account_id == account_id,
            AccountDunning.state == DunningState.DUNNING,
        )
        .values(state=DunningState.CLEARED)
        .execution_options(synchronize_session=False)
    )


def _move_balance(session: Session, account_id: int, delta: Decimal) -> None:
    session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(balance=Account.balance + delta)
        .execution_options(synchronize_session=False)
    )


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
    values: dict[str, object] = {"status": PaymentStatus.SETTLED}
    if reference is not None:
        values["reference"] = reference
    row = session.execute(
        update(Payment)
        .where(Payment.id == payment_id, Payment.status == PaymentStatus.PENDING)
        .values(**values)
        .returning(Payment.account_id, Payment.amount, Payment.bill_id)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None:
        return False
    _move_balance(session, row.account_id, -row.amount)
    apply_credit(session, row.account_id, first_bill_id=row.bill_id)
    return True


def fail_payment(session: Session, payment_id: int, reason: str) -> bool:
    """pending -> failed (declined card, returned debit); the balance does not move."""
    done = session.execute(
        update(Payment)
        .where(Payment.id == payment_id, Payment.status == PaymentStatus.PENDING)
        .values(status=PaymentStatus.FAILED, reason=reason)
        .returning(Payment.id)
        .execution_options(synchronize_session=False)
    ).first()
    return done is not None


def settle_refund(session: Session, refund_id: int, *, reference: str | None = None) -> bool:
    """pending -> settled: the refunded credit leaves the account (its balance rises)."""
    values: dict[str, object] = {"status": PaymentStatus.SETTLED}
    if reference is not None:
        values["reference"] = reference
    row = session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == PaymentStatus.PENDING)
        .values(**values)
        .returning(Refund.account_id, Refund.amount)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None:
        return False
    _move_balance(session, row.account_id, row.amount)
    return True


def fail_refund(session: Session, refund_id: int) -> bool:
    """pending -> failed; the credit stays on the account for the next refund run."""
    done = session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == PaymentStatus.PENDING)
        .values(status=PaymentStatus.FAILED)
        .returning(Refund.id)
        .execution_options(synchronize_session=False)
    ).first()
    return done is not None


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


def pending_refunds(session: Session, account_id: int) -> Decimal:
    """Credit already on its way back to the customer."""
    total = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.account_id == account_id, Refund.status == PaymentStatus.PENDING
        )
    )
    return Decimal(total) if total else ZERO
