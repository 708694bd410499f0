"""What the reliability tests share: a small population with every payment path, a real SMTP
server on loopback that keeps a mail log, a fresh PostgreSQL schema, and the whole day's state
(billing, payments, processor ledger, SEPA files, documents, e-mails) compared by business keys.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select

from billing.ingest.synthetic import seed
from billing.payments.ledger import record_payment
from billing.payments.sandbox import SandboxGateway
from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from billing.store.models import (
    Account,
    Bill,
    OutboxMessage,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
)
from billing.store.models_payments import PaymentFile
from tests.billing.test_email import free_port
from tests.conftest import pg_schema_url, scratch_schema
from tests.reliability.full_day import DayConfig
from tests.reliability.snapshots import billing_state

START, AS_OF = date(2026, 9, 1), date(2026, 11, 3)
ACCOUNTS, USAGE = 10, 3
REPO = Path(__file__).resolve().parents[2]


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A new PostgreSQL schema's URL, dropped afterwards (for module-scoped fixtures)."""
    with scratch_schema() as schema:
        yield pg_schema_url(schema)


def population(url: str) -> Engine:
    """Seed 7's accounts; the first card declines, the second fails transiently twice, the
    third card account and the first direct-debit one have paid ahead (refunds)."""
    engine = make_engine(url)
    upgrade(engine)
    seed(engine, accounts=ACCOUNTS, usage_per_account=USAGE, start=START, seed=7)
    with unit_of_work(engine) as s:
        by_method = {
            method: list(
                s.scalars(
                    select(Account)
                    .where(Account.payment_method == method, Account.currency == "EUR")
                    .order_by(Account.id)
                )
            )
            for method in (PaymentMethod.CARD, PaymentMethod.DIRECT_DEBIT)
        }
        cards, debits = by_method[PaymentMethod.CARD], by_method[PaymentMethod.DIRECT_DEBIT]
        assert len(cards) >= 3 and debits, "seed 7 has changed: pick other accounts"
        cards[0].card_token, cards[1].card_token = "tok_declined", "tok_transient"
        s.flush()
        for account in (cards[2], debits[0]):
            record_payment(
                s,
                idempotency_key=f"prepaid:{account.ref}",
                account_id=account.id,
                amount=Decimal("5000.00"),
                currency=account.currency,
                received_on=START,
                method=PaymentMethod.INVOICE,
                status=PaymentStatus.SETTLED,
            )
    return engine


class MailServer:
    """aiosmtpd on loopback. Each accepted message is logged (its Message-ID, one a line)
    before the server answers 250, as an MTA's log would show it."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.log.open("a", encoding="utf-8") as out:
            out.write(f"{message['Message-ID']}\n")
        self.messages.append(message)
        return "250 OK queued"

    def ids(self) -> Counter[str]:
        return Counter(str(m["Message-ID"]) for m in self.messages)

    def received(self) -> list[tuple[str, str, str, str]]:
        """(to, subject, attachment name, attachment sha256) of each message, sorted."""
        found = []
        for m in self.messages:
            (part,) = [p for p in m.iter_attachments()]
            digest = hashlib.sha256(part.get_content()).hexdigest()
            found.append((str(m["To"]), str(m["Subject"]), part.get_filename(), digest))
        return sorted(found)


@contextmanager
def mail_server(log: Path) -> Iterator[tuple[MailServer, int]]:
    handler = MailServer(log)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def run_child(config: DayConfig, *, failpoint: str | None = None, timeout: float = 300) -> int:
    """Run the whole day in a child process; its return code (-9 when a failpoint killed it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBILL_FAILPOINT")}
    env["PYTHONPATH"] = str(REPO)
    if failpoint:
        env["OPENBILL_FAILPOINT"] = failpoint
        env["OPENBILL_FAILPOINT_LOG"] = str(config.root / "failpoints.log")
    path = config.dump(config.root / f"day-{uuid.uuid4().hex[:6]}.json")
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.full_day", str(path)],
        env=env,
        cwd=REPO,
        timeout=timeout,
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, -9):
        raise AssertionError(f"the day failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.returncode


def reached(config: DayConfig) -> list[str]:
    """The failpoints that killed a child of this config (from OPENBILL_FAILPOINT_LOG)."""
    log = config.root / "failpoints.log"
    return log.read_text().split() if log.exists() else []


_DEBIT_E2E = re.compile(rb"<EndToEndId>DD-\d+-")


def day_state(engine: Engine, config: DayConfig) -> dict[str, Any]:
    """Everything a day leaves behind, by business keys (surrogate ids a crash may consume
    are left out: a debit's end-to-end id carries its bill's id)."""
    state = billing_state(engine)
    with unit_of_work(engine) as s:
        state["payments"] = s.execute(
            select(
                Payment.idempotency_key,
                Payment.status,
                Payment.method,
                Payment.amount,
                Payment.received_on,
                Payment.reason,
                Bill.bill_key,
            )
            .outerjoin(Bill, Bill.id == Payment.bill_id)
            .order_by(Payment.idempotency_key)
        ).all()
        state["card references"] = s.execute(
            select(Payment.idempotency_key, Payment.reference)
            .where(Payment.method == PaymentMethod.CARD)
            .order_by(Payment.idempotency_key)
        ).all()
        state["refunds"] = s.execute(
            select(
                Refund.idempotency_key,
                Refund.status,
                Refund.method,
                Refund.amount,
                Refund.reference,
            ).order_by(Refund.idempotency_key)
        ).all()
        state["payment files"] = s.execute(
            select(
                PaymentFile.msg_id,
                PaymentFile.kind,
                PaymentFile.transactions,
                PaymentFile.control_sum,
            ).order_by(PaymentFile.msg_id)
        ).all()
        state["outbox"] = s.execute(
            select(
                Bill.bill_key,
                OutboxMessage.to_address,
                OutboxMessage.subject,
                OutboxMessage.status,
                OutboxMessage.sent_on,
            )
            .join(Bill, Bill.id == OutboxMessage.bill_id)
            .order_by(Bill.bill_key)
        ).all()
    state["processor ledger"] = [
        (r.idempotency_key, r.kind, r.amount, r.currency, r.status, r.reference, r.reason)
        for r in SandboxGateway(config.ledger).requests()
    ]
    sepa = config.root / "out"
    state["sepa files"] = {
        str(p.relative_to(sepa)): _DEBIT_E2E.sub(b"<EndToEndId>DD-*-", p.read_bytes())
        for p in sorted(sepa.rglob("*.xml"))
    }
    state["documents"] = {
        str(p.relative_to(config.documents)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(config.documents.rglob("*"))
        if p.is_file()
    }
    return state


def assert_same_day(state: dict[str, Any], server: MailServer, reference: Any) -> None:
    """``state`` and the e-mails ``server`` received are those of the reference day."""
    expected, received = reference
    differences = []
    for part in expected:
        if state[part] != expected[part]:
            extra = [row for row in state[part] if row not in expected[part]]
            missing = [row for row in expected[part] if row not in state[part]]
            differences.append(
                f"{part} differs from the uninterrupted run: "
                f"only here {extra[:5]!r}; only in the uninterrupted run {missing[:5]!r}"
            )
    assert not differences, "\n".join(differences)
    numbers = sorted(bill.number for bill in state["bills"])
    assert numbers == list(range(1, len(numbers) + 1))
    requests = Counter(key.rsplit(":", 1)[0] for key, *_ in state["processor ledger"])
    assert max(requests.values()) == 1  # one processor request per bill (first attempt) or refund
    assert set(server.ids().values()) == {1}, "an invoice was e-mailed twice"
    assert server.received() == received
