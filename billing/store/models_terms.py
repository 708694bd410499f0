"""Commercial terms tables (issue #21): discounts, minimum commitments and prepaid wallets.

- ``discounts``: a percentage or fixed reduction of an item, of every item on a price plan, or
  of the whole bill, for ``cycles`` cycles or until ``end_date`` (``billing.domain.commercial``).
  The bill run writes each as a negative ``discount`` charge on the cycle bill.
- ``commitments``: a minimum spend per cycle on a contract or an item; the bill run writes the
  shortfall as a ``commitment`` charge.
- ``wallets`` and ``wallet_entries``: prepaid credits. Every movement is an entry: credits in
  (``grant``, ``purchase``) are *lots* with an optional expiry; credits out (``consumption``,
  ``expiry``) name the lot they take from (``lot_id``). A lot's remaining credit is its amount
  plus the (negative) entries that name it; the wallet's balance is the sum of its entries.
  ``entry_key`` is unique: a rerun writes no movement twice.

Trials (``contract_items.trial_end_date``) and usage thresholds (``accounts.usage_threshold``)
are columns of their owners (``billing.store.models``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.domain.enums import DiscountKind, DiscountScope, WalletEntryKind
from billing.store.models import Base, _enum
from billing.store.types import Amount


class Discount(Base):
    """A discount (a coupon applied to an account, or a negotiated one) and what it reduces."""

    __tablename__ = "discounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    scope: Mapped[DiscountScope] = mapped_column(_enum(DiscountScope))
    contract_item_id: Mapped[int | None] = mapped_column(ForeignKey("contract_items.id"))
    """The item an ``item`` discount reduces."""
    price_plan_id: Mapped[int | None] = mapped_column(ForeignKey("price_plans.id"))
    """The price plan whose items a ``plan`` discount reduces."""
    kind: Mapped[DiscountKind] = mapped_column(_enum(DiscountKind))
    value: Mapped[Decimal] = mapped_column(Amount)
    """A percentage (``10`` is 10 %) or a fixed amount per cycle in the account's currency."""
    coupon_code: Mapped[str | None] = mapped_column(String(64))
    """The coupon the customer redeemed, when the discount came from one."""
    description: Mapped[str] = mapped_column(String(200))
    """The discount line's text on the bill (EN 16931 BT-97, the allowance reason)."""
    reason_code: Mapped[str] = mapped_column(String(3), server_default="95")
    """UNTDID 5189 allowance reason code (BT-98): 95 discount, 100 special rebate,
    64 special agreement..."""
    start_date: Mapped[date] = mapped_column(Date)
    cycles: Mapped[int | None] = mapped_column(Integer)
    """How many cycles it applies to, from the cycle its start date falls in (None: no limit)."""
    end_date: Mapped[date | None] = mapped_column(Date)
    """It applies to cycles that start before this date (None: no end)."""
    priority: Mapped[int] = mapped_column(Integer, server_default="0")
    """Stacking order: lower first; each discount reduces what the ones before it left."""
    stackable: Mapped[bool] = mapped_column(Boolean, server_default="1")
    """False: applies only to a target no discount reduced yet, and no later one applies after."""

    __table_args__ = (
        CheckConstraint("value >= 0", name="value_not_negative"),
        CheckConstraint("cycles IS NULL OR cycles > 0", name="cycles_positive"),
    )


class Commitment(Base):
    """A minimum spend per cycle on a contract (all its items) or on one item."""

    __tablename__ = "commitments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    contract_item_id: Mapped[int | None] = mapped_column(ForeignKey("contract_items.id"))
    amount: Mapped[Decimal] = mapped_column(Amount)
    """The minimum net spend of a full cycle, in the account's currency."""
    tax_category: Mapped[str] = mapped_column(ForeignKey("tax_categories.code"))
    """How the shortfall line is taxed."""
    description: Mapped[str] = mapped_column(String(200))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("(contract_id IS NULL) <> (contract_item_id IS NULL)", name="one_target"),
    )


class Wallet(Base):
    """An account's prepaid credits, consumed by its bills before payment collection."""

    __tablename__ = "wallets"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    priority: Mapped[int] = mapped_column(Integer, server_default="0")
    """Consumption order among an account's wallets: lower first."""
    topup_threshold: Mapped[Decimal | None] = mapped_column(Amount)
    """When the balance falls below it, a purchase of ``topup_amount`` is charged."""
    topup_amount: Mapped[Decimal | None] = mapped_column(Amount)
    created_on: Mapped[date] = mapped_column(Date)

    __table_args__ = (
        CheckConstraint("(topup_threshold IS NULL) = (topup_amount IS NULL)", name="topup_pair"),
        CheckConstraint("topup_amount IS NULL OR topup_amount > 0", name="topup_positive"),
    )


class WalletEntry(Base):
    """One wallet movement (positive: credits in; negative: credits out)."""

    __tablename__ = "wallet_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_key: Mapped[str] = mapped_column(String(96), unique=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"), index=True)
    kind: Mapped[WalletEntryKind] = mapped_column(_enum(WalletEntryKind))
    amount: Mapped[Decimal] = mapped_column(Amount)
    on_date: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date | None] = mapped_column(Date)
    """A lot's expiry (grants and purchases): its credit left that day expires."""
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_entries.id"), index=True)
    """The lot a consumption or expiry takes from."""
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id"), index=True)
    """The bill a consumption pays, or the bill that sold a purchase."""
    charge_id: Mapped[int | None] = mapped_column(ForeignKey("charges.id"))
    """A purchase's prepayment charge."""
    description: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint(
            "(kind IN ('grant', 'purchase') AND amount > 0 AND lot_id IS NULL)"
            " OR (kind IN ('consumption', 'expiry') AND amount < 0 AND lot_id IS NOT NULL)",
            name="sign_and_lot",
        ),
    )
