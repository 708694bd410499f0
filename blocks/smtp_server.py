"""The SMTP server that sends invoice e-mails. The password is a secret."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class SmtpServer(Block):
    """Host, port, security (STARTTLS, SSL or none), login, and the sender of invoices."""

    _block_type_name = "SMTP Server"
    _description = "SMTP relay for the Invoice Email Sender (STARTTLS or SSL, login)."

    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str = ""
    password: SecretStr = Field(SecretStr(""), description="SMTP password (a secret).")
    timeout_seconds: float = Field(30, gt=0)
    verify_certificate: bool = True
    sender: str = Field("billing@openbill.example", description="From address.")
    sender_name: str = "Openbill billing"
    delivery_log: str = Field(
        "",
        description="File where the mail server logs each accepted Message-ID, one a line. "
        "With it, an e-mail interrupted mid-send is marked sent or queued again by looking "
        "it up; without it, such an e-mail is parked as failed for an operator to check.",
    )
