"""Invoice e-mails: the message (PDF attached, headers checked) and the SMTP transport.

``Transport`` is the seam where the outside world plugs in: ``SmtpTransport`` speaks SMTP with
STARTTLS, implicit TLS (SSL) or plain, with optional authentication, and turns every failure
into ``TransientDeliveryError`` (retry later) or ``PermanentDeliveryError`` (record, never
retry). Header values with a line break, a control character or an RFC 2047 encoded word are
refused before anything is sent, and the generated header block is checked to hold exactly our
headers, so that no library bug can add one.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from types import TracebackType
from typing import Any, Protocol

from billing.documents.errors import (
    DeliveryError,
    DeliveryUnknownError,
    HeaderInjectionError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from billing.domain.text import shown, text_problem

SECURITY = ("starttls", "ssl", "none")
CONFIGURATION_CODES = frozenset({530, 534, 535, 538})
"""Replies about TLS or authentication: our settings are wrong, not the invoice. The batch
stops with the messages still queued, instead of failing every invoice for good."""


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server and who the invoices come from."""

    host: str = "localhost"
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0
    sender: str = "billing@openbill.example"
    sender_name: str = "Openbill billing"
    verify_certificate: bool = True
    delivery_log: str = ""
    """A file where the mail server logs each accepted Message-ID, one a line (empty: none).
    With one, an e-mail interrupted mid-send is settled by looking it up there."""

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise DeliveryError(f"SMTP security must be one of {SECURITY}, not {self.security!r}")


HEADERS = (b"From", b"To", b"Subject", b"Message-ID", b"Date", b"MIME-Version", b"Content-Type")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def header_safe(value: str, what: str) -> str:
    """``value`` if it cannot add a header line.

    Refused: line breaks and control characters, and ``=?`` (an RFC 2047 encoded word): Python
    3.11's generator decodes ``=?utf-8?q?Eve=0D=0ABcc:...?=`` in a display name into a raw CRLF.
    """
    problem = text_problem(value)
    if problem is not None:
        raise HeaderInjectionError(f"{what} {problem}: {shown(value, 80)}")
    if "=?" in value:
        raise HeaderInjectionError(f"{what} contains an encoded word (=?): {shown(value, 80)}")
    return value


def check_header_block(message: EmailMessage) -> None:
    """Raise unless the serialized message starts with exactly our headers, one line each."""
    try:
        head = message.as_bytes().split(b"\r\n\r\n", 1)[0]
    except ValueError as error:  # the email package's defects and header errors
        raise HeaderInjectionError(f"the message cannot be written: {error}") from error
    names = [
        line.split(b":", 1)[0]
        for line in _LINE_BREAK.split(head)
        if line and line[:1] not in (b" ", b"\t")
    ]
    if names != list(HEADERS):
        raise HeaderInjectionError(f"the message's headers would be {names!r}, not {HEADERS!r}")


def single_address(value: str, what: str) -> str:
    """``value`` if it is exactly one plain ASCII address (no list, display name or break).

    Non-ASCII addresses would need SMTPUTF8, which we do not use: the message could not be written.
    """
    header_safe(value, what)
    name, addr = parseaddr(value)
    local, at, domain = addr.partition("@")
    if (
        name
        or addr != value.strip()
        or not (local and at and domain)
        or any(c in addr for c in ',;<>"() \t')
        or "@" in domain
        or not addr.isascii()
        or not _parses_as_addr_spec(addr)
    ):
        raise HeaderInjectionError(f"{what} is not a single e-mail address: {value[:80]!r}")
    return addr


def _parses_as_addr_spec(addr: str) -> bool:
    """Whether the email package can build a header address from ``addr`` (``.@x`` cannot)."""
    try:
        Address(addr_spec=addr)
    except (ValueError, HeaderParseError):
        return False
    return True


@dataclass(frozen=True)
class Envelope:
    """What one invoice e-mail says; built from the outbox row, the bill and the account."""

    message_id: str
    to_address: str
    to_name: str
    subject: str
    body: str
    attachment_name: str
    pdf: bytes


def build_message(envelope: Envelope, settings: SmtpSettings, sent_at: datetime) -> EmailMessage:
    """The MIME message: text body, PDF attached, the outbox's stable Message-ID."""
    message = EmailMessage(policy=SMTP_POLICY)
    sender = single_address(settings.sender, "sender address")
    message["From"] = Address(header_safe(settings.sender_name, "sender name"), addr_spec=sender)
    to = single_address(envelope.to_address, "recipient address")
    message["To"] = Address(header_safe(envelope.to_name, "recipient name"), addr_spec=to)
    message["Subject"] = header_safe(envelope.subject, "subject")
    message["Message-ID"] = header_safe(envelope.message_id, "Message-ID")
    message["Date"] = format_datetime(sent_at.replace(tzinfo=sent_at.tzinfo or UTC))
    message.set_content(envelope.body)
    message.add_attachment(
        envelope.pdf,
        maintype="application",
        subtype="pdf",
        filename=header_safe(envelope.attachment_name, "attachment name"),
    )
    check_header_block(message)
    return message


class Transport(Protocol):
    """Sends messages over one connection; a context manager."""

    def __enter__(self) -> Transport: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def send(self, message: EmailMessage) -> None:
        """Send or raise ``TransientDeliveryError`` / ``PermanentDeliveryError``."""
        ...


def _classify(error: Exception) -> DeliveryError:
    """SMTP failures by their reply code: 5xx is permanent, 4xx and lost links transient."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        kind = PermanentDeliveryError if codes and min(codes) >= 500 else TransientDeliveryError
        return kind(f"recipient refused: {error.recipients}")
    if isinstance(error, smtplib.SMTPResponseException) and error.smtp_code in CONFIGURATION_CODES:
        return DeliveryError(f"SMTP server configuration: {error.smtp_code} {error.smtp_error!r}")
    if isinstance(error, smtplib.SMTPResponseException):
        text = (
            error.smtp_error.decode(errors="replace")
            if isinstance(error.smtp_error, bytes)
            else str(error.smtp_error)
        )
        kind = PermanentDeliveryError if error.smtp_code >= 500 else TransientDeliveryError
        return kind(f"{error.smtp_code} {text}")
    return TransientDeliveryError(f"{type(error).__name__}: {error}")


class _TracksData:
    """Notes when the message data starts to go out (``payload_started``).

    From then on a lost link or a timeout leaves delivery unknown: the server may have
    accepted the message before the link failed, so it must not be retried blindly.
    """

    payload_started = False
    _in_data = False

    def data(self, msg: Any) -> Any:
        self._in_data = True
        try:
            return super().data(msg)  # type: ignore[misc]
        finally:
            self._in_data = False

    def send(self, s: Any) -> None:
        tail = s[-5:]  # the message data ends with CRLF . CRLF; the DATA command does not
        if isinstance(tail, str):
            tail = tail.encode("ascii", "replace")
        if self._in_data and bytes(tail) == b"\r\n.\r\n":
            self.payload_started = True
        super().send(s)  # type: ignore[misc]


class _SMTP(_TracksData, smtplib.SMTP):
    pass


class _SMTP_SSL(_TracksData, smtplib.SMTP_SSL):
    pass


class SmtpTransport:
    """SMTP with STARTTLS, SSL or none, and login when a user name is set."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.settings.verify_certificate:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.security == "ssl":
                smtp: smtplib.SMTP = _SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=self._context()
                )
            else:
                smtp = _SMTP(s.host, s.port, timeout=s.timeout)
                if s.security == "starttls":
                    smtp.starttls(context=self._context())
            if s.username:
                smtp.login(s.username, s.password)
        except smtplib.SMTPNotSupportedError as error:
            raise DeliveryError(f"SMTP server configuration: {error}") from error
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryError(
                f"SMTP login refused for {s.username!r}: {error.smtp_code}"
            ) from error
        except (smtplib.SMTPException, OSError) as error:
            raise _classify(error) from error
        return smtp

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def send(self, message: EmailMessage) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        if isinstance(smtp, _TracksData):
            smtp.payload_started = False
        try:
            smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            self._close()  # a fresh connection for the next message
            unknown = getattr(smtp, "payload_started", False) and not isinstance(
                error,
                smtplib.SMTPResponseException,  # a reply, so the server did not take it
            )
            if unknown:
                raise DeliveryUnknownError(f"{type(error).__name__}: {error}") from error
            raise _classify(error) from error
