"""BRM ``pin_refund``: pay credit balances back to the customers.

An account whose balance is below zero (it paid more than it was billed, or was credited) has
a refund item: its credit, first applied to any open bill, less the refunds already pending.
When that is at least ``min_refund``:

- an account with a card token is refunded through the gateway, under the idempotency key
  ``rf:{account_ref}:{n}`` (stored pending first, as for card charges, so a crash replays);
- an account with an IBAN (direct debit) gets a SEPA credit transfer: a pending refund and
  ONE pain.001.001.03 file per creditor and run. The refund is settled when the bank confirms
  it (``billing payment settle``);
- any other account is reported: there is no way to pay it back automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from billing.db import unit_of_work
from billing.failpoints import failpoint
from billing.models import Account, PaymentMethod, PaymentStatus, Refund
from billing.models_payments import PaymentFileKind
from billing.money import add_to_total
from billing.payments.config import PaymentConfig
from billing.payments.errors import BankDetailsError
from billing.payments.files import Entry, note_issue, store_file
from billing.payments.gateway import GatewayStatus, PaymentGateway, ask_gateway
from billing.payments.ledger import (
    apply_credit,
    fail_refund,
    insert_once,
    lock_account,
    pending_refunds,
    settle_refund,
)
from billing.payments.sepa import (
    SEPA_CURRENCY,
    CreditTransfer,
    check_bic,
    check_iban,
    credit_transfer_file,
)

STEP = "refund"


@dataclass
class RefundResult:
    refunded: int = 0
    refunded_amounts: dict[str, Decimal] = field(default_factory=dict)
    transfers: int = 0
    transfer_amounts: dict[str, Decimal] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    transient: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "refunded": self.refunded,
            "refunded_amounts": {c: str(v) for c, v in sorted(self.refunded_amounts.items())},
            "transfers_pending": self.transfers,
            "transfer_amounts": {c: str(v) for c, v in sorted(self.transfer_amounts.items())},
            "files": list(self.files),
            "failed": dict(sorted(self.failed.items())),
            "transient": sorted(self.transient),
            "skipped": dict(sorted(self.skipped.items())),
        }


@dataclass(frozen=True)
class _Item:
    """A refund to make: ``amount`` of credit back to ``account``."""

    account: Account
    number: int
    amount: Decimal

    @property
    def key(self) -> str:
        return f"rf:{self.account.ref}:{self.number}"

    @property
    def end_to_end_id(self) -> str:
        return f"RF-{self.account.id}-{self.number}"


def refund_payments(
    engine: Engine,
    as_of: date,
    gateway: PaymentGateway,
    config: PaymentConfig,
    *,
    run_id: str,
) -> RefundResult:
    """pin_refund as of ``as_of``: resume pending card refunds, then refund credit balances."""
    result = RefundResult()
    _resume_card_refunds(engine, gateway, result)
    with unit_of_work(engine) as session:
        cards, transfers = _plan(session, as_of, config, run_id, result)
    for item in cards:
        _refund_card(engine, gateway, item, as_of, result)
    if transfers:
        with unit_of_work(engine) as session:
            _transfer(session, transfers, as_of, config, result)
    return result


def _plan(
    session: Session, as_of: date, config: PaymentConfig, run_id: str, result: RefundResult
) -> tuple[list[_Item], list[_Item]]:
    credit_ids = list(
        session.scalars(select(Account.id).where(Account.balance < 0).order_by(Account.id))
    )
    cards: list[_Item] = []
    transfers: list[_Item] = []
    for account_id in credit_ids:
        apply_credit(session, account_id)
        account = lock_account(session, account_id)
        amount = -account.balance - pending_refunds(session, account_id)
        if amount < config.min_refund:
            continue
        number = 1 + (
            session.scalar(select(func.count()).where(Refund.account_id == account_id)) or 0
        )
        item = _Item(account, number, amount)
        problem = _cannot_refund(account, config)
        if problem is None and account.card_token:
            cards.append(item)
        elif problem is None:
            transfers.append(item)
        else:
            result.skipped[account.ref] = problem
            note_issue(
                session,
                run_id=run_id,
                step=STEP,
                account_id=account_id,
                as_of=as_of,
                reason=problem,
            )
    return cards, transfers


def _cannot_refund(account: Account, config: PaymentConfig) -> str | None:
    if account.payment_method is PaymentMethod.CARD and account.card_token:
        return None
    if not account.iban:
        return "credit balance, but no card and no IBAN to pay it back to"
    if account.currency != SEPA_CURRENCY:
        return f"credit in {account.currency}: SEPA transfers pay EUR only"
    if config.creditor is None:
        return "credit transfer: no SEPA creditor (debtor account) is configured"
    try:
        check_iban(account.iban)
        if account.bic:
            check_bic(account.bic)
    except BankDetailsError as error:
        return str(error)
    return None


def _insert_refund(
    session: Session, item: _Item, as_of: date, method: PaymentMethod, reference: str | None
) -> int | None:
    return insert_once(
        session,
        Refund,
        {
            "idempotency_key": item.key,
            "account_id": item.account.id,
            "method": method,
            "amount": item.amount,
            "currency": item.account.currency,
            "refunded_on": as_of,
            "status": PaymentStatus.PENDING,
            "reference": reference,
        },
    )


# --- card -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PendingRefund:
    refund_id: int
    key: str
    account_ref: str
    card_token: str
    amount: Decimal
    currency: str


def _refund_card(
    engine: Engine, gateway: PaymentGateway, item: _Item, as_of: date, result: RefundResult
) -> None:
    with unit_of_work(engine) as session:
        refund_id = _insert_refund(session, item, as_of, PaymentMethod.CARD, None)
    failpoint("refund.card_pending")
    if refund_id is not None:
        account = item.account
        token = account.card_token or ""
        pending = _PendingRefund(
            refund_id, item.key, account.ref, token, item.amount, account.currency
        )
        _call_and_record(engine, gateway, pending, result)


def _resume_card_refunds(engine: Engine, gateway: PaymentGateway, result: RefundResult) -> None:
    with unit_of_work(engine) as session:
        rows = session.execute(
            select(
                Refund.id,
                Refund.idempotency_key,
                Account.ref,
                Account.card_token,
                Refund.amount,
                Refund.currency,
            )
            .join(Account, Account.id == Refund.account_id)
            .where(Refund.method == PaymentMethod.CARD, Refund.status == PaymentStatus.PENDING)
            .order_by(Refund.id)
        ).all()
    for row in rows:
        pending = _PendingRefund(
            row.id, row.idempotency_key, row.ref, row.card_token or "", row.amount, row.currency
        )
        _call_and_record(engine, gateway, pending, result)


def _call_and_record(
    engine: Engine, gateway: PaymentGateway, pending: _PendingRefund, result: RefundResult
) -> None:
    answer = ask_gateway(
        gateway.refund, pending.key, pending.card_token, pending.amount, pending.currency
    )
    failpoint("refund.card_answered")
    if answer.status is GatewayStatus.TRANSIENT_ERROR:
        result.transient.append(pending.account_ref)
        return
    with unit_of_work(engine) as session:
        if answer.succeeded:
            if settle_refund(session, pending.refund_id, reference=answer.reference):
                result.refunded += 1
                add_to_total(result.refunded_amounts, pending.currency, pending.amount)
        elif fail_refund(session, pending.refund_id):
            result.failed[pending.account_ref] = answer.reason or "refund declined"


# --- credit transfer --------------------------------------------------------------------------


def _transfer(
    session: Session, items: list[_Item], as_of: date, config: PaymentConfig, result: RefundResult
) -> None:
    """Pending refunds and the creditor's pain.001 file, in the caller's transaction."""
    assert config.creditor is not None  # _cannot_refund skipped transfers without one
    debtor = config.creditor.checked()
    entries: list[Entry] = []
    transfers: list[CreditTransfer] = []
    for item in items:
        account = item.account
        e2e = item.end_to_end_id
        refund_id = _insert_refund(session, item, as_of, PaymentMethod.DIRECT_DEBIT, e2e)
        if refund_id is None:
            continue
        entries.append(Entry(e2e, item.amount, refund_id=refund_id))
        transfers.append(
            CreditTransfer(
                end_to_end_id=e2e,
                amount=item.amount,
                creditor_name=account.name,
                iban=check_iban(account.iban or ""),
                bic=check_bic(account.bic) if account.bic else None,
                remittance=f"Refund of the credit on account {account.ref}",
            )
        )
        result.transfers += 1
        add_to_total(result.transfer_amounts, account.currency, item.amount)
    if not entries:
        return
    path = store_file(
        session,
        kind=PaymentFileKind.CREDIT_TRANSFER,
        creditor=debtor,
        as_of=as_of,
        folder=config.sepa_folder(as_of),
        entries=entries,
        build=lambda msg_id: credit_transfer_file(
            debtor, transfers, msg_id=msg_id, as_of=as_of, execution_date=as_of
        ),
    )
    failpoint("refund.transfer_file_written")
    result.files.append(str(path))
