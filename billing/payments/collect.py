"""BRM ``pin_collect``: collect the open bills of accounts paying by card or direct debit.

As of ``as_of``, every bill of such an account with ``bill_date <= as_of`` and something left
to pay (``gross - amount_paid``, after the account's credit is applied) is collected, unless a
payment for it is already pending, its next retry is not due yet, or the account is in dunning.

- **Card**, in chunks of ``PaymentConfig.card_chunk``: the chunk's payments are first stored
  *pending* under their idempotency keys ``card:{bill_key}:{attempt}`` and committed, in one
  transaction (``_store_pending``); then the gateway is asked for each (``_ask_gateway``); then
  every answer is recorded (settled and applied, or failed, and dunning) in one transaction
  (``_record_answers``). A crash between those leaves pending rows: the next run resumes them,
  the gateway replays the same charges, and each is recorded once. A transient gateway error
  leaves its payment pending for the next call.
- **Direct debit** (SEPA Core): pending payments ``dd:{bill_key}:{attempt}``, one per bill (one
  bulk insert per file), and pain.008.001.02 files of at most
  ``PaymentConfig.file_transactions`` payments each, in account id order; each file and its
  payments in one transaction. A bill is collected on ``collection_date`` (its due date on the
  TARGET2 calendar, never earlier than the rulebook's D-1 allows for a file sent on
  ``as_of``); the bills of one mandate collected on one date make ONE debit (``DrctDbtTxInf``)
  for their sum, whose end-to-end id is the reference of each of their payments, so settling or
  returning it settles or reopens each bill. A bill whose collection date is beyond
  ``PaymentConfig.debit_horizon_days`` waits for a later day's run. A debit stays pending until
  the bank settles it (statement import or ``billing payment settle``) or returns it
  (``billing payment return``).
- **Retries**: a bill's failed attempts are retried on ``RetryPolicy.retry_days`` after its
  first failure; when the last attempt fails the account enters dunning.

Accounts are planned ``PaymentConfig.page_size`` at a time, in id order (``_plan``: credit
applied, attempts picked, committed), and each page's cards are charged before the next page
is read; its debits wait for their file, which is written as soon as it is full. So memory is
bounded by a page and a file, whatever the number of accounts, and the files are the same
whatever the page size.

Collection needs bills, not bill numbers, yet bill day runs it after ``invoices``: numbering
holds a row lock on every new bill until it commits, and collection locks bills while it
writes their payments, so the two side by side deadlocked at 1,000,000 accounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any

from sqlalchemy import Engine, exists, func, select
from sqlalchemy.orm import Session

from billing.domain import charge_keys
from billing.domain.direct_debit import collection_date, may_send
from billing.domain.money import add_to_total
from billing.failpoints import failpoint
from billing.payments.config import PaymentConfig
from billing.payments.errors import BankDetailsError
from billing.payments.files import Entry, FileBatches, note_issues, store_file
from billing.payments.gateway import (
    GatewayRequest,
    GatewayResult,
    PaymentGateway,
    ask_gateway_many,
    sort_answers,
)
from billing.payments.ledger import (
    apply_credits,
    enter_dunning,
    fail_payments,
    in_dunning,
    record_pending_payments,
    settle_payments,
)
from billing.payments.sepa import (
    SEPA_CURRENCY,
    DirectDebit,
    check_bic,
    check_iban,
    direct_debit_file,
)
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill, Payment, PaymentMethod, PaymentStatus
from billing.store.models_payments import PaymentFileKind
from billing.store.sqlkit import id_in

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
    not_yet_due: int = 0
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
            "debits_not_yet_due": self.not_yet_due,
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
    collect_on: date | None = None  # a debit's ReqdColltnDt (None for a card)

    @property
    def key(self) -> str:
        if self.account.payment_method is PaymentMethod.CARD:
            return charge_keys.card_payment(self.bill_key, self.number)
        return charge_keys.direct_debit(self.bill_key, self.number)


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
    files: FileBatches[Attempt] = FileBatches(
        config.file_transactions, lambda debits: _debit(engine, debits, as_of, config, result)
    )
    after = 0
    while True:
        with unit_of_work(engine) as session:
            page = _plan(session, after, as_of, config, run_id, result)
        if page is None:
            break
        failpoint("collect.planned")
        for start in range(0, len(page.cards), config.card_chunk):
            chunk = page.cards[start : start + config.card_chunk]
            _charge(engine, gateway, chunk, as_of, config, result)
        for _, debits in groupby(page.debits, key=lambda a: a.account.account_id):
            files.add(list(debits))
        after = page.last_account_id
    files.flush()
    return result


@dataclass(frozen=True)
class _Page:
    """One page of collected accounts, planned: the attempts due, in account id order."""

    last_account_id: int
    cards: list[Attempt]
    debits: list[Attempt]


def _plan(
    session: Session,
    after: int,
    as_of: date,
    config: PaymentConfig,
    run_id: str,
    result: CollectResult,
) -> _Page | None:
    """The next page of accounts after ``after``: apply credit, pick each open bill's attempt.

    None when no collected account is left. The page's queries select the account id range
    ``first..last`` of the page (an index range scan each), never the whole table.
    """
    account_ids = _collected_accounts(session, after, config.page_size)
    if not account_ids:
        return None
    first, last = account_ids[0], account_ids[-1]
    credit = _accounts_with_unapplied_credit(session, as_of, first, last)
    apply_credits(session, {a: () for a in credit})
    rows = _collectible(session, as_of, first, last)
    history = _failures(session, first, last)
    blocked = in_dunning(session, sorted({r.account_id for r in rows}))
    page = _Page(last, [], [])
    issues: list[tuple[int, str]] = []
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
            issues.append((row.account_id, problem))
        elif row.payment_method is PaymentMethod.CARD:
            page.cards.append(attempt)
        else:
            collect_on = collection_date(row.due_date, as_of, config.debit_lead_days)
            if may_send(collect_on, as_of, config.debit_horizon_days, config.debit_lead_days):
                page.debits.append(replace(attempt, collect_on=collect_on))
            else:
                result.not_yet_due += 1  # a later day's run sends it, for the same date
    note_issues(session, run_id=run_id, step=STEP, as_of=as_of, issues=issues)
    return page


def _collected_accounts(session: Session, after: int, limit: int) -> list[int]:
    """The next ``limit`` accounts paying by card or direct debit after id ``after``."""
    return list(
        session.scalars(
            select(Account.id)
            .where(Account.payment_method.in_(COLLECTED_METHODS), Account.id > after)
            .order_by(Account.id)
            .limit(limit)
        )
    )


def _accounts_with_unapplied_credit(
    session: Session, as_of: date, first: int, last: int
) -> list[int]:
    """Collected accounts of ``first..last`` whose balance is below their open dues."""
    dues = (
        select(Bill.account_id, func.sum(Bill.gross - Bill.amount_paid).label("due"))
        .where(
            Bill.account_id.between(first, last),
            Bill.gross > Bill.amount_paid,
            Bill.bill_date <= as_of,
        )
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


def _collectible(session: Session, as_of: date, first: int, last: int) -> list[Any]:
    """Open bills of ``first..last``'s card and direct-debit accounts with no payment pending.

    In account id order, each account's oldest first.
    """
    pending = exists().where(
        Payment.account_id.between(first, last),
        Payment.bill_id == Bill.id,
        Payment.status == PaymentStatus.PENDING,
    )
    return list(
        session.execute(
            select(
                Bill.id.label("bill_id"),
                Bill.bill_key,
                Bill.bill_no,
                Bill.currency,
                Bill.due_date,
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
                Bill.account_id.between(first, last),
                Account.payment_method.in_(COLLECTED_METHODS),
                Bill.gross > Bill.amount_paid,
                Bill.bill_date <= as_of,
                ~pending,
            )
            .order_by(Account.id, Bill.bill_date, Bill.id)
        )
    )


def _failures(
    session: Session, first: int, last: int
) -> dict[int, tuple[int, date | None, str | None]]:
    """Per bill of ``first..last``: failed attempts, the first one's date, the last reason."""
    found: dict[int, tuple[int, date | None, str | None]] = {}
    rows = session.execute(
        select(Payment.bill_id, Payment.received_on, Payment.reason)
        .where(
            Payment.account_id.between(first, last),
            Payment.status == PaymentStatus.FAILED,
        )
        .order_by(Payment.bill_id, Payment.received_on, Payment.id)
    )
    for bill_id, received_on, reason in rows:
        if bill_id is None:
            continue
        count, first_on, _ = found.get(bill_id, (0, received_on, None))
        found[bill_id] = (count + 1, first_on, reason)
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
    attempts: list[Attempt],
    as_of: date,
    config: PaymentConfig,
    result: CollectResult,
) -> None:
    """One chunk: store its payments pending (committed), charge the cards, record answers."""
    pending = _store_pending(engine, attempts, as_of)
    failpoint("collect.card_pending")
    answers = _ask_gateway(gateway, pending)
    failpoint("collect.card_answered")
    _record_answers(engine, pending, answers, config, result)


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
    received_on: date


def _store_pending(engine: Engine, attempts: list[Attempt], as_of: date) -> list[_Pending]:
    """Commit the chunk's card payments as pending, in ONE transaction, before any charge.

    A key stored already (a rerun) is left out: its pending row is resumed, not charged here.
    """
    with unit_of_work(engine) as session:
        inserted = record_pending_payments(
            session,
            [
                {
                    "idempotency_key": a.key,
                    "account_id": a.account.account_id,
                    "bill_id": a.bill_id,
                    "method": PaymentMethod.CARD,
                    "amount": a.amount,
                    "currency": a.currency,
                    "received_on": as_of,
                    "reference": None,
                }
                for a in attempts
            ],
        )
    return [
        _Pending(
            inserted[a.key],
            a.key,
            a.account.ref,
            a.account.card_token,
            a.amount,
            a.currency,
            a.bill_id,
            a.account.account_id,
            as_of,
        )
        for a in attempts
        if a.key in inserted
    ]


def _resume_card_payments(
    engine: Engine, gateway: PaymentGateway, config: PaymentConfig, result: CollectResult
) -> None:
    """Card payments left pending (a crash, a transient error) ask the gateway again.

    A chunk at a time, in payment id order; one still transient stays pending for the next run.
    """
    after = 0
    while chunk := _pending_card_payments(engine, after, config.card_chunk):
        _record_answers(engine, chunk, _ask_gateway(gateway, chunk), config, result)
        after = chunk[-1].payment_id


def _pending_card_payments(engine: Engine, after: int, limit: int) -> list[_Pending]:
    """The next ``limit`` pending card payments after payment id ``after``."""
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
            .where(
                Payment.method == PaymentMethod.CARD,
                Payment.status == PaymentStatus.PENDING,
                Payment.id > after,
            )
            .order_by(Payment.id)
            .limit(limit)
        ).all()
    return [
        _Pending(
            row.id,
            row.idempotency_key,
            row.ref,
            row.card_token or "",
            row.amount,
            row.currency,
            row.bill_id,
            row.account_id,
            row.received_on,
        )
        for row in rows
    ]


def _ask_gateway(gateway: PaymentGateway, pending: list[_Pending]) -> list[GatewayResult]:
    """Charge each pending payment's card under its idempotency key (replayed if known)."""
    return ask_gateway_many(
        gateway,
        "charge",
        [GatewayRequest(p.key, p.card_token, p.amount, p.currency) for p in pending],
    )


def _record_answers(
    engine: Engine,
    pending: list[_Pending],
    answers: list[GatewayResult],
    config: PaymentConfig,
    result: CollectResult,
) -> None:
    """Record the chunk's final answers in ONE transaction; transient ones stay pending.

    Settled payments are applied to their bills; a failed one may put its account in dunning
    as of the day the payment was stored.
    """
    by_id = {p.payment_id: p for p in pending}
    sorted_ = sort_answers(list(by_id), answers, "declined")
    result.transient.extend(by_id[i].account_ref for i in sorted_.transient)
    if not sorted_.final:
        return
    with unit_of_work(engine) as session:
        for payment_id in settle_payments(session, sorted_.settled):
            p = by_id[payment_id]
            result.collected += 1
            add_to_total(result.collected_amounts, p.currency, p.amount)
        failed = [by_id[i] for i in fail_payments(session, sorted_.declined)]
        for p in failed:
            result.declined[p.account_ref] = sorted_.declined[p.payment_id]
        _dunning_if_exhausted(session, failed, config, result)


def _dunning_if_exhausted(
    session: Session,
    failed: list[_Pending],
    config: PaymentConfig,
    result: CollectResult,
) -> None:
    """After a bill's last allowed attempt failed, its account enters dunning."""
    bill_ids = sorted({p.bill_id for p in failed if p.bill_id is not None})
    if not bill_ids:
        return
    failures = dict(
        session.execute(
            select(Payment.bill_id, func.count())
            .where(
                id_in(session, Payment.bill_id, bill_ids), Payment.status == PaymentStatus.FAILED
            )
            .group_by(Payment.bill_id)
        )
        .tuples()
        .all()
    )
    for p in failed:
        if p.bill_id is None:
            continue
        count = failures.get(p.bill_id, 0)
        if config.retry.exhausted(count):
            reason = result.declined.get(p.account_ref, "declined")
            why = f"collection failed {count} times: {reason}"
            enter_dunning(session, p.account_id, p.bill_id, p.received_on, why)
            result.dunning.append(p.account_ref)


# --- direct debit -----------------------------------------------------------------------------


def _debit(
    engine: Engine,
    attempts: list[Attempt],
    as_of: date,
    config: PaymentConfig,
    result: CollectResult,
) -> None:
    """One pain.008 file: its debits stored pending, the file recorded and written, one commit."""
    with unit_of_work(engine) as session:
        _debit_file(session, attempts, as_of, config, result)


def _debit_file(
    session: Session,
    attempts: list[Attempt],
    as_of: date,
    config: PaymentConfig,
    result: CollectResult,
) -> None:
    """Pending payments and the creditor's pain.008 file, in the caller's transaction.

    One payment per bill; one debit per mandate (account) and collection date, for the sum of
    its bills, under the end-to-end id that every one of its payments carries as reference.
    """
    assert config.creditor is not None  # _cannot_collect skipped debits without one
    creditor = config.creditor.checked()
    first_time = _accounts_without_debits(session, [a.account.account_id for a in attempts])
    groups = _debit_groups(attempts)
    e2e_of = {a.key: _end_to_end_id(group) for group in groups for a in group}
    inserted = record_pending_payments(
        session,
        [
            {
                "idempotency_key": a.key,
                "account_id": a.account.account_id,
                "bill_id": a.bill_id,
                "method": PaymentMethod.DIRECT_DEBIT,
                "amount": a.amount,
                "currency": a.currency,
                "received_on": as_of,
                "reference": e2e_of[a.key],
                "collect_on": a.collect_on,
            }
            for a in attempts
        ],
    )
    entries: list[Entry] = []
    debits: list[DirectDebit] = []
    frst_given: set[int] = set()
    for group in groups:
        new = [a for a in group if a.key in inserted]  # a rerun inserts nothing
        if not new:
            continue
        first, account = new[0], new[0].account
        assert first.collect_on is not None  # _plan dated every debit
        e2e = e2e_of[first.key]
        entries.extend(Entry(e2e, a.amount, payment_id=inserted[a.key]) for a in new)
        amount = sum((a.amount for a in new), Decimal(0))
        # A mandate's first collection is FRST: the earliest date of an account without debits.
        frst = account.account_id in first_time and account.account_id not in frst_given
        if frst:
            frst_given.add(account.account_id)
        debits.append(
            DirectDebit(
                end_to_end_id=e2e,
                amount=amount,
                debtor_name=account.name,
                iban=check_iban(account.iban),
                bic=check_bic(account.bic) if account.bic else None,
                mandate_ref=account.mandate_ref,
                mandate_date=account.mandate_date,
                sequence="FRST" if frst else "RCUR",
                remittance=remittance([a.bill_no or a.bill_key for a in new]),
                collection_date=first.collect_on,
            )
        )
        result.debits += 1
        add_to_total(result.debit_amounts, first.currency, amount)
    if not entries:
        return
    path = store_file(
        session,
        kind=PaymentFileKind.DIRECT_DEBIT,
        creditor=creditor,
        as_of=as_of,
        folder=config.sepa_folder(as_of),
        entries=entries,
        build=lambda msg_id: direct_debit_file(creditor, debits, msg_id=msg_id, as_of=as_of),
    )
    failpoint("collect.debit_file_written")
    result.files.append(str(path))


def _debit_groups(attempts: list[Attempt]) -> list[list[Attempt]]:
    """The attempts of one account (mandate) and collection date together: one debit each.

    In order of account, then collection date; each group's bills in their collection order
    (oldest first). The same attempts always form the same groups.
    """
    groups: dict[tuple[int, date | None], list[Attempt]] = {}
    for a in attempts:
        groups.setdefault((a.account.account_id, a.collect_on), []).append(a)
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1] or date.min))]


def _end_to_end_id(group: list[Attempt]) -> str:
    """``DD-{bill id}-{attempt}`` of the group's lowest bill id: deterministic and unique.

    Unique because that attempt of that bill is collected once (its idempotency key); a debit
    of one bill keeps the id it always had.
    """
    first = min(group, key=lambda a: a.bill_id)
    return f"DD-{first.bill_id}-{first.number}"


REMITTANCE_LENGTH = 140
"""RmtInf/Ustrd: at most 140 characters (pain.008.001.02; EPC SDD Core rulebook AT-22)."""


def remittance(bill_numbers: list[str]) -> str:
    """``Bill N`` for one bill, ``Bills N1, N2, ...`` for several; at most 140 characters.

    When the numbers do not all fit, as many as fit are listed, then ``+K more``.
    """
    if len(bill_numbers) == 1:
        return f"Bill {bill_numbers[0]}"[:REMITTANCE_LENGTH]
    for shown in range(len(bill_numbers), 0, -1):
        text = "Bills " + ", ".join(bill_numbers[:shown])
        if shown < len(bill_numbers):
            text += f" +{len(bill_numbers) - shown} more"
        if len(text) <= REMITTANCE_LENGTH:
            return text
    return f"{len(bill_numbers)} bills"


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
