"""Payment tables (BRM pin_collect / pin_refund): SEPA files and the dunning state.

Payments and refunds themselves live in ``payments`` and ``refunds`` (billing/store/models.py). This
module adds what collection needs around them:

- ``payment_files``: one SEPA file (pain.008 direct debits, pain.001 credit transfers) per
  creditor and run; ``payment_file_entries`` says which payment or refund each transaction is,
  so a payment is never put in two files.
- ``account_dunning``: an account whose collection failed after the last retry; collection
  skips it until its open bills are paid.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.domain.enums import DunningState, PaymentFileKind
from billing.store.models import Base, _enum
from billing.store.types import Amount


class PaymentFile(Base):
    """A SEPA file written for one creditor on one run date; ``msg_id`` is its GrpHdr/MsgId."""

    __tablename__ = "payment_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[PaymentFileKind] = mapped_column(_enum(PaymentFileKind))
    creditor_id: Mapped[str] = mapped_column(String(35))
    msg_id: Mapped[str] = mapped_column(String(35))
    as_of: Mapped[date] = mapped_column(Date, index=True)
    path: Mapped[str] = mapped_column(String(500))
    currency: Mapped[str] = mapped_column(String(3))
    transactions: Mapped[int] = mapped_column(Integer)
    control_sum: Mapped[Decimal] = mapped_column(Amount)

    __table_args__ = (UniqueConstraint("creditor_id", "msg_id"),)


class PaymentFileEntry(Base):
    """One transaction of a SEPA file: a direct debit (payment) or a credit transfer (refund)."""

    __tablename__ = "payment_file_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("payment_files.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), unique=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), unique=True)
    end_to_end_id: Mapped[str] = mapped_column(String(35))

    __table_args__ = (
        CheckConstraint("(payment_id IS NULL) <> (refund_id IS NULL)", name="payment_or_refund"),
    )


class AccountDunning(Base):
    """BRM collections: an account in dunning after its last failed retry (one row each)."""

    __tablename__ = "account_dunning"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    state: Mapped[DunningState] = mapped_column(_enum(DunningState), default=DunningState.DUNNING)
    since: Mapped[date] = mapped_column(Date)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id"))
    reason: Mapped[str] = mapped_column(Text)
    cleared_on: Mapped[date | None] = mapped_column(Date)
