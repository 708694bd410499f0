"""The Invoice Email Sender's outbox against a real SMTP server (aiosmtpd on loopback).

Every invoice arrives exactly once: through transient failures (451), after a crash between
the server's acceptance and our ``sent`` commit, and never with injected headers. STARTTLS,
implicit TLS and authentication run against the same server with a self-signed certificate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import socket
import ssl
from collections import Counter
from datetime import date, datetime
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select, update

from billing.documents.errors import DeliveryError, HeaderInjectionError, PermanentDeliveryError
from billing.documents.mail import Envelope, SmtpSettings, SmtpTransport, build_message
from billing.documents.model import invoice_ids, load_invoices
from billing.documents.outbox import (
    due_messages,
    enqueue_invoices,
    recover_interrupted,
    send_outbox,
)
from billing.documents.store import DocumentStore, document_name
from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import Account, OutboxMessage, OutboxStatus
from tests.billing.test_billday import population  # noqa: F401

NOW = datetime(2027, 2, 1, 9, 0)


class Mailbox:
    """An aiosmtpd handler: records accepted messages; can fail DATA or refuse recipients."""

    def __init__(self) -> None:
        self.messages: list = []
        self.fail_next = 0
        self.refused: set[str] = set()
        self.slow_reply = 0.0  # seconds to wait, after taking a message, before saying 250

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refused:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.fail_next > 0:
            self.fail_next -= 1
            return "451 4.3.0 temporary failure, try again later"
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        if self.slow_reply:
            await asyncio.sleep(self.slow_reply)  # taken, but the reply comes too late
        return "250 OK queued"

    def ids(self) -> Counter:
        return Counter(m["Message-ID"] for m in self.messages)

    def delivered(self, message_id: str) -> bool:
        """A ``DeliveryCheck`` over this mailbox (as a mail-log or IMAP lookup would be)."""
        return message_id in self.ids()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A plain SMTP server on loopback: (mailbox, SmtpSettings to reach it)."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=10)
    controller.stop()


@pytest.fixture
def outbox_db(population, tmp_path):  # noqa: F811
    """Bill day of Feb 1 (two invoices), their PDFs in a store, their e-mails queued."""
    engine = population
    run_bill_day(engine, date(2027, 2, 1), "run-1")
    store = DocumentStore(str(tmp_path / "documents"))
    with unit_of_work(engine) as s:
        invoices = list(load_invoices(s, invoice_ids(s, run_id="run-1")))
        for inv in invoices:  # delivery does not look inside: any stored bytes will do
            store.write(document_name(inv, "pdf"), b"%PDF-1.7 " + inv.bill_no.encode())
        assert enqueue_invoices(s, invoices, domain="openbill.example") == 2
    return engine, store


def send(engine, store, settings, **kwargs):
    with unit_of_work(engine) as s:
        ids = due_messages(s, NOW.date())
    return send_outbox(
        engine,
        ids,
        transport=SmtpTransport(settings),
        settings=settings,
        store=store,
        seller_name="Openbill Demo SAS",
        now=NOW,
        retry_delays=(0.01, 0.02),
        **kwargs,
    )


def statuses(engine):
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(
                OutboxMessage.to_address,
                OutboxMessage.status,
                OutboxMessage.attempts,
                OutboxMessage.last_error,
            ).order_by(OutboxMessage.id)
        ).all()
    return [tuple(r) for r in rows]


def test_each_invoice_arrives_once_with_its_pdf(outbox_db, smtp_server):
    engine, store = outbox_db
    mailbox, settings = smtp_server
    result = send(engine, store, settings)
    assert (result.sent, result.failed) == (2, {})
    assert [m["To"] for m in mailbox.messages] == [
        "Customer B <b@example.test>",
        "Customer A <a@example.test>",
    ]
    first = mailbox.messages[0]
    assert first["Subject"] == "Invoice INV-00000001"
    assert first["Message-ID"].startswith("<invoice.INV-00000001.")
    [attachment] = list(first.iter_attachments())
    assert attachment.get_filename() == "INV-00000001.pdf"
    assert attachment.get_content() == b"%PDF-1.7 INV-00000001"
    assert "17.34" in first.get_body(("plain",)).get_content()
    assert [s for _, s, _, _ in statuses(engine)] == [OutboxStatus.SENT] * 2
    assert send(engine, store, settings).sent == 0  # nothing is queued any more
    assert len(mailbox.messages) == 2


def test_server_that_fails_then_recovers_gets_every_invoice_exactly_once(outbox_db, smtp_server):
    engine, store = outbox_db
    mailbox, settings = smtp_server
    mailbox.fail_next = 2  # the first invoice: 451, 451, then accepted (retries with backoff)
    result = send(engine, store, settings)
    assert (result.sent, result.retried) == (2, 2)
    mailbox.fail_next = 10  # a server down for longer: the run gives up, rows stay queued
    with unit_of_work(engine) as s:
        s.execute(update(OutboxMessage).values(status=OutboxStatus.QUEUED))
        s.execute(
            update(OutboxMessage).where(OutboxMessage.id == 2).values(status=OutboxStatus.SENT)
        )
    mailbox.messages.clear()
    down = send(engine, store, settings)
    assert (down.sent, down.failed) == (0, {})
    [(_, status, attempts, error)] = [r for r in statuses(engine) if r[1] != OutboxStatus.SENT]
    assert status == OutboxStatus.QUEUED and attempts == 2 and "451" in error
    mailbox.fail_next = 0  # the next run, the server is back
    assert send(engine, store, settings).sent == 1
    assert list(mailbox.ids().values()) == [1]


def test_permanent_refusal_is_recorded_and_not_retried(outbox_db, smtp_server):
    engine, store = outbox_db
    mailbox, settings = smtp_server
    mailbox.refused = {"a@example.test"}
    result = send(engine, store, settings)
    assert result.sent == 1 and list(result.failed) == ["INV-00000002"]
    rows = statuses(engine)
    assert rows[1][1] == OutboxStatus.FAILED and "permanent: recipient refused" in rows[1][3]
    mailbox.refused = set()
    assert send(engine, store, settings).sent == 0  # failed rows are not retried
    assert len(mailbox.messages) == 1


class Crash(BaseException):
    """The process dies (kill -9 is not catchable; neither is this by the sender)."""


class CrashAfterSending(SmtpTransport):
    """Delivers for real, then 'dies' before the sender can record ``sent``."""

    def send(self, message):
        super().send(message)
        raise Crash


def _crash_after_the_first_send(engine, store, settings) -> list[int]:
    """The first due message reaches the server, then the sender 'dies'; the due ids."""
    with unit_of_work(engine) as s:
        ids = due_messages(s, NOW.date())
    with pytest.raises(Crash):
        send_outbox(
            engine,
            ids[:1],
            transport=CrashAfterSending(settings),
            settings=settings,
            store=store,
            seller_name="S",
            now=NOW,
        )
    return ids


def _crash_between_two_sends(engine, store, settings) -> list[int]:
    """The first due message reached the server; the second was claimed, then the crash came
    before its SMTP transaction: both are left 'sending'. The due ids."""
    ids = _crash_after_the_first_send(engine, store, settings)
    with unit_of_work(engine) as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == ids[1])
            .values(status=OutboxStatus.SENDING)
        )
    return ids


def test_crash_after_the_server_accepted_does_not_send_twice(outbox_db, smtp_server):
    engine, store = outbox_db
    mailbox, settings = smtp_server
    _crash_after_the_first_send(engine, store, settings)
    assert statuses(engine)[0][1] == OutboxStatus.SENDING and len(mailbox.messages) == 1
    # Recovery without a delivery check: parked, never re-sent blindly.
    with unit_of_work(engine) as s:
        recovered = recover_interrupted(s, None)
    assert recovered.unknown == 1
    status, error = statuses(engine)[0][1], statuses(engine)[0][3]
    assert status == OutboxStatus.FAILED and "delivery unknown" in error and "<invoice." in error
    send(engine, store, settings)
    assert sorted(mailbox.ids().values()) == [1, 1]  # each invoice exactly once


def test_recovery_asks_the_delivery_check_by_message_id(outbox_db, smtp_server):
    engine, store = outbox_db
    mailbox, settings = smtp_server
    _crash_between_two_sends(engine, store, settings)
    with unit_of_work(engine) as s:
        recovered = recover_interrupted(s, mailbox)
    assert (recovered.sent, recovered.requeued, recovered.unknown) == (1, 1, 0)
    assert send(engine, store, settings).sent == 1
    assert sorted(mailbox.ids().values()) == [1, 1]


def test_the_sender_daemon_settles_by_the_delivery_log_its_smtp_settings_name(
    outbox_db, smtp_server, tmp_path
):
    """The job step the deployed Invoice Email Sender runs: with the SMTP settings'
    ``delivery_log`` (the mail server's Message-ID log), the message the server accepted is
    ``sent`` and the one it never saw is queued again."""
    from billing.jobs.invoice_email_sender import recover_interrupted_emails

    engine, store = outbox_db
    mailbox, settings = smtp_server
    ids = _crash_between_two_sends(engine, store, settings)
    with unit_of_work(engine) as s:
        accepted = s.scalar(select(OutboxMessage.message_id).where(OutboxMessage.id == ids[0]))
    log = tmp_path / "accepted-message-ids.log"
    log.write_text(f"<unrelated@example.test>\n{accepted}\n", encoding="utf-8")
    recovered = recover_interrupted_emails(engine, NOW, str(log))
    assert (recovered["sent"], recovered["requeued"], recovered["unknown"]) == (1, 1, 0)
    assert [r[1] for r in statuses(engine)] == [OutboxStatus.SENT, OutboxStatus.QUEUED]
    assert send(engine, store, settings).sent == 1
    assert sorted(mailbox.ids().values()) == [1, 1]


def test_the_sender_daemon_without_a_delivery_log_parks_what_it_cannot_settle(
    outbox_db, smtp_server
):
    from billing.jobs.invoice_email_sender import recover_interrupted_emails

    engine, store = outbox_db
    mailbox, settings = smtp_server
    _crash_after_the_first_send(engine, store, settings)
    recovered = recover_interrupted_emails(engine, NOW, "")
    assert (recovered["sent"], recovered["requeued"], recovered["unknown"]) == (0, 0, 1)
    assert statuses(engine)[0][1] == OutboxStatus.FAILED


def test_a_sender_of_another_schema_does_not_hold_this_schemas_messages(outbox_db, smtp_server):
    """Advisory locks are database-wide: a sender working on outbox id 1 of another billing
    schema in the same PostgreSQL database must not make this schema's id 1 look in flight
    (CI once saw recovery skip a crashed row because a parallel test held 'its' lock)."""
    from sqlalchemy import create_engine

    from billing.documents.outbox import _SendingLocks

    engine, store = outbox_db
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no advisory locks; recovery cannot tell live rows there")
    mailbox, settings = smtp_server
    ids = _crash_after_the_first_send(engine, store, settings)
    url = engine.url.update_query_dict({"options": "-csearch_path=public"})
    other = create_engine(url)
    neighbour = _SendingLocks(other)
    try:
        assert neighbour.take(ids[0])  # the same id, in flight in the other schema
        with unit_of_work(engine) as s:
            recovered = recover_interrupted(s, None)
        assert (recovered.unknown, recovered.in_flight) == (1, 0)
    finally:
        neighbour.close()
        other.dispose()


def test_link_lost_after_the_data_went_out_is_never_resent_blindly(outbox_db, smtp_server):
    """The server takes the message but its 250 comes after the client's timeout: a retry
    would send it again, so the row stays 'sending' and recovery settles it by Message-ID."""
    engine, store = outbox_db
    mailbox, settings = smtp_server
    mailbox.slow_reply = 1.5
    result = send(engine, store, dataclasses.replace(settings, timeout=0.5))
    assert result.sent == 0 and result.retried == 0 and len(result.unknown) == 2
    assert len(mailbox.messages) == 2  # the server did take both, once each
    assert [r[1] for r in statuses(engine)] == [OutboxStatus.SENDING] * 2
    assert all("delivery unknown" in r[3] for r in statuses(engine))
    mailbox.slow_reply = 0
    assert send(engine, store, settings).sent == 0  # not due: nothing is sent again
    with unit_of_work(engine) as s:
        recovered = recover_interrupted(s, mailbox, today=NOW.date())
    assert (recovered.sent, recovered.requeued, recovered.unknown) == (2, 0, 0)
    assert [r[1] for r in statuses(engine)] == [OutboxStatus.SENT] * 2
    assert sorted(mailbox.ids().values()) == [1, 1]


def test_a_refusal_after_the_data_is_still_a_plain_transient_failure(outbox_db, smtp_server):
    """A 451 reply to the data is an answer, not a lost link: retried as before."""
    engine, store = outbox_db
    mailbox, settings = smtp_server
    mailbox.fail_next = 1
    result = send(engine, store, settings)
    assert (result.sent, result.retried, result.unknown) == (2, 1, {})
    assert sorted(mailbox.ids().values()) == [1, 1]


HOSTILE = [
    ("to_name", "Eve\r\nBcc: victim@example.test"),
    ("to_address", "a@example.test\r\nBcc: victim@example.test"),
    ("to_address", "a@example.test, victim@example.test"),
    ("to_address", "Eve <victim@example.test>"),
    ("subject", "Invoice\nBcc: victim@example.test"),
    ("attachment_name", "x.pdf\r\nX-Evil: 1"),
]


@pytest.mark.parametrize(("field", "value"), HOSTILE)
def test_header_values_with_line_breaks_or_lists_are_refused(field, value):
    envelope = Envelope("<id@x.test>", "a@example.test", "A", "Invoice", "body", "a.pdf", b"%PDF")
    with pytest.raises(HeaderInjectionError):
        build_message(dataclasses.replace(envelope, **{field: value}), SmtpSettings(), NOW)


def test_header_injection_in_an_account_fails_that_invoice_and_sends_nothing(
    outbox_db, smtp_server
):
    engine, store = outbox_db
    mailbox, settings = smtp_server
    with unit_of_work(engine) as s:
        s.execute(update(Account).where(Account.ref == "B").values(name=HOSTILE[0][1]))
    result = send(engine, store, settings)
    assert list(result.failed) == ["INV-00000001"]
    assert statuses(engine)[0][1] == OutboxStatus.FAILED
    assert [m["To"] for m in mailbox.messages] == ["Customer A <a@example.test>"]
    assert all("victim" not in str(m) for m in mailbox.messages)


def test_pdf_not_rendered_yet_waits_in_the_queue(outbox_db, smtp_server, tmp_path):
    engine, _ = outbox_db
    _, settings = smtp_server
    result = send(engine, DocumentStore(str(tmp_path / "empty")), settings)
    assert (result.sent, result.waiting) == (0, 2)
    assert all(s == OutboxStatus.QUEUED and "not rendered" in e for _, s, _, e in statuses(engine))


# --- STARTTLS, SSL and authentication -----------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (and the CA file that trusts it)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "cert.pem", folder / "key.pem"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"billing",
        b"s3cret",
    )
    return AuthResult(success=ok)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_login(tls_files, security, monkeypatch):
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    mailbox, port = Mailbox(), free_port()
    if security == "starttls":
        options = {"tls_context": server_context, "require_starttls": True}
    else:  # implicit TLS: aiosmtpd counts only STARTTLS as TLS for its AUTH-over-TLS rule
        options = {"ssl_context": server_context, "auth_require_tls": False}
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        **({"auth_require_tls": True} | options),
    )
    controller.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust our CA: the certificate is verified
        good = SmtpSettings(
            host="127.0.0.1",
            port=port,
            security=security,
            username="billing",
            password="s3cret",
            timeout=10,
        )
        from email.message import EmailMessage

        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "b@x.test", "c@x.test", "hello"
        message.set_content("hi")
        with SmtpTransport(good) as transport:
            transport.send(message)
        assert [m["Subject"] for m in mailbox.messages] == ["hello"]
        bad = SmtpSettings(
            host="127.0.0.1",
            port=port,
            security=security,
            username="billing",
            password="wrong",
            timeout=1,  # a refusal and a held line both end in DeliveryError: no need to wait
        )
        with pytest.raises(DeliveryError), SmtpTransport(bad) as transport:
            transport.send(message)  # refused (aiosmtpd may also just hold the line)
        plain = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=1)
        with pytest.raises(DeliveryError) as refused, SmtpTransport(plain) as transport:
            transport.send(message)  # no TLS, no login: a configuration error, not the invoice's
        assert not isinstance(refused.value, PermanentDeliveryError)
    finally:
        controller.stop()
    assert len(mailbox.messages) == 1
