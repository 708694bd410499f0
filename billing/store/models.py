"""The billing schema: typed SQLAlchemy 2.x models shared by SQLite and PostgreSQL.

Both seeds map onto one model (see docs/architecture.md):
a Cn285 *Invoicing Schedule* line and a BRM *bill item / balance impact* are both a ``Charge``;
a Cn285 *Contract Item* and a BRM *purchased product* are both a ``ContractItem``.
Unique constraints carry idempotence: a rerun of any step for the same date inserts nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from billing.domain.enums import (
    AccountStatus,
    ActionStatus,
    BillingState,
    BillStatus,
    ChangeKind,
    ChargeKind,
    ChargeStatus,
    ContractStatus,
    Cycle,
    ItemStatus,
    ItemType,
    OutboxStatus,
    PaymentMethod,
    PaymentStatus,
    PriceModel,
    Proration,
    RequestStatus,
    Timing,
    UsageStatus,
)

# The enums are the domain's (billing.domain.enums); importing them from here works too.
from billing.domain.late_usage import DEFAULT_LATE_USAGE_DAYS
from billing.store.types import Amount

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ZERO = Decimal("0")

LINE_ON_BILL = (
    "(bill_id IS NULL AND line_no IS NULL AND tax_rate IS NULL AND tax IS NULL"
    " AND vat_category IS NULL) OR (bill_id IS NOT NULL AND line_no IS NOT NULL"
    " AND tax_rate IS NOT NULL AND tax IS NOT NULL AND vat_category IS NOT NULL)"
)
"""A charge is on a bill with every column of its line, or on none with none of them."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum]) -> Enum:
    """A portable enum: VARCHAR plus a CHECK constraint on both databases."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda e: [m.value for m in e],
        name=cls.__name__.lower(),
    )


class Account(Base):
    """A customer: who is billed, in which currency and language, and how they pay."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address_line: Mapped[str] = mapped_column(String(200), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    country: Mapped[str] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(5), default="en")
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str] = mapped_column(String(254), default="")
    vat_id: Mapped[str | None] = mapped_column(String(32))
    customer_type: Mapped[str] = mapped_column(String(8), server_default="consumer")
    """``business`` or ``consumer`` (``billing.domain.buyers.CustomerType``): where a supply
    to it is taxed depends on it (``billing.domain.vat``)."""
    status: Mapped[AccountStatus] = mapped_column(
        _enum(AccountStatus), default=AccountStatus.ACTIVE
    )
    payment_method: Mapped[PaymentMethod] = mapped_column(
        _enum(PaymentMethod), default=PaymentMethod.INVOICE
    )
    iban: Mapped[str | None] = mapped_column(String(34))
    bic: Mapped[str | None] = mapped_column(String(11))
    mandate_ref: Mapped[str | None] = mapped_column(String(35))
    mandate_date: Mapped[date | None] = mapped_column(Date)
    card_token: Mapped[str | None] = mapped_column(String(64))
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    balance: Mapped[Decimal] = mapped_column(Amount, default=ZERO)
    usage_threshold: Mapped[Decimal | None] = mapped_column(Amount)
    """Progressive billing: when the account's unbilled usage passes this net amount, the UTI
    daemon bills it early (``billing.ops.uti``); the cycle bill subtracts what was billed."""
    created_on: Mapped[date] = mapped_column(Date)

    bill_units: Mapped[list[BillUnit]] = relationship(back_populates="account")
    contracts: Mapped[list[Contract]] = relationship(back_populates="account")

    __table_args__ = (
        CheckConstraint(
            "payment_method != 'direct_debit' OR (iban IS NOT NULL AND mandate_ref IS NOT NULL)",
            name="direct_debit_has_mandate",
        ),
    )


class BillSeries(Base):
    """A gapless numbering series (``next_number`` is taken under a row lock)."""

    __tablename__ = "bill_series"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16))
    next_number: Mapped[int] = mapped_column(Integer, default=1)


class BillUnit(Base):
    """BRM bill unit (billinfo): when and how often an account is billed."""

    __tablename__ = "bill_units"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    billing_day: Mapped[int] = mapped_column(Integer)
    cycle: Mapped[Cycle] = mapped_column(_enum(Cycle), default=Cycle.MONTHLY)
    next_bill_date: Mapped[date] = mapped_column(Date, index=True)
    last_bill_date: Mapped[date | None] = mapped_column(Date)
    billing_state: Mapped[BillingState] = mapped_column(
        _enum(BillingState), default=BillingState.READY
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    series_code: Mapped[str] = mapped_column(ForeignKey("bill_series.code"), default="INV")
    usage_through_id: Mapped[int | None] = mapped_column(Integer)
    """The usage watermark of the unit's last closed cycle: every usage record with a higher id
    arrived after that cycle was rated, so late usage is looked for only above it
    (``billing.ops.rating``). None: no cycle rated yet (or rated before watermarks)."""

    account: Mapped[Account] = relationship(back_populates="bill_units")

    __table_args__ = (CheckConstraint("billing_day BETWEEN 1 AND 31", name="billing_day_range"),)


class TaxCategory(Base):
    """A catalogue tax class: the VAT its products carry unless where the supply takes place
    decides otherwise (``billing.domain.vat``)."""

    __tablename__ = "tax_categories"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    vat_category: Mapped[str] = mapped_column(String(2), server_default="S")
    """S (standard), Z (zero rated) or E (exempt): EN 16931 / UNCL 5305."""
    supply: Mapped[str] = mapped_column(String(8), server_default="services")
    """``services`` or ``goods``: the place-of-supply rules differ."""
    exemption_code: Mapped[str | None] = mapped_column(String(32))
    """An exempt class's VATEX code (EN 16931 BT-121)."""
    exemption_reason: Mapped[str | None] = mapped_column(String(200))
    """An exempt class's legal basis, printed (BT-120)."""


class TaxRate(Base):
    """VAT rate of a tax category in a country, from a date on."""

    __tablename__ = "tax_rates"

    id: Mapped[int] = mapped_column(primary_key=True)
    category_code: Mapped[str] = mapped_column(ForeignKey("tax_categories.code"))
    country: Mapped[str] = mapped_column(String(2))
    rate: Mapped[Decimal] = mapped_column(Amount)
    valid_from: Mapped[date] = mapped_column(Date)

    __table_args__ = (UniqueConstraint("category_code", "country", "valid_from"),)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_translations: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
    """The name per language (``{"fr": "Fibre 100 Mbit/s", "de": ...}``) for the invoices;
    a language without one prints ``name``."""
    tax_category: Mapped[str] = mapped_column(ForeignKey("tax_categories.code"))
    gl_account: Mapped[str] = mapped_column(String(16), default="706000")

    price_plans: Mapped[list[PricePlan]] = relationship(back_populates="product")


class PricePlan(Base):
    """How a product is priced in one currency."""

    __tablename__ = "price_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    currency: Mapped[str] = mapped_column(String(3))
    model: Mapped[PriceModel] = mapped_column(_enum(PriceModel))
    timing: Mapped[Timing | None] = mapped_column(_enum(Timing))
    proration: Mapped[Proration] = mapped_column(_enum(Proration), default=Proration.BY_DAY)
    unit_price: Mapped[Decimal | None] = mapped_column(Amount)
    package_size: Mapped[Decimal | None] = mapped_column(Amount)
    period_months: Mapped[int] = mapped_column(Integer, default=1)
    unit: Mapped[str] = mapped_column(String(16), default="unit")
    late_usage_days: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_LATE_USAGE_DAYS, server_default=str(DEFAULT_LATE_USAGE_DAYS)
    )
    """Late usage (its cycle already billed) up to this many days old at the bill that takes
    it is billed as a delta; older, it is held (``billing.domain.late_usage``)."""

    product: Mapped[Product] = relationship(back_populates="price_plans")
    tiers: Mapped[list[PriceTier]] = relationship(
        back_populates="price_plan", order_by="PriceTier.position"
    )


class PriceTier(Base):
    __tablename__ = "price_tiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    price_plan_id: Mapped[int] = mapped_column(ForeignKey("price_plans.id"))
    position: Mapped[int] = mapped_column(Integer)
    up_to: Mapped[Decimal | None] = mapped_column(Amount)
    unit_price: Mapped[Decimal] = mapped_column(Amount)
    flat_fee: Mapped[Decimal] = mapped_column(Amount, default=ZERO)

    price_plan: Mapped[PricePlan] = relationship(back_populates="tiers")

    __table_args__ = (UniqueConstraint("price_plan_id", "position"),)


class Contract(Base):
    """Cn285 contract: a term the account bought, possibly auto-renewed."""

    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    term_months: Mapped[int] = mapped_column(Integer, default=12)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=True)
    notice_days: Mapped[int] = mapped_column(Integer, default=30)
    status: Mapped[ContractStatus] = mapped_column(
        _enum(ContractStatus), default=ContractStatus.ACTIVE
    )

    account: Mapped[Account] = relationship(back_populates="contracts")
    items: Mapped[list[ContractItem]] = relationship(back_populates="contract")


class ContractItem(Base):
    """Cn285 contract item, BRM purchased product: a price plan bought in a quantity."""

    __tablename__ = "contract_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"), index=True)
    price_plan_id: Mapped[int] = mapped_column(ForeignKey("price_plans.id"))
    item_type: Mapped[ItemType] = mapped_column(_enum(ItemType))
    quantity: Mapped[Decimal] = mapped_column(Amount, default=Decimal(1))
    price_override: Mapped[Decimal | None] = mapped_column(Amount)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    pending_cancel_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[ItemStatus] = mapped_column(_enum(ItemStatus), default=ItemStatus.ACTIVE)
    trial_end_date: Mapped[date | None] = mapped_column(Date)
    """A free trial: the item's recurring fee is zero before this day
    (``billing.domain.schedule``)."""

    contract: Mapped[Contract] = relationship(back_populates="items")
    price_plan: Mapped[PricePlan] = relationship()


class ChangeRequest(Base):
    """Cn285 contract change request: applied by the Contract Change Process daemon."""

    __tablename__ = "change_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    contract_item_id: Mapped[int] = mapped_column(ForeignKey("contract_items.id"), index=True)
    kind: Mapped[ChangeKind] = mapped_column(_enum(ChangeKind))
    effective_date: Mapped[date] = mapped_column(Date)
    new_quantity: Mapped[Decimal | None] = mapped_column(Amount)
    new_price: Mapped[Decimal | None] = mapped_column(Amount)
    new_price_plan_id: Mapped[int | None] = mapped_column(ForeignKey("price_plans.id"))
    status: Mapped[RequestStatus] = mapped_column(
        _enum(RequestStatus), default=RequestStatus.PENDING
    )
    reason: Mapped[str | None] = mapped_column(Text)
    processed_on: Mapped[date | None] = mapped_column(Date)


class UsageRecord(Base):
    """Cn285 usage data / BRM usage event: a metered quantity on a contract item.

    Rating never writes a record: a usage charge names the records it prices by range
    (``Charge.usage_through_id``, ``usage_since``, ``usage_before``; ``billing.store.usage``).
    ``status`` says only what a range cannot: ``held`` (late beyond its plan's window), or
    ``collected`` with ``charge_key`` for records rated before watermarks (migration 0011).
    Ids grow in commit order (``billing.store.usage``), which is what makes a watermark exact.
    """

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    contract_item_id: Mapped[int] = mapped_column(ForeignKey("contract_items.id"))
    quantity: Mapped[Decimal] = mapped_column(Amount)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[UsageStatus] = mapped_column(_enum(UsageStatus), default=UsageStatus.PENDING)
    charge_key: Mapped[str | None] = mapped_column(
        ForeignKey("charges.charge_key", deferrable=True, initially="DEFERRED"), index=True
    )
    held_on: Mapped[date | None] = mapped_column(Date)
    """The bill date of the run that held it (status ``held``)."""
    hold_reason: Mapped[str | None] = mapped_column(Text)
    """Why it is held: its age at that bill and its plan's lookback window."""

    __table_args__ = (
        Index("ix_usage_item_status_time", "contract_item_id", "status", "occurred_at"),
        Index("ix_usage_item_id", "contract_item_id", "id"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    )


class RejectedUsage(Base):
    """A usage row that failed validation, kept with its reason so nothing is lost."""

    __tablename__ = "rejected_usage"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(255))
    row_number: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str | None] = mapped_column(String(128))
    raw: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("source", "row_number"),)


class Bill(Base):
    """A bill (BRM) / invoice (Cn285): numbered gaplessly within its series once invoiced."""

    __tablename__ = "bills"

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_key: Mapped[str] = mapped_column(String(96), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    bill_unit_id: Mapped[int] = mapped_column(ForeignKey("bill_units.id"), index=True)
    series_code: Mapped[str] = mapped_column(ForeignKey("bill_series.code"))
    number: Mapped[int | None] = mapped_column(Integer)
    bill_no: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[BillStatus] = mapped_column(_enum(BillStatus), default=BillStatus.BILLED)
    bill_date: Mapped[date] = mapped_column(Date, index=True)
    due_date: Mapped[date] = mapped_column(Date)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    net: Mapped[Decimal] = mapped_column(Amount)
    tax: Mapped[Decimal] = mapped_column(Amount)
    gross: Mapped[Decimal] = mapped_column(Amount)
    amount_paid: Mapped[Decimal] = mapped_column(Amount, default=ZERO)
    run_id: Mapped[str | None] = mapped_column(String(64))
    type_code: Mapped[str] = mapped_column(String(3), server_default="380")
    """The document type (UNTDID 1001, EN 16931 BT-3): ``380`` an invoice, ``381`` a credit
    note (``billing.domain.credit_notes``). A credit note's amounts are stored negative, as
    what it takes off the balance; its documents print them positive."""
    note: Mapped[str | None] = mapped_column(Text)
    """Why a credit note was issued by hand (``billing credit-note --reason``), printed on it."""

    lines: Mapped[list[Charge]] = relationship(order_by="Charge.line_no", viewonly=True)
    """The bill's lines: its charges (``charges.bill_id``), in position order."""

    __table_args__ = (
        UniqueConstraint("series_code", "number"),
        CheckConstraint("due_date >= bill_date", name="due_after_bill"),
    )


class Charge(Base):
    """Cn285 Invoicing Schedule line = BRM bill item / balance impact.

    ``bill_on`` is the invoicing date (Cn285 IS date): the first bill on or after it takes the
    charge. ``immediate`` charges (Cn285 UTI) are invoiced on the next run, without waiting for
    the cycle to close. ``charge_key`` is unique, so materializing a charge twice inserts nothing.
    """

    __tablename__ = "charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    charge_key: Mapped[str] = mapped_column(String(96), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    bill_unit_id: Mapped[int] = mapped_column(ForeignKey("bill_units.id"))
    contract_item_id: Mapped[int | None] = mapped_column(ForeignKey("contract_items.id"))
    kind: Mapped[ChargeKind] = mapped_column(_enum(ChargeKind))
    description: Mapped[str] = mapped_column(String(255))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    bill_on: Mapped[date] = mapped_column(Date)
    quantity: Mapped[Decimal] = mapped_column(Amount)
    unit_price: Mapped[Decimal] = mapped_column(Amount)
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    tax_category: Mapped[str] = mapped_column(ForeignKey("tax_categories.code"))
    status: Mapped[ChargeStatus] = mapped_column(
        _enum(ChargeStatus), default=ChargeStatus.CALCULATED
    )
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id"))
    """The bill the charge is a line of (``ix_charges_bill_line`` serves lookups by bill)."""
    immediate: Mapped[bool] = mapped_column(Boolean, default=False)
    created_on: Mapped[date] = mapped_column(Date)
    corrects_charge_id: Mapped[int | None] = mapped_column(ForeignKey("charges.id"))
    """A correction (a credit or an adjustment of a change after the fact): the charge whose
    period it corrects; that charge's ``bill_id`` is the bill the correction line names."""
    usage_through_id: Mapped[int | None] = mapped_column(Integer)
    usage_since: Mapped[datetime | None] = mapped_column(DateTime)
    usage_before: Mapped[datetime | None] = mapped_column(DateTime)
    """A usage charge's range: the records of its item with id up to ``usage_through_id`` (the
    watermark rating read) and stamped in ``[usage_since, usage_before)`` (no lower bound when
    None), not held, and not priced by a charge of the item that comes first in
    (``usage_through_id``, ``usage_before``) order (``billing.store.usage.LINK``)."""

    # A charge on a bill IS the bill's line (issue #20: each billed fact is written once).
    # What the line adds to the charge is set when a bill takes it, in the same statement
    # that sets ``bill_id``; all four are NULL while the charge is not on a bill. The line's
    # net is ``amount`` (already rounded to the currency) and its gross ``amount + tax``.
    line_no: Mapped[int | None] = mapped_column(Integer)
    """The line's position on its bill, from 1: the order its documents print the lines in."""
    tax_rate: Mapped[Decimal | None] = mapped_column(Amount)
    tax: Mapped[Decimal | None] = mapped_column(Amount)
    """The line's VAT, rounded once (``billing.domain.invoice``)."""
    vat_category: Mapped[str | None] = mapped_column(String(2))
    """The EN 16931 VAT category the line was billed with (``billing.domain.vat``)."""

    __table_args__ = (
        Index("ix_charges_unit_status_bill_on", "bill_unit_id", "status", "bill_on"),
        Index("ix_charges_bill_line", "bill_id", "line_no", unique=True),
        Index(
            "ix_charges_item_usage",
            "contract_item_id",
            "usage_through_id",
            postgresql_where=text("usage_through_id IS NOT NULL"),
            sqlite_where=text("usage_through_id IS NOT NULL"),
        ),
        CheckConstraint("period_start <= period_end", name="period_ordered"),
        CheckConstraint(LINE_ON_BILL, name="line_on_bill"),
        CheckConstraint("line_no IS NULL OR line_no >= 1", name="line_no_positive"),
    )


class BilledLine(NamedTuple):
    """A bill's line as its readers see it: a charge on the bill (``LINE_COLUMNS``)."""

    bill_id: int
    charge_id: int
    position: int
    description: str
    period_start: date
    period_end: date
    quantity: Decimal
    unit_price: Decimal
    net: Decimal
    tax_category: str
    tax_rate: Decimal
    tax: Decimal
    vat_category: str

    @property
    def gross(self) -> Decimal:
        """Net plus VAT: derived, as every total of the bill is summed from its lines."""
        return self.net + self.tax


LINE_COLUMNS = (
    Charge.bill_id,
    Charge.id,
    Charge.line_no,
    Charge.description,
    Charge.period_start,
    Charge.period_end,
    Charge.quantity,
    Charge.unit_price,
    Charge.amount,
    Charge.tax_category,
    Charge.tax_rate,
    Charge.tax,
    Charge.vat_category,
)
"""The columns of a ``BilledLine``, in its order: ``select(*LINE_COLUMNS)`` reads lines, and
``billed_line(row)`` makes one of the first ``len(LINE_COLUMNS)`` values of a row."""


def billed_line(row: Sequence[Any]) -> BilledLine:
    """The line of a row that starts with ``LINE_COLUMNS`` (a charge on a bill)."""
    return BilledLine(*row[: len(LINE_COLUMNS)])


class DeferredAction(Base):
    """BRM deferred action: a change that takes effect on a date (pin_deferred_act)."""

    __tablename__ = "deferred_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    due_on: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[ActionStatus] = mapped_column(_enum(ActionStatus), default=ActionStatus.PENDING)
    done_on: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(Text)


class Payment(Base):
    """A payment received (gateway, bank statement, CLI); the idempotency key replays."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(96), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id"))
    method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod))
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    received_on: Mapped[date] = mapped_column(Date)
    status: Mapped[PaymentStatus] = mapped_column(
        _enum(PaymentStatus), default=PaymentStatus.PENDING
    )
    reference: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    # A direct debit's collection date (its file's ReqdColltnDt), which the invoice prints as
    # its pre-notification; None for other payments.
    collect_on: Mapped[date | None] = mapped_column(Date)


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(96), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod))
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    refunded_on: Mapped[date] = mapped_column(Date)
    status: Mapped[PaymentStatus] = mapped_column(
        _enum(PaymentStatus), default=PaymentStatus.PENDING
    )
    reference: Mapped[str | None] = mapped_column(String(128))


class JournalEntry(Base):
    """A revenue-recognition summary journal line (Cn285 RevRec Summary Journal)."""

    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    gl_account: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    currency: Mapped[str] = mapped_column(String(3))
    debit: Mapped[Decimal] = mapped_column(Amount, default=ZERO)
    credit: Mapped[Decimal] = mapped_column(Amount, default=ZERO)
    description: Mapped[str] = mapped_column(String(255))
    posted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_journal_period", "year", "month"),)


class OutboxMessage(Base):
    """An e-mail to send, with a stable Message-ID so a crash never sends it twice."""

    __tablename__ = "email_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bills.id"), unique=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_on: Mapped[date | None] = mapped_column(Date)


class BillingIssue(Base):
    """An account that a step could not process, with the reason (the run goes on)."""

    __tablename__ = "billing_issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    bill_unit_id: Mapped[int | None] = mapped_column(ForeignKey("bill_units.id"))
    as_of: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)


# Tables of later capabilities live in their own modules; importing them registers them.
from billing.store import models_payments  # noqa: E402,F401,I001  (the payment tables)
from billing.store import models_revrec  # noqa: E402,F401,I001  (the revrec tables)
from billing.store import models_terms  # noqa: E402,F401,I001  (commercial terms, issue #21)
