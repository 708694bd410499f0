"""SEPA files: batching transactions into files, and storing a file (row, entries, bytes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.payments.sepa import SEPA_CURRENCY, Creditor, write_atomically
from billing.store.models import BillingIssue
from billing.store.models_payments import PaymentFile, PaymentFileEntry, PaymentFileKind
from billing.store.sqlkit import bulk_insert, id_in

T = TypeVar("T")

PREFIX = {PaymentFileKind.DIRECT_DEBIT: "DD", PaymentFileKind.CREDIT_TRANSFER: "CT"}
SUFFIX = {
    PaymentFileKind.DIRECT_DEBIT: "pain.008.xml",
    PaymentFileKind.CREDIT_TRANSFER: "pain.001.xml",
}


@dataclass(frozen=True)
class Entry:
    """A payment (debit) or refund (transfer) of the file, under its transaction's end-to-end id.

    A debit that combines several bills of one mandate is one transaction and several entries
    (one payment each) with the same end-to-end id.
    """

    end_to_end_id: str
    amount: Decimal
    payment_id: int | None = None
    refund_id: int | None = None


@dataclass
class FileBatches(Generic[T]):
    """Transactions waiting for their SEPA file, added an account at a time, ``cap`` a file.

    A batch is handed to ``write`` as soon as the next account's transactions would not fit,
    so at most one file's worth is held. Accounts are never split across files: where a file
    ends depends only on the order and number of the transactions, never on paging.
    """

    cap: int
    write: Callable[[list[T]], None]
    held: list[T] = field(default_factory=list)

    def add(self, account_items: Sequence[T]) -> None:
        """Hold one account's transactions, writing the batch held first if they do not fit."""
        if self.held and len(self.held) + len(account_items) > self.cap:
            self.flush()
        self.held.extend(account_items)

    def flush(self) -> None:
        """Write the batch held, if any."""
        if self.held:
            batch, self.held = self.held, []
            self.write(batch)


def store_file(
    session: Session,
    *,
    kind: PaymentFileKind,
    creditor: Creditor,
    as_of: date,
    folder: Path,
    entries: Sequence[Entry],
    build: Callable[[str], bytes],
) -> Path:
    """Number the file (``DD-YYYYMMDD-NNN``), build it, record it and write it.

    The number counts the creditor's files of that kind and date, so a transaction that rolls
    back after writing leaves a file that the rerun overwrites with the same bytes.
    """
    prefix = f"{PREFIX[kind]}-{as_of:%Y%m%d}-"
    earlier = session.scalar(
        select(func.count()).where(
            PaymentFile.creditor_id == creditor.creditor_id,
            PaymentFile.kind == kind,
            PaymentFile.as_of == as_of,
        )
    )
    msg_id = f"{prefix}{(earlier or 0) + 1:03d}"
    xml = build(msg_id)
    path = folder / f"{msg_id}.{SUFFIX[kind]}"
    row = PaymentFile(
        kind=kind,
        creditor_id=creditor.creditor_id,
        msg_id=msg_id,
        as_of=as_of,
        path=str(path),
        currency=SEPA_CURRENCY,
        transactions=len({e.end_to_end_id for e in entries}),
        control_sum=sum((e.amount for e in entries), Decimal(0)),
    )
    session.add(row)
    session.flush()
    bulk_insert(
        session,
        PaymentFileEntry.__table__,
        [
            {
                "file_id": row.id,
                "payment_id": e.payment_id,
                "refund_id": e.refund_id,
                "end_to_end_id": e.end_to_end_id,
            }
            for e in entries
        ],
    )
    write_atomically(path, xml)
    return path


def note_issues(
    session: Session, *, run_id: str, step: str, as_of: date, issues: Sequence[tuple[int, str]]
) -> None:
    """Keep a billing issue per (account, reason) a step skipped, once while it is unresolved."""
    wanted = list(dict.fromkeys(issues))
    if not wanted:
        return
    known = set(
        session.execute(
            select(BillingIssue.account_id, BillingIssue.reason).where(
                BillingIssue.step == step,
                id_in(session, BillingIssue.account_id, sorted({a for a, _ in wanted})),
                BillingIssue.resolved.is_(False),
            )
        ).tuples()
    )
    bulk_insert(
        session,
        BillingIssue.__table__,
        [
            {
                "run_id": run_id,
                "step": step,
                "account_id": account_id,
                "as_of": as_of,
                "reason": reason,
                "resolved": False,
            }
            for account_id, reason in wanted
            if (account_id, reason) not in known
        ],
    )
