"""The fixed values of the schema, once: every status, kind and method as a ``StrEnum``.

A ``StrEnum`` member is a ``str`` and compares equal to its value (``ChargeStatus.OPEN ==
"open"``), so the database stores the same strings as before and SQL text may still name them.
``billing.store.models`` maps its columns onto these enums and re-exports them; the other layers
import them from here or from the models, it is the same class.
"""

from __future__ import annotations

import enum


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    CLOSED = "closed"


class PaymentMethod(enum.StrEnum):
    INVOICE = "invoice"
    CARD = "card"
    DIRECT_DEBIT = "direct_debit"


class Cycle(enum.StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


class BillingState(enum.StrEnum):
    """BRM ``billing_state`` of a bill unit; FAILED is the seed's ``billing_state = 4``."""

    READY = "ready"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    BILLED = "billed"


class PriceModel(enum.StrEnum):
    RECURRING = "recurring"
    ONE_TIME = "one_time"
    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"


class Timing(enum.StrEnum):
    ADVANCE = "advance"
    ARREARS = "arrears"


class Proration(enum.StrEnum):
    FULL = "full"
    BY_DAY = "by_day"
    NONE = "none"


class ContractStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"
    CANCELLED = "cancelled"


class ItemType(enum.StrEnum):
    RECURRING = "recurring"
    USAGE = "usage"
    UTI = "uti"
    ONE_TIME = "one_time"


class ItemStatus(enum.StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    ENDED = "ended"


class ChangeKind(enum.StrEnum):
    QUANTITY = "quantity"
    PRICE = "price"
    SWAP = "swap"
    TERMINATION = "termination"


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"


class UsageStatus(enum.StrEnum):
    """Cn285 usage data status: Pending until rated into a charge, then Collected.

    Held: late usage (its cycle already billed) older than its price plan's lookback window
    (``late_usage_days``), kept with its reason and never billed by itself
    (``billing.domain.late_usage``).
    """

    PENDING = "pending"
    COLLECTED = "collected"
    HELD = "held"


class ChargeKind(enum.StrEnum):
    """What a charge bills. DISCOUNT and COMMITMENT are the commercial terms' lines
    (``billing.domain.commercial``): a discount is negative, a commitment's shortfall positive.
    PREPAYMENT sells prepaid credits to a wallet (deferred revenue until used)."""

    RECURRING = "recurring"
    USAGE = "usage"
    ONE_TIME = "one_time"
    ADJUSTMENT = "adjustment"
    DISCOUNT = "discount"
    COMMITMENT = "commitment"
    PREPAYMENT = "prepayment"


TERM_KINDS = frozenset({ChargeKind.DISCOUNT, ChargeKind.COMMITMENT})
"""The charge kinds the commercial terms compute on a cycle bill (never discounted again)."""


class DiscountScope(enum.StrEnum):
    """What a discount reduces: one contract item, every item on a price plan, or the bill."""

    ITEM = "item"
    PLAN = "plan"
    BILL = "bill"


class DiscountKind(enum.StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"


class WalletEntryKind(enum.StrEnum):
    """A wallet movement: credits in (GRANT free, PURCHASE bought), credits out (CONSUMPTION
    by a bill, EXPIRY of what a lot had left on its expiry date)."""

    GRANT = "grant"
    PURCHASE = "purchase"
    CONSUMPTION = "consumption"
    EXPIRY = "expiry"


class ChargeStatus(enum.StrEnum):
    """One life cycle for Cn285 Invoicing Schedules and BRM bill items (docs/architecture.md).

    planned -> calculated -> open -> closed, and cancelled from planned or calculated.
    BRM calls a ``calculated`` item *pending*: it accrues until billing moves it to ``open``.
    """

    PLANNED = "planned"
    CALCULATED = "calculated"
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class BillStatus(enum.StrEnum):
    """A bill is ``billed`` by bill_accounts and ``invoiced`` once numbered by invoices."""

    BILLED = "billed"
    INVOICED = "invoiced"


class ActionStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    FAILED = "failed"


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class PaymentFileKind(enum.StrEnum):
    """The ISO 20022 message of a SEPA file."""

    DIRECT_DEBIT = "pain.008.001.02"
    CREDIT_TRANSFER = "pain.001.001.03"


class DunningState(enum.StrEnum):
    DUNNING = "dunning"
    CLEARED = "cleared"


class RevenueMonthStatus(enum.StrEnum):
    """A month's journal is ``draft`` (re-runnable) until ``posted`` (locked)."""

    DRAFT = "draft"
    POSTED = "posted"


class ActionKind(enum.StrEnum):
    """What a deferred action does (``deferred_actions.action``, a plain string column)."""

    SET_ACCOUNT_STATUS = "set_account_status"
    CANCEL_ITEM = "cancel_item"
    CHANGE_PRICE = "change_price"
