"""BRM ``pin_refund``: pay credit balances back to the customers.

An account whose balance is below zero (it paid more than it was billed, or was credited) has
a refund item: its credit, first applied to any open bill, less the refunds already pending.
When that is at least ``min_refund``:

- an account with a card token is refunded through the gateway, under the idempotency key
  ``rf:{account_ref}:{n}``, in chunks as card charges are: the chunk's refunds are committed
  pending first (one transaction), then the gateway is asked, then the answers are recorded
  (one transaction), so a crash replays instead of refunding twice;
- an account with an IBAN (direct debit) gets a SEPA credit transfer: a pending refund in a
  pain.001.001.03 file of at most ``PaymentConfig.file_transactions`` transfers, in account id
  order; each file and its refunds in one transaction. The refund is settled when the bank
  confirms it (``billing payment settle``);
- any other account is reported: there is no way to pay it back automatically.

Accounts with a credit balance are planned ``PaymentConfig.page_size`` at a time, in id order,
and each page's cards are refunded before the next page is read, so memory is bounded by a
page and a file whatever the number of accounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from billing.domain import charge_keys
from billing.domain.money import add_to_total
from billing.failpoints import failpoint
from billing.payments.config import PaymentConfig
from billing.payments.errors import BankDetailsError
from billing.payments.files import Entry, FileBatches, note_issues, store_file
from billing.payments.gateway import (
    GatewayRequest,
    PaymentGateway,
    ask_gateway_many,
    sort_answers,
)
from billing.payments.ledger import (
    apply_credits,
    fail_refunds,
    lock_balances,
    pending_refunds_of,
    settle_refunds,
)
from billing.payments.sepa import (
    SEPA_CURRENCY,
    CreditTransfer,
    check_bic,
    check_iban,
    credit_transfer_file,
)
from billing.store.db import unit_of_work
from billing.store.models import Account, PaymentMethod, PaymentStatus, Refund
from billing.store.models_payments import PaymentFileKind
from billing.store.sqlkit import bulk_insert, id_in

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
        return charge_keys.refund(self.account.ref, self.number)

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
    _resume_card_refunds(engine, gateway, config, result)
    files: FileBatches[_Item] = FileBatches(
        config.file_transactions, lambda items: _transfer(engine, items, as_of, config, result)
    )
    after = 0
    while True:
        with unit_of_work(engine) as session:
            page = _plan(session, after, as_of, config, run_id, result)
        if page is None:
            break
        for start in range(0, len(page.cards), config.card_chunk):
            chunk = page.cards[start : start + config.card_chunk]
            _refund_cards(engine, gateway, chunk, as_of, result)
        for item in page.transfers:
            files.add([item])
        after = page.last_account_id
    files.flush()
    return result


@dataclass(frozen=True)
class _Page:
    """One page of accounts with a credit balance, planned, in account id order."""

    last_account_id: int
    cards: list[_Item]
    transfers: list[_Item]


def _plan(
    session: Session,
    after: int,
    as_of: date,
    config: PaymentConfig,
    run_id: str,
    result: RefundResult,
) -> _Page | None:
    """The next page of credit accounts after ``after``: apply credit, size each refund.

    None when no account with a credit balance is left.
    """
    credit_ids = _credit_accounts(session, after, config.page_size)
    if not credit_ids:
        return None
    apply_credits(session, {account_id: () for account_id in credit_ids})
    balances = lock_balances(session, credit_ids)
    on_the_way = pending_refunds_of(session, credit_ids)
    earlier = _refund_counts(session, credit_ids)
    accounts = {
        a.id: a
        for a in session.scalars(select(Account).where(id_in(session, Account.id, credit_ids)))
    }
    page = _Page(credit_ids[-1], [], [])
    issues: list[tuple[int, str]] = []
    for account_id in credit_ids:
        account = accounts[account_id]
        amount = -balances[account_id] - on_the_way.get(account_id, Decimal(0))
        if amount < config.min_refund:
            continue
        number = 1 + earlier.get(account_id, 0)
        item = _Item(account, number, amount)
        problem = _cannot_refund(account, config)
        if problem is None and account.card_token:
            page.cards.append(item)
        elif problem is None:
            page.transfers.append(item)
        else:
            result.skipped[account.ref] = problem
            issues.append((account_id, problem))
    note_issues(session, run_id=run_id, step=STEP, as_of=as_of, issues=issues)
    return page


def _credit_accounts(session: Session, after: int, limit: int) -> list[int]:
    """The next ``limit`` accounts with a credit (negative) balance after id ``after``."""
    return list(
        session.scalars(
            select(Account.id)
            .where(Account.balance < 0, Account.id > after)
            .order_by(Account.id)
            .limit(limit)
        )
    )


def _refund_counts(session: Session, account_ids: list[int]) -> dict[int, int]:
    """How many refunds each account has had (any status): the next one's number follows."""
    rows = session.execute(
        select(Refund.account_id, func.count())
        .where(id_in(session, Refund.account_id, account_ids))
        .group_by(Refund.account_id)
    )
    return {account_id: count for account_id, count in rows}


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


def _insert_refunds(
    session: Session,
    items: list[_Item],
    as_of: date,
    method: PaymentMethod,
    references: dict[str, str] | None = None,
) -> dict[str, int]:
    """Insert the items' pending refunds in one statement; the ids of those inserted, by key."""
    inserted = bulk_insert(
        session,
        Refund.__table__,
        [
            {
                "idempotency_key": item.key,
                "account_id": item.account.id,
                "method": method,
                "amount": item.amount,
                "currency": item.account.currency,
                "refunded_on": as_of,
                "status": PaymentStatus.PENDING,
                "reference": (references or {}).get(item.key),
            }
            for item in items
        ],
        on_conflict="nothing",
        returning=("idempotency_key", "id"),
    )
    return {key: refund_id for key, refund_id in inserted}


# --- card -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PendingRefund:
    refund_id: int
    key: str
    account_ref: str
    card_token: str
    amount: Decimal
    currency: str


def _refund_cards(
    engine: Engine, gateway: PaymentGateway, items: list[_Item], as_of: date, result: RefundResult
) -> None:
    """One chunk: store its refunds pending (committed), ask the gateway, record the answers."""
    with unit_of_work(engine) as session:
        inserted = _insert_refunds(session, items, as_of, PaymentMethod.CARD)
    failpoint("refund.card_pending")
    pending = [
        _PendingRefund(
            inserted[item.key],
            item.key,
            item.account.ref,
            item.account.card_token or "",
            item.amount,
            item.account.currency,
        )
        for item in items
        if item.key in inserted
    ]
    _call_and_record(engine, gateway, pending, result)


def _resume_card_refunds(
    engine: Engine, gateway: PaymentGateway, config: PaymentConfig, result: RefundResult
) -> None:
    """Card refunds left pending ask the gateway again, a chunk at a time in refund id order."""
    after = 0
    while chunk := _pending_card_refunds(engine, after, config.card_chunk):
        _call_and_record(engine, gateway, chunk, result)
        after = chunk[-1].refund_id


def _pending_card_refunds(engine: Engine, after: int, limit: int) -> list[_PendingRefund]:
    """The next ``limit`` pending card refunds after refund id ``after``."""
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
            .where(
                Refund.method == PaymentMethod.CARD,
                Refund.status == PaymentStatus.PENDING,
                Refund.id > after,
            )
            .order_by(Refund.id)
            .limit(limit)
        ).all()
    return [
        _PendingRefund(
            row.id, row.idempotency_key, row.ref, row.card_token or "", row.amount, row.currency
        )
        for row in rows
    ]


def _call_and_record(
    engine: Engine, gateway: PaymentGateway, pending: list[_PendingRefund], result: RefundResult
) -> None:
    """Ask the gateway for the chunk's refunds, then record every final answer at once."""
    answers = ask_gateway_many(
        gateway,
        "refund",
        [GatewayRequest(p.key, p.card_token, p.amount, p.currency) for p in pending],
    )
    failpoint("refund.card_answered")
    by_id = {p.refund_id: p for p in pending}
    sorted_ = sort_answers(list(by_id), answers, "refund declined")
    result.transient.extend(by_id[i].account_ref for i in sorted_.transient)
    if not sorted_.final:
        return
    with unit_of_work(engine) as session:
        for refund_id in settle_refunds(session, sorted_.settled):
            p = by_id[refund_id]
            result.refunded += 1
            add_to_total(result.refunded_amounts, p.currency, p.amount)
        for refund_id in fail_refunds(session, list(sorted_.declined)):
            result.failed[by_id[refund_id].account_ref] = sorted_.declined[refund_id]


# --- credit transfer --------------------------------------------------------------------------


def _transfer(
    engine: Engine, items: list[_Item], as_of: date, config: PaymentConfig, result: RefundResult
) -> None:
    """One pain.001 file: its refunds stored pending, the file recorded and written, one commit."""
    with unit_of_work(engine) as session:
        _transfer_file(session, items, as_of, config, result)


def _transfer_file(
    session: Session, items: list[_Item], as_of: date, config: PaymentConfig, result: RefundResult
) -> None:
    """Pending refunds and the creditor's pain.001 file, in the caller's transaction."""
    assert config.creditor is not None  # _cannot_refund skipped transfers without one
    debtor = config.creditor.checked()
    references = {item.key: item.end_to_end_id for item in items}
    inserted = _insert_refunds(session, items, as_of, PaymentMethod.DIRECT_DEBIT, references)
    entries: list[Entry] = []
    transfers: list[CreditTransfer] = []
    for item in items:
        if item.key not in inserted:
            continue
        account = item.account
        e2e = item.end_to_end_id
        entries.append(Entry(e2e, item.amount, refund_id=inserted[item.key]))
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
