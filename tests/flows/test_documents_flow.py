"""Documents through Prefect, on SQLite and PostgreSQL: bill day renders after its gate and
queues the e-mails, render-invoices re-renders the same bytes, and the Invoice Email Sender
delivers each Factur-X PDF exactly once to a real SMTP server."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import pytest
from facturx import get_xml_from_pdf
from sqlalchemy import select
from typer.testing import CliRunner

from billing.store.db import unit_of_work
from billing.store.models import OutboxMessage, OutboxStatus
from blocks.smtp_server import SmtpServer
from flows.bill_day import bill_day
from flows.cli import app
from flows.invoice_email_sender import invoice_email_sender
from flows.render_invoices import render_invoices
from tests.billing.test_billday import population  # noqa: F401
from tests.billing.test_email import smtp_server  # noqa: F401

STORE = Path("var/documents")
PDFS = [STORE / "2027/01/INV-00000001.pdf", STORE / "2027/02/INV-00000002.pdf"]


@pytest.fixture
def billed(population, monkeypatch, tmp_path):  # noqa: F811
    """Bill day of Feb 1 through the flow, in a scratch working directory."""
    monkeypatch.chdir(tmp_path)  # reports and the default document store go to ./var
    url = population.url.render_as_string(hide_password=False)
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    from flows.runtime import engine_for

    engine_for.cache_clear()
    summary = bill_day(as_of=date(2027, 2, 1), database_block="")
    yield population, summary
    engine_for.cache_clear()


def _outbox(engine):
    with unit_of_work(engine) as s:
        rows = s.execute(select(OutboxMessage.to_address, OutboxMessage.status)).all()
    return sorted(tuple(r) for r in rows)


def test_bill_day_renders_documents_after_the_gate_and_rerenders_the_same(billed):
    engine, summary = billed
    assert summary["documents rendered"] == 2
    assert summary["invoice e-mails queued"] == 2
    assert all(p.is_file() and p.with_suffix(".xml").is_file() for p in PDFS)
    name, xml = get_xml_from_pdf(PDFS[1].read_bytes(), check_xsd=True)
    assert name == "factur-x.xml" and b"<ram:GrandTotalAmount>199.20<" in xml
    before = [p.read_bytes() for p in PDFS]
    again = render_invoices(bill_nos=["INV-00000001", "INV-00000002"], database_block="")
    assert (again["rendered"], again["emails queued"], again["failed"]) == (2, 0, {})
    assert [p.read_bytes() for p in PDFS] == before
    result = CliRunner().invoke(
        app,
        [
            "run",
            "render-invoices",
            "--from",
            "2027-01-31",
            "--to",
            "2027-01-31",
            "--processes",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [p.read_bytes() for p in PDFS] == before
    assert _outbox(engine) == [
        ("a@example.test", OutboxStatus.QUEUED),
        ("b@example.test", OutboxStatus.QUEUED),
    ]


def test_invoice_email_sender_delivers_each_pdf_once(billed, smtp_server):  # noqa: F811
    engine, _ = billed
    mailbox, settings = smtp_server
    SmtpServer(host=settings.host, port=settings.port, security="none").save(
        "test-smtp", overwrite=True
    )
    mailbox.fail_next = 1  # one transient 451 on the way
    early = invoice_email_sender(
        process_now=datetime(2027, 1, 30), database_block="", smtp_block="test-smtp"
    )
    assert early["queued"] == 0  # Process Now before the bill dates: nothing is due
    summary = invoice_email_sender(
        process_now=datetime(2027, 2, 1, 9), database_block="", smtp_block="test-smtp"
    )
    assert (summary["sent"], summary["retried (transient)"], summary["failed"]) == (2, 1, 0)
    again = invoice_email_sender(
        process_now=datetime(2027, 2, 1, 10), database_block="", smtp_block="test-smtp"
    )
    assert again["sent"] == 0
    assert sorted(mailbox.ids().values()) == [1, 1]
    by_subject = {m["Subject"]: m for m in mailbox.messages}
    [pdf] = list(by_subject["Invoice INV-00000002"].iter_attachments())
    assert pdf.get_content() == PDFS[1].read_bytes()
    assert (
        b"<ram:DuePayableAmount>199.20<"
        in get_xml_from_pdf(io.BytesIO(pdf.get_content()).read())[1]
    )
    assert _outbox(engine) == [
        ("a@example.test", OutboxStatus.SENT),
        ("b@example.test", OutboxStatus.SENT),
    ]
