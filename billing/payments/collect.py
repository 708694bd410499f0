"""BRM ``pin_collect``: collect the open bills of accounts paying by card or direct debit.

As of ``as_of``, every bill of such an account with ``bill_date <= as_of`` and something left
to pay (``gross - amount_paid``, after the account's credit is applied) is collected, unless a
payment for it is already pending, its next retry is not due yet, or the account is in dunning.

- **Card**: the payment is first stored *pending* under its idempotency key
  ``card:{bill_key}:{attempt}`` and committed; then the gateway is charged with that key; then
  the answer is recorded (settled and applied, or failed). A crash after the charge leaves the
  pending row: the next run resumes it, the gateway replays the same charge, and it is
  recorded once. A transient gateway error leaves it pending for the next call.
- **Direct debit**: pending payments ``dd:{bill_key}:{attempt}`` and ONE pain.008.001.02 file
  per creditor and run, in one transaction. A debit stays pending until the bank settles it
  (statement import or ``billing payment settle``) or returns it (``billing payment return``).
- **Retries**: a bill's failed attempts are retried on ``RetryPolicy.retry_days`` after its
  first failure; when the last attempt fails the account enters dunning.

Collection needs bills, not bill numbers, so bill day runs it beside ``invoices``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, exists, func, select
from sqlalchemy.orm import Session

from billing.db import unit_of_work
from billing.failpoints import failpoint
from billing.models import Account, Bill, Payment, PaymentMethod, PaymentStatus
from billing.models_payments import PaymentFileKind
from billing.money import add_to_total
from billing.payments.config import PaymentConfig
from billing.payments.errors import BankDetailsError
from billing.payments.files import Entry, note_issue, store_file
from billing.payments.gateway import GatewayStatus, PaymentGateway, ask_gateway
from billing.payments.ledger import (
    apply_credit,
    enter_dunning,
    fail_payment,
    in_dunning,
    record_payment,
    settle_payment,
)
from billing.payments.sepa import (
    SEPA_CURRENCY,
    DirectDebit,
    check_bic,
    check_iban,
    direct_debit_file,
)
from billing.sqlkit import id_in

STEP = "collect"
COLLECTED_METHODS = (PaymentMethod.CARD, PaymentMethod.DIRECT_DEBIT)


@dataclass
class CollectResult:
    """What a collect run did; account refs name the accounts."""

    collected: int = 0
    collected_amounts: dict[str, Decimal] = field(default_factory=dict)
    declined: dict[str, str] = field(default_factory=dict)
    transient: list[str] = field(default_factory=list)
    debits: int = 0
    debit_amounts: dict[str, Decimal] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    waiting_retry: int = 0
    dunning: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain values, for a task result or a report."""
        return {
            "collected": self.collected,
            "collected_amounts": {c: str(v) for c, v in sorted(self.collected_amounts.items())},
            "declined": dict(sorted(self.declined.items())),
            "transient": sorted(self.transient),
            "debits_pending": self.debits,
            "debit_amounts": {c: str(v) for c, v in sorted(self.debit_amounts.items())},
            "files": list(self.files),
            "waiting_retry": self.waiting_retry,
            "dunning": sorted(self.dunning),
            "skipped": dict(sorted(self.skipped.items())),
        }


@dataclass(frozen=True)
class Attempt:
    """One bill to collect now: attempt ``number`` for ``amount``."""

    bill_id: int
    bill_key: str
    bill_no: str | None
    number: int
    amount: Decimal
    currency: str
    account: Any  # the account row (ref, name, method, token, bank details)

    @property
    def key(self) -> str:
        prefix = "card" if self.account.payment_method is PaymentMethod.CARD else "dd"
        return f"{prefix}:{self.bill_key}:{self.number}"


def collect_payments(
    engine: Engine,
    as_of: date,
    gateway: PaymentGateway,
    config: PaymentConfig,
    *,
    run_id: str,
) -> CollectResult:
    """pin_collect as of ``as_of``: resume pending card charges, then collect what is due."""
    result = CollectResult()
    _resume_card_payments(engine, gateway, config, result)
    with unit_of_work(engine) as session:
        cards, debits = _plan(session, as_of, config, run_id, result)
    failpoint("collect.planned")
    for attempt in cards:
        _charge(engine, gateway, attempt, as_of, config, result)
    if debits:
        with unit_of_work(engine) as session:
            _debit(session, debits, as_of, config, result)
    return result


def _plan(
    session: Session, as_of: date, config: PaymentConfig, run_id: str, result: CollectResult
) -> tuple[list[Attempt], list[Attempt]]:
    """Apply credit, then pick each open bill's attempt due today (card, debit)."""
    for account_id in _accounts_with_unapplied_credit(session, as_of):
        apply_credit(session, account_id)
    rows = _collectible(session, as_of)
    history = _failures(session, [r.bill_id for r in rows])
    blocked = in_dunning(session, list({r.account_id for r in rows}))
    cards: list[Attempt] = []
    debits: list[Attempt] = []
    for row in rows:
        if row.account_id in blocked:
            continue
        failures, first_failure, last_reason = history.get(row.bill_id, (0, None, None))
        if config.retry.exhausted(failures):
            reason = f"collection failed {failures} times: {last_reason}"
            enter_dunning(session, row.account_id, row.bill_id, as_of, reason)
            blocked.add(row.account_id)
            result.dunning.append(row.ref)
            continue
        if not config.retry.due(failures, first_failure, as_of):
            result.waiting_retry += 1
            continue
        attempt = Attempt(
            row.bill_id, row.bill_key, row.bill_no, failures + 1, row.due, row.currency, row
        )
        problem = _cannot_collect(attempt, config)
        if problem:
            result.skipped[row.ref] = problem
            note_issue(
                session,
                run_id=run_id,
                step=STEP,
                account_id=row.account_id,
                as_of=as_of,
                reason=problem,
            )
        elif row.payment_method is PaymentMethod.CARD:
            cards.append(attempt)
        else:
            debits.append(attempt)
    return cards, debits


def _accounts_with_unapplied_credit(session: Session, as_of: date) -> list[int]:
    """Collected accounts whose balance is below their open dues (money not yet applied)."""
    dues = (
        select(Bill.account_id, func.sum(Bill.gross - Bill.amount_paid).label("due"))
        .where(Bill.gross > Bill.amount_paid, Bill.bill_date <= as_of)
        .group_by(Bill.account_id)
        .subquery()
    )
    return list(
        session.scalars(
            select(Account.id)
            .join(dues, dues.c.account_id == Account.id)
            .where(Account.payment_method.in_(COLLECTED_METHODS), Account.balance < dues.c.due)
            .order_by(Account.id)
        )
    )


def _collectible(session: Session, as_of: date) -> list[Any]:
    """Open bills of card and direct-debit accounts with no payment pending, oldest first."""
    pending = exists().where(Payment.bill_id == Bill.id, Payment.status == PaymentStatus.PENDING)
    return list(
        session.execute(
            select(
                Bill.id.label("bill_id"),
                Bill.bill_key,
                Bill.bill_no,
                Bill.currency,
                (Bill.gross - Bill.amount_paid).label("due"),
                Account.id.label("account_id"),
                Account.ref,
                Account.name,
                Account.payment_method,
                Account.card_token,
                Account.iban,
                Account.bic,
                Account.mandate_ref,
                Account.mandate_date,
            )
            .join(Account, Account.id == Bill.account_id)
            .where(
                Account.payment_method.in_(COLLECTED_METHODS),
                Bill.gross > Bill.amount_paid,
                Bill.bill_date <= as_of,
                ~pending,
            )
            .order_by(Account.id, Bill.bill_date, Bill.id)
        )
    )


def _failures(
    session: Session, bill_ids: list[int]
) -> dict[int, tuple[int, date | None, str | None]]:
    """Per bill: failed attempts, the first one's date and the last one's reason."""
    found: dict[int, tuple[int, date | None, str | None]] = {}
    if not bill_ids:
        return found
    rows = session.execute(
        select(Payment.bill_id, Payment.received_on, Payment.reason)
        .where(id_in(session, Payment.bill_id, bill_ids), Payment.status == PaymentStatus.FAILED)
        .order_by(Payment.bill_id, Payment.received_on, Payment.id)
    )
    for bill_id, received_on, reason in rows:
        if bill_id is None:
            continue
        count, first, _ = found.get(bill_id, (0, received_on, None))
        found[bill_id] = (count + 1, first, reason)
    return found


def _cannot_collect(attempt: Attempt, config: PaymentConfig) -> str | None:
    """Why this bill cannot be collected by its account's method, or None."""
    account = attempt.account
    if account.payment_method is PaymentMethod.CARD:
        return None if account.card_token else "pays by card but has no card token"
    if attempt.currency != SEPA_CURRENCY:
        return f"direct debit in {attempt.currency}: SEPA debits collect EUR only"
    if config.creditor is None:
        return "direct debit: no SEPA creditor is configured"
    if not account.mandate_ref or account.mandate_date is None:
        return "direct debit without a mandate reference and signature date"
    try:
        check_iban(account.iban or "")
        if account.bic:
            check_bic(account.bic)
    except BankDetailsError as error:
        return str(error)
    return None


# --- card -------------------------------------------------------------------------------------


def _charge(
    engine: Engine,
    gateway: PaymentGateway,
    attempt: Attempt,
    as_of: date,
    config: PaymentConfig,
    result: CollectResult,
) -> None:
    """Store the charge as pending (committed), charge the card, record the answer."""
    with unit_of_work(engine) as session:
        payment_id = record_payment(
            session,
            idempotency_key=attempt.key,
            account_id=attempt.account.account_id,
            amount=attempt.amount,
            currency=attempt.currency,
            received_on=as_of,
            method=PaymentMethod.CARD,
            status=PaymentStatus.PENDING,
            bill_id=attempt.bill_id,
        )
    failpoint("collect.card_pending")
    if payment_id is not None:
        _call_and_record(
            engine,
            gateway,
            _Pending(
                payment_id,
                attempt.key,
                attempt.account.ref,
                attempt.account.card_token,
                attempt.amount,
                attempt.currency,
                attempt.bill_id,
                attempt.account.account_id,
            ),
            as_of,
            config,
            result,
        )


@dataclass(frozen=True)
class _Pending:
    payment_id: int
    key: str
    account_ref: str
    card_token: str
    amount: Decimal
    currency: str
    bill_id: int | None
    account_id: int


def _resume_card_payments(
    engine: Engine, gateway: PaymentGateway, config: PaymentConfig, result: CollectResult
) -> None:
    """Card payments left pending (a crash, a transient error) ask the gateway again."""
    with unit_of_work(engine) as session:
        rows = session.execute(
            select(
                Payment.id,
                Payment.idempotency_key,
                Account.ref,
                Account.card_token,
                Payment.amount,
                Payment.currency,
                Payment.bill_id,
                Payment.account_id,
                Payment.received_on,
            )
            .join(Account, Account.id == Payment.account_id)
            .where(Payment.method == PaymentMethod.CARD, Payment.status == PaymentStatus.PENDING)
            .order_by(Payment.id)
        ).all()
    for row in rows:
        pending = _Pending(
            row.id,
            row.idempotency_key,
            row.ref,
            row.card_token or "",
            row.amount,
            row.currency,
            row.bill_id,
            row.account_id,
        )
        _call_and_record(engine, gateway, pending, row.received_on, config, result)


def _call_and_record(
    engine: Engine,
    gateway: PaymentGateway,
    pending: _Pending,
    as_of: date,
    config: PaymentConfig,
    result: CollectResult,
) -> None:
    answer = ask_gateway(
        gateway.charge, pending.key, pending.card_token, pending.amount, pending.currency
    )
    failpoint("collect.card_answered")
    if answer.status is GatewayStatus.TRANSIENT_ERROR:
        result.transient.append(pending.account_ref)
        return
    with unit_of_work(engine) as session:
        if answer.succeeded:
            if settle_payment(session, pending.payment_id, reference=answer.reference):
                result.collected += 1
                add_to_total(result.collected_amounts, pending.currency, pending.amount)
            return
        reason = answer.reason or "declined"
        if fail_payment(session, pending.payment_id, reason):
            result.declined[pending.account_ref] = reason
            if pending.bill_id is not None:
                _dunning_if_exhausted(session, pending, pending.bill_id, as_of, config, result)


def _dunning_if_exhausted(
    session: Session,
    pending: _Pending,
    bill_id: int,
    as_of: date,
    config: PaymentConfig,
    result: CollectResult,
) -> None:
    """After the bill's last allowed attempt failed, the account enters dunning."""
    reason = result.declined.get(pending.account_ref, "declined")
    failures = session.scalar(
        select(func.count()).where(
            and_(Payment.bill_id == bill_id, Payment.status == PaymentStatus.FAILED)
        )
    )
    if config.retry.exhausted(failures or 0):
        why = f"collection failed {failures} times: {reason}"
        enter_dunning(session, pending.account_id, bill_id, as_of, why)
        result.dunning.append(pending.account_ref)


# --- direct debit -----------------------------------------------------------------------------


def _debit(
    session: Session,
    attempts: list[Attempt],
    as_of: date,
    config: PaymentConfig,
    result: CollectResult,
) -> None:
    """Pending debits and the creditor's pain.008 file, in the caller's transaction."""
    assert config.creditor is not None  # _cannot_collect skipped debits without one
    creditor = config.creditor.checked()
    first_time = _accounts_without_debits(session, [a.account.account_id for a in attempts])
    entries: list[Entry] = []
    debits: list[DirectDebit] = []
    for attempt in attempts:
        account = attempt.account
        e2e = f"DD-{attempt.bill_id}-{attempt.number}"
        payment_id = record_payment(
            session,
            idempotency_key=attempt.key,
            account_id=account.account_id,
            amount=attempt.amount,
            currency=attempt.currency,
            received_on=as_of,
            method=PaymentMethod.DIRECT_DEBIT,
            status=PaymentStatus.PENDING,
            reference=e2e,
            bill_id=attempt.bill_id,
        )
        if payment_id is None:
            continue
        entries.append(Entry(e2e, attempt.amount, payment_id=payment_id))
        debits.append(
            DirectDebit(
                end_to_end_id=e2e,
                amount=attempt.amount,
                debtor_name=account.name,
                iban=check_iban(account.iban),
                bic=check_bic(account.bic) if account.bic else None,
                mandate_ref=account.mandate_ref,
                mandate_date=account.mandate_date,
                sequence="FRST" if account.account_id in first_time else "RCUR",
                remittance=f"Bill {attempt.bill_no or attempt.bill_key}",
            )
        )
        result.debits += 1
        add_to_total(result.debit_amounts, attempt.currency, attempt.amount)
    if not entries:
        return
    collection_date = as_of + timedelta(days=config.debit_lead_days)
    path = store_file(
        session,
        kind=PaymentFileKind.DIRECT_DEBIT,
        creditor=creditor,
        as_of=as_of,
        folder=config.sepa_folder(as_of),
        entries=entries,
        build=lambda msg_id: direct_debit_file(
            creditor, debits, msg_id=msg_id, as_of=as_of, collection_date=collection_date
        ),
    )
    failpoint("collect.debit_file_written")
    result.files.append(str(path))


def _accounts_without_debits(session: Session, account_ids: list[int]) -> set[int]:
    """Accounts whose mandate has no pending or settled debit yet: their debit is FRST."""
    used = set(
        session.scalars(
            select(Payment.account_id).where(
                id_in(session, Payment.account_id, account_ids),
                Payment.method == PaymentMethod.DIRECT_DEBIT,
                Payment.status != PaymentStatus.FAILED,
            )
        )
    )
    return set(account_ids) - used
