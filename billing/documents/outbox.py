"""The invoice e-mail outbox (Cn285 *Invoice Email Sender*): queued -> sending -> sent.

Never twice, even across a crash:
- a row is claimed (``queued -> sending``, attempts + 1) and committed *before* the SMTP
  transaction, and marked ``sent`` in its own commit right after the server accepted it;
- a row found in ``sending`` when a run starts was interrupted somewhere between those two
  commits, unless another sender is sending it right now: on PostgreSQL a sender holds an
  advisory lock on the row from before its claim until it is settled, and recovery leaves
  alone the rows whose lock is held (a killed sender's lock goes with its connection). On
  SQLite, run one sender at a time;
- an interrupted row is never sent again blindly: ``recover_interrupted`` asks a
  ``DeliveryCheck`` whether its stable Message-ID was delivered (yes -> ``sent``, no ->
  ``queued``); with no check, or no answer, it is parked as ``failed`` with the Message-ID
  to look up;
- the Message-ID derives from the bill, so even an operator's re-send is recognisable.

A link lost or timed out after the message data went out (``DeliveryUnknownError``) may have
delivered it: the row stays ``sending`` and the next run's recovery settles it as above.
Other transient failures (4xx, lost connection) retry with exponential backoff inside the run,
then wait for the next run; permanent ones (5xx, bad address) are recorded as ``failed``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from billing.documents.errors import (
    DeliveryError,
    DeliveryUnknownError,
    HeaderInjectionError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from billing.documents.formatting import Formatter
from billing.documents.mail import Envelope, SmtpSettings, Transport, build_message
from billing.documents.model import Invoice
from billing.documents.store import DocumentStore, document_name
from billing.domain.credit_notes import CREDIT_NOTE
from billing.domain.results import Mergeable
from billing.failpoints import failpoint
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill, OutboxMessage, OutboxStatus

RETRY_DELAYS = (1.0, 2.0, 4.0)
# PostgreSQL advisory lock (class, outbox id) held while a message is in flight. Advisory locks
# are database-wide, so the class is the schema's own: two billing schemas in one database
# (tests, staging beside production) must not see each other's outbox id 1 as in flight.
SENDING_LOCK = "hashtext(current_schema() || '.outbox_sending')"
MAX_ATTEMPTS = 10
SETTLE_RETRY_DELAYS = (0.2, 0.4, 0.8, 1.6, 3.2)  # recording an outcome: 6 tries (see _settle)


def message_id_for(bill_id: int, bill_no: str, domain: str) -> str:
    """The stable Message-ID of a bill's invoice e-mail."""
    safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in bill_no)
    return f"<invoice.{safe}.{bill_id}@{domain}>"


def enqueue_invoices(session: Session, invoices: Iterable[Invoice], *, domain: str) -> int:
    """Queue one e-mail per invoice whose buyer has an address; a bill is queued only once."""
    invoices = [invoice for invoice in invoices if invoice.buyer.email]
    queued = set(
        session.scalars(
            select(OutboxMessage.bill_id).where(
                OutboxMessage.bill_id.in_([invoice.bill_id for invoice in invoices])
            )
        )
    )
    rows = []
    for invoice in invoices:
        if invoice.bill_id in queued:
            continue
        f = Formatter.for_account(invoice.language, invoice.buyer.country, invoice.currency)
        rows.append(
            {
                "bill_id": invoice.bill_id,
                "to_address": invoice.buyer.email,
                "subject": (
                    f.text("email_subject_credit_note", number=invoice.bill_no)
                    if invoice.is_credit_note
                    else f.text("email_subject", number=invoice.bill_no)
                )[:255],
                "message_id": message_id_for(invoice.bill_id, invoice.bill_no, domain),
                "status": OutboxStatus.QUEUED,
                "attempts": 0,
            }
        )
    if not rows:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(OutboxMessage).on_conflict_do_nothing(index_elements=["bill_id"])
    session.connection().execute(statement, rows)  # a concurrent run's rows are left alone
    return len(rows)


class DeliveryCheck(Protocol):
    """Was a message with this Message-ID delivered? ``None`` when it cannot tell."""

    def delivered(self, message_id: str) -> bool | None: ...


class MessageIdLog:
    """A ``DeliveryCheck`` that looks a Message-ID up in the mail server's log: a file where
    the server writes each Message-ID it accepted, one a line, before it answers 250. Absent
    from the log means never accepted."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def delivered(self, message_id: str) -> bool:
        if not self.path.exists():
            return False
        return message_id in self.path.read_text(encoding="utf-8").splitlines()


def delivery_check(log: str) -> DeliveryCheck | None:
    """The check a sender settles interrupted e-mails with: the mail server's Message-ID log
    when one is configured, else none (interrupted e-mails are then parked as failed)."""
    return MessageIdLog(log) if log else None


@dataclass(frozen=True)
class Recovery:
    sent: int = 0
    requeued: int = 0
    unknown: int = 0
    in_flight: int = 0  # being sent by a live sender: left alone


def _in_flight(session: Session, outbox_id: int) -> bool:
    """Whether a live sender holds the row's lock (PostgreSQL; SQLite cannot tell).

    Recovery takes the lock until its commit, so no sender claims the row meanwhile.
    """
    if session.get_bind().dialect.name != "postgresql":
        return False
    taken = session.scalar(
        text(f"SELECT pg_try_advisory_xact_lock({SENDING_LOCK}, :id)"), {"id": outbox_id}
    )
    return not taken


def recover_interrupted(
    session: Session, check: DeliveryCheck | None, *, today: date | None = None
) -> Recovery:
    """Settle rows left in ``sending`` by a crash, without sending anything.

    A row the check finds delivered is ``sent`` on ``today`` (the recovering run's date), as
    a row whose send was not interrupted records the date of its run.
    """
    sent = requeued = unknown = in_flight = 0
    rows = session.scalars(
        select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.SENDING)
    ).all()
    for row in rows:
        if _in_flight(session, row.id):
            in_flight += 1
            continue
        session.refresh(row)  # settled by its sender between our read and our lock?
        if row.status != OutboxStatus.SENDING:
            continue
        answer = check.delivered(row.message_id) if check is not None else None
        if answer is True:
            row.status, row.last_error, row.sent_on = OutboxStatus.SENT, None, today
            sent += 1
        elif answer is False:
            row.status = OutboxStatus.QUEUED
            row.last_error = "interrupted before the server accepted it; queued again"
            requeued += 1
        else:
            row.status = OutboxStatus.FAILED
            row.last_error = (
                f"interrupted while sending; delivery unknown, so not sent again. Look up "
                f"Message-ID {row.message_id} in the mail log, then requeue if it is absent."
            )
            unknown += 1
    return Recovery(sent, requeued, unknown, in_flight)


def due_messages(session: Session, as_of: date, *, limit: int | None = None) -> list[int]:
    """Queued messages of bills dated on or before ``as_of``, oldest first."""
    query = (
        select(OutboxMessage.id)
        .join(Bill, Bill.id == OutboxMessage.bill_id)
        .where(OutboxMessage.status == OutboxStatus.QUEUED, Bill.bill_date <= as_of)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return list(session.scalars(query))


@dataclass
class SendResult(Mergeable):
    """What a sending batch did; ``failed`` maps bill numbers to the reason."""

    sent: int = 0
    retried: int = 0
    waiting: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)  # left 'sending' for recovery


@dataclass(frozen=True)
class _Pending:
    outbox_id: int
    bill_no: str
    bill_date: date
    envelope: Envelope


def _load(
    session: Session, outbox_id: int, store: DocumentStore, seller_name: str
) -> _Pending | str:
    """The row's envelope, or why it cannot be sent yet."""
    row = session.execute(
        select(OutboxMessage, Bill, Account)
        .join(Bill, Bill.id == OutboxMessage.bill_id)
        .join(Account, Account.id == Bill.account_id)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.status == OutboxStatus.QUEUED)
    ).first()
    if row is None:
        return "no longer queued"
    message, bill, account = row
    name = document_name((bill.bill_no or "", bill.bill_date), "pdf")
    try:
        pdf = store.read(name)
    except FileNotFoundError:
        return f"waiting: {name} is not rendered yet"
    f = Formatter.for_account(account.language, account.country, bill.currency)
    credit_note = bill.type_code == CREDIT_NOTE
    body = f.email_body(
        name=account.name,
        number=bill.bill_no or "",
        bill_date=bill.bill_date,
        amount=-bill.gross if credit_note else bill.gross,  # a credit note states it positive
        due=bill.due_date,
        seller=seller_name,
        credit_note=credit_note,
    )
    envelope = Envelope(
        message_id=message.message_id,
        to_address=message.to_address,
        to_name=account.name,
        subject=message.subject,
        body=body,
        attachment_name=name.rsplit("/", 1)[-1],
        pdf=pdf,
    )
    return _Pending(outbox_id, bill.bill_no or "", bill.bill_date, envelope)


class _SendingLocks:
    """PostgreSQL session advisory locks, one per message from before its claim until it is
    settled, on a connection of their own: recovery sees which ``sending`` rows are live.

    A lost connection loses its locks with it (the server drops them): a release then has
    nothing left to do, and the next ``take`` reconnects.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine if engine.dialect.name == "postgresql" else None
        self._conn: Connection | None = None

    def _call(self, function: str, outbox_id: int) -> bool:
        assert self._engine is not None
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            done = self._conn.scalar(
                text(f"SELECT {function}({SENDING_LOCK}, :id)"), {"id": outbox_id}
            )
            self._conn.commit()  # session locks outlive the transaction; do not idle in one
        except DBAPIError:
            self._drop()
            raise
        return bool(done)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()
            self._conn.close()
            self._conn = None

    def take(self, outbox_id: int) -> bool:
        if self._engine is None:
            return True
        # No retry here: a lost connection drops this one (``_call``) and ends the send step,
        # which the job's runner runs again; nothing of this message is claimed yet.
        return self._call("pg_try_advisory_lock", outbox_id)

    def release(self, outbox_id: int) -> None:
        if self._engine is not None:
            with contextlib.suppress(OperationalError):  # the lock went with the connection
                self._call("pg_advisory_unlock", outbox_id)

    def close(self) -> None:
        """Release whatever is left and return the connection to the pool without locks."""
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            self._conn.commit()
        except DBAPIError:
            self._drop()
            return
        self._conn.close()
        self._conn = None


def _claim(engine: Engine, outbox_id: int) -> bool:
    """queued -> sending, committed before the SMTP transaction starts."""
    with unit_of_work(engine) as session:
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id, OutboxMessage.status == OutboxStatus.QUEUED)
            .values(status=OutboxStatus.SENDING, attempts=OutboxMessage.attempts + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _settle(
    engine: Engine, outbox_id: int, status: OutboxStatus, error: str | None, sent_on: date | None
) -> None:
    """Record the outcome of a claimed message, retrying a transient database error in place.

    The one retry inside a step, on purpose: the outcome (the server accepted the message, or
    refused it) is known only here, after a side effect that cannot be repeated. The runner's
    retry re-runs the whole step, which finds this row ``sending`` and leaves it to the next
    run's recovery: settled by the mail server's Message-ID log when the SMTP settings name
    one, else parked as ``failed`` to be looked up by hand. A short retry of this one
    idempotent UPDATE spares that. It retries no step, so it nests no step retry.
    """
    for delay in (*SETTLE_RETRY_DELAYS, None):
        try:
            with unit_of_work(engine) as session:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == outbox_id)
                    .values(status=status, last_error=error, sent_on=sent_on)
                )
            return
        except OperationalError:
            if delay is None:
                raise
            time.sleep(delay)


def _note(engine: Engine, outbox_id: int, error: str) -> None:
    with unit_of_work(engine) as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == outbox_id).values(last_error=error)
        )


def _attempts(engine: Engine, outbox_id: int) -> int:
    with unit_of_work(engine) as session:
        return (
            session.scalar(select(OutboxMessage.attempts).where(OutboxMessage.id == outbox_id)) or 0
        )


def send_outbox(
    engine: Engine,
    outbox_ids: Sequence[int],
    *,
    transport: Transport,
    settings: SmtpSettings,
    store: DocumentStore,
    seller_name: str,
    now: datetime,
    retry_delays: Sequence[float] = RETRY_DELAYS,
    max_attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> SendResult:
    """Send these queued messages over one transport; each message has its own commits."""
    result = SendResult()
    locks = _SendingLocks(engine)
    try:
        with transport:
            for outbox_id in outbox_ids:
                with unit_of_work(engine) as session:
                    pending = _load(session, outbox_id, store, seller_name)
                if isinstance(pending, str):
                    if pending.startswith("waiting"):
                        _note(engine, outbox_id, pending)
                        result.waiting += 1
                    continue
                try:
                    message = build_message(pending.envelope, settings, now)
                except HeaderInjectionError as error:
                    _settle(engine, outbox_id, OutboxStatus.FAILED, str(error), None)
                    result.failed[pending.bill_no] = str(error)
                    continue
                if not locks.take(outbox_id):
                    continue  # another sender has it in flight
                try:
                    if not _claim(engine, outbox_id):
                        continue
                    failpoint("email.claimed")
                    _deliver(
                        engine,
                        pending,
                        message,
                        transport,
                        now,
                        retry_delays,
                        max_attempts,
                        sleep,
                        result,
                    )
                finally:
                    locks.release(outbox_id)
    finally:
        locks.close()
    return result


def _deliver(
    engine: Engine,
    pending: _Pending,
    message: object,
    transport: Transport,
    now: datetime,
    retry_delays: Sequence[float],
    max_attempts: int,
    sleep: Callable[[float], None],
    result: SendResult,
) -> None:
    """Send one claimed message, retrying transient failures with backoff."""
    for attempt in range(len(retry_delays) + 1):
        try:
            transport.send(message)  # type: ignore[arg-type]
        except TransientDeliveryError as error:
            if attempt < len(retry_delays):
                result.retried += 1
                sleep(retry_delays[attempt])
                continue
            attempts = _attempts(engine, pending.outbox_id)
            status = OutboxStatus.FAILED if attempts >= max_attempts else OutboxStatus.QUEUED
            _settle(engine, pending.outbox_id, status, f"transient: {error}", None)
            if status == OutboxStatus.FAILED:
                result.failed[pending.bill_no] = str(error)
            return
        except DeliveryUnknownError as error:
            # The server may have accepted it: never resend blindly. The row stays 'sending'
            # and the next run's recover_interrupted settles it, as after a crash.
            _note(engine, pending.outbox_id, f"delivery unknown: {error}")
            result.unknown[pending.bill_no] = str(error)
            return
        except PermanentDeliveryError as error:
            _settle(engine, pending.outbox_id, OutboxStatus.FAILED, f"permanent: {error}", None)
            result.failed[pending.bill_no] = str(error)
            return
        except DeliveryError:
            _settle(engine, pending.outbox_id, OutboxStatus.QUEUED, "configuration error", None)
            raise
        failpoint("email.sent")
        _settle(engine, pending.outbox_id, OutboxStatus.SENT, None, now.date())
        failpoint("email.settled")
        result.sent += 1
        return
