"""Read-only views for operators: one account with everything about it, and the open issues.

Each view reads on a session and returns plain frozen values (amounts stay ``Decimal``);
printing them is the CLI's job. Nothing here writes, and nothing reads the clock: ``since``
and the like come from the caller.

Where a failure is recorded:

- ``billing_issues``: an account a step skipped (bill_accounts, cycle_fees, collect, refund,
  uti_schedule_generator), with its run, date and reason. Bill-step failures also set the bill
  unit's ``billing_state`` to failed; the issue of a unit billed since then is *retried*, not
  current.
- ``deferred_actions`` with status failed, ``change_requests`` with status rejected and
  ``email_outbox`` with status failed each carry their own reason.
- ``usage_records`` with status held: late usage beyond its price plan's window
  (``billing.domain.late_usage``), with the bill date that held it and the reason.
- ``rejected_usage``: usage rows refused at import, with the source file, the row and the
  reason. They are not linked to an account; an account's are those whose row names one of
  its contract items.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, aliased

from billing.domain.enums import DiscountKind
from billing.domain.errors import BillingError
from billing.domain.money import LINE_ROUNDING, MINOR_UNITS, quantize_money
from billing.ops.wallets import WalletInfo, wallets_of
from billing.store.models import (
    Account,
    ActionStatus,
    Bill,
    BillingIssue,
    BillingState,
    BillUnit,
    ChangeRequest,
    Charge,
    ChargeStatus,
    Contract,
    ContractItem,
    DeferredAction,
    OutboxMessage,
    OutboxStatus,
    Payment,
    PricePlan,
    Product,
    Refund,
    RejectedUsage,
    RequestStatus,
    UsageRecord,
    UsageStatus,
)
from billing.store.models_payments import AccountDunning
from billing.store.models_terms import Commitment, Discount


def format_money(amount: Decimal, currency: str) -> str:
    """``1,234.50 EUR``: the currency's minor units, thousands grouped, never a float."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be a Decimal, not {type(amount).__name__}")
    if currency in MINOR_UNITS:
        amount = quantize_money(amount, currency, LINE_ROUNDING)
    return f"{amount:,f} {currency}"


def mask_iban(iban: str | None) -> str | None:
    """An IBAN with only its country, check digits and last four characters shown."""
    if not iban:
        return iban
    compact = re.sub(r"\s+", "", iban)
    if len(compact) <= 8:
        return "*" * len(compact)
    return f"{compact[:4]} {'*' * (len(compact) - 8)} {compact[-4:]}"


def mask_token(token: str | None) -> str | None:
    """A card token with only its last four characters shown."""
    if not token:
        return token
    return "*" * max(len(token) - 4, 4) + token[-4:]


class UnknownAccounts(BillingError):
    """Account references that name no account; the message lists them."""

    def __init__(self, refs: Sequence[str]):
        self.refs = list(refs)
        shown = ", ".join(repr(r) for r in self.refs)
        super().__init__(f"unknown account{'s' if len(self.refs) > 1 else ''} {shown}")


def unknown_accounts(session: Session, refs: Iterable[str]) -> list[str]:
    """The refs, in the order given, that name no account."""
    wanted = list(dict.fromkeys(refs))
    if not wanted:
        return []
    known = set(session.scalars(select(Account.ref).where(Account.ref.in_(wanted))))
    return [ref for ref in wanted if ref not in known]


def require_accounts(session: Session, refs: Iterable[str]) -> None:
    """Raise ``UnknownAccounts`` when any ref names no account."""
    missing = unknown_accounts(session, refs)
    if missing:
        raise UnknownAccounts(missing)


@dataclass(frozen=True)
class AccountInfo:
    ref: str
    name: str
    country: str
    language: str
    currency: str
    status: str
    email: str
    vat_id: str | None
    payment_method: str
    iban: str | None  # masked
    mandate_ref: str | None
    card: str | None  # masked
    payment_terms_days: int
    balance: Decimal
    created_on: date


@dataclass(frozen=True)
class BillUnitInfo:
    billing_day: int
    cycle: str
    next_bill_date: date
    last_bill_date: date | None
    billing_state: str
    failure_reason: str | None


@dataclass(frozen=True)
class ItemInfo:
    ref: str
    product: str
    price_plan: str
    item_type: str
    quantity: Decimal
    price: Decimal | None
    start_date: date
    end_date: date | None
    status: str
    trial_end_date: date | None = None


@dataclass(frozen=True)
class ContractInfo:
    ref: str
    start_date: date
    end_date: date | None
    status: str
    auto_renew: bool
    items: tuple[ItemInfo, ...]


@dataclass(frozen=True)
class ChargeTotal:
    status: str
    currency: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class BillInfo:
    bill_no: str | None
    bill_date: date
    period_start: date
    period_end: date
    currency: str
    net: Decimal
    tax: Decimal
    gross: Decimal
    paid: Decimal
    status: str
    due_date: date


@dataclass(frozen=True)
class PaymentInfo:
    kind: str  # payment or refund
    on: date
    method: str
    amount: Decimal
    currency: str
    status: str
    reference: str | None
    bill_no: str | None
    reason: str | None


@dataclass(frozen=True)
class DunningInfo:
    state: str
    since: date
    bill_no: str | None
    reason: str
    cleared_on: date | None


@dataclass(frozen=True)
class Issue:
    """One thing that went wrong, with where it was recorded and why."""

    kind: str
    account_ref: str | None
    on: date | None
    where: str
    reason: str


@dataclass(frozen=True)
class AccountView:
    account: AccountInfo
    bill_units: tuple[BillUnitInfo, ...]
    contracts: tuple[ContractInfo, ...]
    charges: tuple[ChargeTotal, ...]
    bills: tuple[BillInfo, ...]
    payments: tuple[PaymentInfo, ...]
    dunning: DunningInfo | None
    issues: tuple[Issue, ...]
    wallets: tuple[WalletInfo, ...] = ()
    """Prepaid credits: each wallet's balance, lots and last movements (``billing.ops.wallets``)."""
    terms: tuple[TermInfo, ...] = ()
    """Discounts and minimum commitments (``billing.domain.commercial``), in id order."""
    usage_threshold: Decimal | None = None
    """Progressive billing's amount of unbilled usage (``billing.domain.thresholds``)."""


@dataclass(frozen=True)
class TermInfo:
    """A discount or a minimum commitment of the account, as ``billing show account`` lists it."""

    kind: str  # "discount" or "commitment"
    ref: str
    target: str  # "item ITM-1", "plan HOST-M-EUR", "bill", "contract CTR-1"
    amount: Decimal
    percent: bool  # a percentage discount (amount 10 is 10 %), else an amount a cycle
    start_date: date
    end_date: date | None
    cycles: int | None
    description: str


def account_view(session: Session, ref: str) -> AccountView:
    """Everything about the account ``ref``; ``UnknownAccounts`` when there is none."""
    account = session.scalars(select(Account).where(Account.ref == ref)).one_or_none()
    if account is None:
        raise UnknownAccounts([ref])
    return AccountView(
        account=_account_info(account),
        bill_units=_bill_units(session, account.id),
        contracts=_contracts(session, account.id),
        charges=_charge_totals(session, account.id),
        bills=_bills(session, account.id),
        payments=_payments(session, account.id),
        dunning=_dunning(session, account.id),
        issues=tuple(issues(session, account_ref=ref)),
        wallets=wallets_of(session, account.id),
        terms=_terms(session, account.id),
        usage_threshold=account.usage_threshold,
    )


def _terms(session: Session, account_id: int) -> tuple[TermInfo, ...]:
    """The account's discounts, then its commitments, each with what it applies to."""
    item, plan = aliased(ContractItem), aliased(PricePlan)
    found = [
        TermInfo(
            kind="discount",
            ref=d.ref,
            target={"item": f"item {item_ref}", "plan": f"plan {plan_code}"}.get(
                str(d.scope), "bill"
            ),
            amount=d.value,
            percent=d.kind == DiscountKind.PERCENT,
            start_date=d.start_date,
            end_date=d.end_date,
            cycles=d.cycles,
            description=d.description,
        )
        for d, item_ref, plan_code in session.execute(
            select(Discount, item.ref, plan.code)
            .outerjoin(item, item.id == Discount.contract_item_id)
            .outerjoin(plan, plan.id == Discount.price_plan_id)
            .where(Discount.account_id == account_id)
            .order_by(Discount.id)
        ).tuples()
    ]
    found += [
        TermInfo(
            kind="commitment",
            ref=c.ref,
            target=f"contract {contract_ref}" if contract_ref else f"item {item_ref}",
            amount=c.amount,
            percent=False,
            start_date=c.start_date,
            end_date=c.end_date,
            cycles=None,
            description=c.description,
        )
        for c, contract_ref, item_ref in session.execute(
            select(Commitment, Contract.ref, item.ref)
            .outerjoin(Contract, Contract.id == Commitment.contract_id)
            .outerjoin(item, item.id == Commitment.contract_item_id)
            .where(Commitment.account_id == account_id)
            .order_by(Commitment.id)
        ).tuples()
    ]
    return tuple(found)


def _account_info(account: Account) -> AccountInfo:
    return AccountInfo(
        ref=account.ref,
        name=account.name,
        country=account.country,
        language=account.language,
        currency=account.currency,
        status=str(account.status),
        email=account.email,
        vat_id=account.vat_id,
        payment_method=str(account.payment_method),
        iban=mask_iban(account.iban),
        mandate_ref=account.mandate_ref,
        card=mask_token(account.card_token),
        payment_terms_days=account.payment_terms_days,
        balance=account.balance,
        created_on=account.created_on,
    )


def _bill_units(session: Session, account_id: int) -> tuple[BillUnitInfo, ...]:
    units = session.scalars(
        select(BillUnit).where(BillUnit.account_id == account_id).order_by(BillUnit.id)
    )
    return tuple(
        BillUnitInfo(
            billing_day=u.billing_day,
            cycle=str(u.cycle),
            next_bill_date=u.next_bill_date,
            last_bill_date=u.last_bill_date,
            billing_state=str(u.billing_state),
            failure_reason=u.failure_reason,
        )
        for u in units
    )


def _contracts(session: Session, account_id: int) -> tuple[ContractInfo, ...]:
    rows = session.execute(
        select(Contract, ContractItem, PricePlan, Product)
        .outerjoin(ContractItem, ContractItem.contract_id == Contract.id)
        .outerjoin(PricePlan, PricePlan.id == ContractItem.price_plan_id)
        .outerjoin(Product, Product.id == PricePlan.product_id)
        .where(Contract.account_id == account_id)
        .order_by(Contract.start_date, Contract.id, ContractItem.id)
    ).tuples()
    contracts: dict[int, tuple[Contract, list[ItemInfo]]] = {}
    for contract, item, plan, product in rows:
        _, items = contracts.setdefault(contract.id, (contract, []))
        if item is None:
            continue
        items.append(
            ItemInfo(
                ref=item.ref,
                product=product.name if product else "",
                price_plan=plan.code if plan else "",
                item_type=str(item.item_type),
                quantity=item.quantity,
                price=_item_price(item, plan),
                start_date=item.start_date,
                end_date=item.end_date,
                status=str(item.status),
                trial_end_date=item.trial_end_date,
            )
        )
    return tuple(
        ContractInfo(
            ref=c.ref,
            start_date=c.start_date,
            end_date=c.end_date,
            status=str(c.status),
            auto_renew=c.auto_renew,
            items=tuple(items),
        )
        for c, items in contracts.values()
    )


def _item_price(item: ContractItem, plan: PricePlan | None) -> Decimal | None:
    """The item's own price, else its price plan's unit price (None for tiered plans)."""
    if item.price_override is not None:
        return item.price_override
    return plan.unit_price if plan is not None else None


def _charge_totals(session: Session, account_id: int) -> tuple[ChargeTotal, ...]:
    rows = session.execute(
        select(Charge.status, Charge.currency, func.count(), func.sum(Charge.amount))
        .where(Charge.account_id == account_id)
        .group_by(Charge.status, Charge.currency)
    ).tuples()
    order = {status: n for n, status in enumerate(ChargeStatus)}
    totals = [
        ChargeTotal(str(status), currency, count, Decimal(total or 0))
        for status, currency, count, total in rows
    ]
    return tuple(sorted(totals, key=lambda t: (order[ChargeStatus(t.status)], t.currency)))


def _bills(session: Session, account_id: int) -> tuple[BillInfo, ...]:
    bills = session.scalars(
        select(Bill).where(Bill.account_id == account_id).order_by(Bill.bill_date, Bill.id)
    )
    return tuple(
        BillInfo(
            bill_no=b.bill_no,
            bill_date=b.bill_date,
            period_start=b.period_start,
            period_end=b.period_end,
            currency=b.currency,
            net=b.net,
            tax=b.tax,
            gross=b.gross,
            paid=b.amount_paid,
            status=str(b.status),
            due_date=b.due_date,
        )
        for b in bills
    )


def _payments(session: Session, account_id: int) -> tuple[PaymentInfo, ...]:
    payments = [
        PaymentInfo(
            kind="payment",
            on=p.received_on,
            method=str(p.method),
            amount=p.amount,
            currency=p.currency,
            status=str(p.status),
            reference=p.reference,
            bill_no=bill_no,
            reason=p.reason,
        )
        for p, bill_no in session.execute(
            select(Payment, Bill.bill_no)
            .outerjoin(Bill, Bill.id == Payment.bill_id)
            .where(Payment.account_id == account_id)
        ).tuples()
    ]
    refunds = [
        PaymentInfo(
            kind="refund",
            on=r.refunded_on,
            method=str(r.method),
            amount=r.amount,
            currency=r.currency,
            status=str(r.status),
            reference=r.reference,
            bill_no=None,
            reason=None,
        )
        for r in session.scalars(select(Refund).where(Refund.account_id == account_id))
    ]
    return tuple(sorted(payments + refunds, key=lambda p: (p.on, p.kind, p.reference or "")))


def _dunning(session: Session, account_id: int) -> DunningInfo | None:
    row = session.execute(
        select(AccountDunning, Bill.bill_no)
        .outerjoin(Bill, Bill.id == AccountDunning.bill_id)
        .where(AccountDunning.account_id == account_id)
    ).one_or_none()
    if row is None:
        return None
    dunning, bill_no = row
    return DunningInfo(
        state=str(dunning.state),
        since=dunning.since,
        bill_no=bill_no,
        reason=dunning.reason,
        cleared_on=dunning.cleared_on,
    )


def issues(
    session: Session,
    *,
    account_ref: str | None = None,
    since: date | None = None,
    include_past: bool = False,
) -> list[Issue]:
    """The open issues, oldest first: billing issues, failed deferred actions, rejected change
    requests, failed e-mails, then rejected usage (which has no date).

    ``since`` keeps the dated issues on or after it and leaves out rejected usage. Without
    ``include_past`` a resolved issue, or the bill issue of a unit billed since, is left out.
    """
    account_id: int | None = None
    if account_ref is not None:
        account_id = session.scalar(select(Account.id).where(Account.ref == account_ref))
        if account_id is None:
            raise UnknownAccounts([account_ref])
    found = [
        *_billing_issues(session, account_id, since, include_past),
        *_failed_actions(session, account_id, since),
        *_rejected_changes(session, account_id, since),
        *_failed_emails(session, account_id, since),
        *_held_usage(session, account_id, since),
    ]
    found.sort(key=lambda i: (i.on or date.min, i.kind, i.account_ref or ""))
    if since is None:
        found.extend(_rejected_usage(session, account_id))
    return found


def issue_is_current() -> ColumnElement[bool]:
    """An unresolved billing issue that still holds: it names no bill unit, or its unit is
    still failed (a unit billed since was retried successfully). Needs ``BillUnit`` joined."""
    return BillingIssue.resolved.is_(False) & or_(
        BillingIssue.bill_unit_id.is_(None), BillUnit.billing_state == BillingState.FAILED
    )


def _billing_issues(
    session: Session, account_id: int | None, since: date | None, include_past: bool
) -> list[Issue]:
    query = (
        select(BillingIssue, Account.ref)
        .outerjoin(Account, Account.id == BillingIssue.account_id)
        .outerjoin(BillUnit, BillUnit.id == BillingIssue.bill_unit_id)
        .order_by(BillingIssue.as_of, BillingIssue.id)
    )
    if not include_past:
        query = query.where(issue_is_current())
    if account_id is not None:
        query = query.where(BillingIssue.account_id == account_id)
    if since is not None:
        query = query.where(BillingIssue.as_of >= since)
    return [
        Issue(
            kind="billing issue" + (" (resolved)" if issue.resolved else ""),
            account_ref=ref,
            on=issue.as_of,
            where=f"{issue.step}, run {issue.run_id}",
            reason=issue.reason,
        )
        for issue, ref in session.execute(query).tuples()
    ]


def _failed_actions(session: Session, account_id: int | None, since: date | None) -> list[Issue]:
    query = (
        select(DeferredAction, Account.ref)
        .join(Account, Account.id == DeferredAction.account_id)
        .where(DeferredAction.status == ActionStatus.FAILED)
    )
    if account_id is not None:
        query = query.where(DeferredAction.account_id == account_id)
    if since is not None:
        query = query.where(DeferredAction.due_on >= since)
    return [
        Issue(
            kind="deferred action failed",
            account_ref=ref,
            on=action.done_on or action.due_on,
            where=f"{action.action} {action.ref}",
            reason=action.reason or "",
        )
        for action, ref in session.execute(query).tuples()
    ]


def _rejected_changes(session: Session, account_id: int | None, since: date | None) -> list[Issue]:
    query = (
        select(ChangeRequest, ContractItem.ref, Account.ref)
        .join(ContractItem, ContractItem.id == ChangeRequest.contract_item_id)
        .join(Contract, Contract.id == ContractItem.contract_id)
        .join(Account, Account.id == Contract.account_id)
        .where(ChangeRequest.status == RequestStatus.REJECTED)
    )
    if account_id is not None:
        query = query.where(Contract.account_id == account_id)
    if since is not None:
        query = query.where(ChangeRequest.effective_date >= since)
    return [
        Issue(
            kind="change request rejected",
            account_ref=ref,
            on=change.processed_on or change.effective_date,
            where=f"{change.kind} {change.ref} on item {item_ref}",
            reason=change.reason or "",
        )
        for change, item_ref, ref in session.execute(query).tuples()
    ]


def _failed_emails(session: Session, account_id: int | None, since: date | None) -> list[Issue]:
    query = (
        select(OutboxMessage, Bill.bill_no, Bill.bill_date, Account.ref)
        .join(Bill, Bill.id == OutboxMessage.bill_id)
        .join(Account, Account.id == Bill.account_id)
        .where(OutboxMessage.status == OutboxStatus.FAILED)
    )
    if account_id is not None:
        query = query.where(Bill.account_id == account_id)
    if since is not None:
        query = query.where(Bill.bill_date >= since)
    return [
        Issue(
            kind="invoice e-mail failed",
            account_ref=ref,
            on=bill_date,
            where=f"bill {bill_no}, {message.attempts} attempt(s)",
            reason=message.last_error or "",
        )
        for message, bill_no, bill_date, ref in session.execute(query).tuples()
    ]


def _held_usage(session: Session, account_id: int | None, since: date | None) -> list[Issue]:
    query = (
        select(UsageRecord, ContractItem.ref, Account.ref)
        .join(ContractItem, ContractItem.id == UsageRecord.contract_item_id)
        .join(Contract, Contract.id == ContractItem.contract_id)
        .join(Account, Account.id == Contract.account_id)
        .where(UsageRecord.status == UsageStatus.HELD)
        .order_by(UsageRecord.held_on, UsageRecord.id)
    )
    if account_id is not None:
        query = query.where(Contract.account_id == account_id)
    if since is not None:
        query = query.where(UsageRecord.held_on >= since)
    return [
        Issue(
            kind="late usage held",
            account_ref=ref,
            on=record.held_on,
            where=f"usage {record.external_id} on item {item_ref}",
            reason=record.hold_reason or "",
        )
        for record, item_ref, ref in session.execute(query).tuples()
    ]


def _rejected_usage(session: Session, account_id: int | None) -> list[Issue]:
    query = select(RejectedUsage).order_by(RejectedUsage.source, RejectedUsage.row_number)
    item_refs: list[str] = []
    if account_id is not None:
        item_refs = list(
            session.scalars(
                select(ContractItem.ref)
                .join(Contract, Contract.id == ContractItem.contract_id)
                .where(Contract.account_id == account_id)
            )
        )
        if not item_refs:
            return []
        query = query.where(or_(*(RejectedUsage.raw.contains(ref) for ref in item_refs)))
    rows = session.scalars(query)
    return [
        Issue(
            kind="usage rejected",
            account_ref=None,
            on=None,
            where=f"{row.source} row {row.row_number}",
            reason=row.reason,
        )
        for row in rows
        if not item_refs or _names_any(row.raw, item_refs)
    ]


def _names_any(raw: str, refs: Sequence[str]) -> bool:
    """Whether ``raw`` has one of ``refs`` as a whole field (not inside a longer ref)."""
    return any(re.search(rf"(?<![\w-]){re.escape(ref)}(?![\w-])", raw) for ref in refs)
