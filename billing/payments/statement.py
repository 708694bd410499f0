"""Payments from the bank: statement lines, settlements and returns of direct debits.

A bank-statement CSV (UTF-8) has the columns ``reference, account_ref, amount, currency, date``
and an optional ``bill_no``. Each line is either the settlement of a pending direct debit or
refund (its reference is the debit's or the refund's end-to-end id) or a new payment, recorded
settled under the idempotency key ``ref:{reference}`` and applied (the named bill first).
Importing the same file twice changes nothing. A bad line is rejected with its reason and leaves
nothing behind (each line has its own savepoint); the others load. A file that cannot be read
(not UTF-8, not CSV, a missing column) raises ``PaymentRecordError`` and imports nothing.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain import charge_keys
from billing.domain.errors import MoneyError
from billing.domain.money import minor_units
from billing.domain.text import shown, text_problem
from billing.payments.config import RetryPolicy
from billing.payments.errors import PaymentRecordError
from billing.payments.ledger import (
    enter_dunning,
    fail_payments,
    record_payment,
    settle_payments,
    settle_refund,
)
from billing.store.models import Account, Bill, Payment, PaymentMethod, PaymentStatus, Refund
from billing.store.types import to_storage

COLUMNS = ("reference", "account_ref", "amount", "currency", "date")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


@dataclass
class StatementReport:
    """What an import did: new payments, settled debits, lines seen before, rejected lines."""

    inserted: int = 0
    settled: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def parse_amount(text: str, currency: str) -> Decimal:
    """A positive amount in the currency's minor units; PaymentRecordError otherwise."""
    if not _DECIMAL.fullmatch(text.strip()):
        raise PaymentRecordError(f"amount {shown(text)} is not a positive decimal number")
    amount = Decimal(text.strip())
    try:
        places = minor_units(currency)
        to_storage(amount, "postgresql")
    except MoneyError as error:
        raise PaymentRecordError(str(error).replace(str(amount), shown(text)[1:-1])) from error
    if amount <= 0 or amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise PaymentRecordError(f"amount {text} is not a positive {currency} amount")
    return amount


def record_bank_payment(
    session: Session,
    *,
    reference: str,
    account_ref: str,
    amount: Decimal,
    currency: str,
    received_on: date,
    bill_no: str | None = None,
) -> str:
    """Record one payment received; ``inserted``, ``settled`` (a pending debit) or ``unchanged``."""
    if not reference.strip() or len(reference) > 90:
        raise PaymentRecordError("a payment needs a reference of 1 to 90 characters")
    for name, value in (
        ("reference", reference),
        ("account_ref", account_ref),
        ("bill_no", bill_no),
    ):
        problem = text_problem(value or "")
        if problem is not None:
            raise PaymentRecordError(f"{name} {shown(value)} {problem}")
    account = session.scalars(select(Account).where(Account.ref == account_ref)).one_or_none()
    if account is None:
        raise PaymentRecordError(f"unknown account {shown(account_ref)}")
    matched = _debit_by_reference(session, reference)
    if matched:
        debit_amount = sum((p.amount for p in matched), Decimal(0)).quantize(
            Decimal(1).scaleb(-minor_units(matched[0].currency))
        )
        if (matched[0].account_id, debit_amount, matched[0].currency) != (
            account.id,
            amount,
            currency,
        ):
            raise PaymentRecordError(
                f"reference {reference} is the debit of {debit_amount} {matched[0].currency} "
                f"on another account or amount"
            )
        return "settled" if settle_payments(session, {p.id: None for p in matched}) else "unchanged"
    known = _known(session, reference)
    if known is not None:
        if (known.account_id, known.amount, known.currency) != (account.id, amount, currency):
            raise PaymentRecordError(
                f"reference {shown(reference)} was recorded as "
                f"{known.amount.quantize(Decimal(1).scaleb(-minor_units(known.currency)))} "
                f"{known.currency} "
                f"from another account or for another amount; this line says {amount} {currency}"
            )
        return "unchanged"
    bill_id = _bill_id(session, account.id, bill_no) if bill_no else None
    inserted = record_payment(
        session,
        idempotency_key=charge_keys.statement_payment(reference),
        account_id=account.id,
        amount=amount,
        currency=currency,
        received_on=received_on,
        method=PaymentMethod.INVOICE,
        status=PaymentStatus.SETTLED,
        reference=reference,
        bill_id=bill_id,
    )
    return "inserted" if inserted is not None else "unchanged"


def _debit_by_reference(session: Session, reference: str) -> list[Payment]:
    """The payments of the debit whose end-to-end id is ``reference``, one per bill.

    A debit that combines several bills of one mandate has one payment per bill, each with the
    debit's end-to-end id as its reference; the bank settles or returns them together.
    """
    return list(
        session.scalars(
            select(Payment)
            .where(
                Payment.reference == reference,
                Payment.method == PaymentMethod.DIRECT_DEBIT,
            )
            .order_by(Payment.id)
        )
    )


def _known(session: Session, reference: str) -> Payment | None:
    return session.scalars(
        select(Payment).where(Payment.idempotency_key == charge_keys.statement_payment(reference))
    ).one_or_none()


def _bill_id(session: Session, account_id: int, bill_no: str) -> int:
    bill_id = session.scalar(
        select(Bill.id).where(Bill.account_id == account_id, Bill.bill_no == bill_no)
    )
    if bill_id is None:
        raise PaymentRecordError(f"the account has no bill {shown(bill_no)}")
    return bill_id


def settle_reference(session: Session, reference: str) -> str:
    """The bank confirmed a pending debit or transfer: settle it (``settled``/``unchanged``)."""
    payments = _debit_by_reference(session, reference)
    if payments:
        settled = settle_payments(session, {p.id: None for p in payments})
        return "settled" if settled else "unchanged"
    refund = session.scalars(select(Refund).where(Refund.reference == reference)).first()
    if refund is not None:
        return "settled" if settle_refund(session, refund.id) else "unchanged"
    raise PaymentRecordError(f"no direct debit or transfer has the reference {reference!r}")


def return_debit(
    session: Session, reference: str, *, returned_on: date, reason: str, retry: RetryPolicy
) -> str:
    """The bank returned a pending debit: it failed, and is retried on the schedule.

    A debit combining several bills fails each bill's payment: each bill is open again and
    retried on its own schedule.
    """
    payments = _debit_by_reference(session, reference)
    if not payments:
        raise PaymentRecordError(f"no direct debit has the reference {reference!r}")
    if any(p.status is PaymentStatus.SETTLED for p in payments):
        raise PaymentRecordError(f"debit {reference} is settled already; it cannot be returned")
    if not fail_payments(session, {p.id: reason for p in payments}):
        return "unchanged"
    for payment in payments:
        if payment.bill_id is None:
            continue
        failures = session.scalar(
            select(func.count()).where(
                Payment.bill_id == payment.bill_id, Payment.status == PaymentStatus.FAILED
            )
        )
        if retry.exhausted(failures or 0):
            why = f"collection failed {failures} times: {reason}"
            enter_dunning(session, payment.account_id, payment.bill_id, returned_on, why)
    return "returned"


def import_payments_csv(session: Session, path: Path) -> StatementReport:
    """Import a bank-statement CSV into the session's transaction: all readable, or nothing."""
    report = StatementReport()
    with session.begin_nested():
        for number, row in _rows(path):
            problem = _line_problem(row)
            if problem is not None:
                report.rejected.append((number, problem))
                continue
            try:
                with session.begin_nested():
                    outcome = _import_line(session, row)
            except PaymentRecordError as error:
                report.rejected.append((number, str(error)))
                continue
            if outcome == "inserted":
                report.inserted += 1
            elif outcome == "settled":
                report.settled += 1
            else:
                report.unchanged += 1
    return report


def _import_line(session: Session, row: dict[str, str]) -> str:
    currency = row["currency"].strip().upper()
    return record_bank_payment(
        session,
        reference=row["reference"].strip(),
        account_ref=row["account_ref"].strip(),
        amount=parse_amount(row["amount"], currency),
        currency=currency,
        received_on=_date(row["date"]),
        bill_no=(row.get("bill_no") or "").strip() or None,
    )


def _line_problem(row: dict[str, str]) -> str | None:
    """The first field holding text no store can carry (a control character), or None."""
    for name, value in row.items():
        problem = text_problem(value)
        if problem is not None:
            return f"{name} {shown(value)} {problem}"
    return None


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """The file's lines as dicts, numbered from 1 after the header (streamed)."""
    with path.open("rb") as handle:
        reader = csv.DictReader(_decoded(handle, path))
        try:
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise PaymentRecordError(f"{path.name}: missing column(s) {', '.join(missing)}")
            for number, row in enumerate(reader, start=1):
                yield number, {k: v or "" for k, v in row.items() if k is not None}
        except csv.Error as error:
            raise PaymentRecordError(
                f"{path.name}: line {reader.line_num} is not valid CSV: {error}"
            ) from None


def _decoded(lines: Iterable[bytes], path: Path) -> Iterator[str]:
    """The file's physical lines as text; a line that is not UTF-8 names itself."""
    for number, line in enumerate(lines, start=1):
        try:
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise PaymentRecordError(
                f"{path.name}: line {number} is not UTF-8 text ({error.reason} at byte "
                f"{error.start + 1})"
            ) from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as error:
        raise PaymentRecordError(f"date {shown(text)} is not YYYY-MM-DD") from error
