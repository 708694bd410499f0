"""Hostile input (issue #10, part 5): customer text is data, never markup, SQL or a header,
and no XML we read expands entities or opens the files they name.

- HTML and script in a customer name go from a JSON import through bill day, rendering and
  the outbox to a real SMTP server (aiosmtpd on loopback): literal text in the PDF (pypdf), escaped
  in the XML, literal in the e-mail. On SQLite and PostgreSQL.
- XXE, external DTDs and parameter entities, XInclude and billion laughs, handed to every import
  entry point and to every XML parser we run (lxml and Saxon): refused, or parsed without
  expansion, and the referenced file is never opened. The file is a FIFO: a helper process
  notices when anything opens it. Positive control: a parser set to resolve entities does.
- SQL metacharacters (quotes, ``; DROP TABLE``, ``%`` and ``_``, backslashes) round-trip
  literally and match exactly; NUL is refused clearly by every entry point.
- CR/LF, other line breaks and RFC 2047 encoded words in names and addresses never produce an
  extra header: the invoice e-mail is refused and recorded as failed; a clean one goes out.
"""

from __future__ import annotations

import dataclasses
import email.errors
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy import select, update

from billing.documents.cii import build_cii
from billing.documents.errors import HeaderInjectionError, InvoiceValidationError
from billing.documents.mail import (
    HEADERS,
    Envelope,
    SmtpSettings,
    build_message,
    check_header_block,
)
from billing.documents.model import invoice_ids, load_invoices
from billing.documents.pdf import InvoiceRenderer
from billing.documents.render import RenderSettings, render_bills
from billing.documents.seller import DEFAULT_SELLER
from billing.documents.store import DocumentStore, document_name
from billing.documents.validation import (
    parse_svrl,
    schematron_findings,
    validate_cii_xsd,
    validate_invoice_xml,
)
from billing.documents.xml_export import invoice_xml
from billing.domain.errors import ImportFileError
from billing.ingest.importer import import_file
from billing.jobs.bill_day import run_bill_day
from billing.payments import sepa
from billing.payments.errors import BankDetailsError, PaymentRecordError
from billing.payments.statement import import_payments_csv, record_bank_payment
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Contract,
    OutboxMessage,
    OutboxStatus,
    RejectedUsage,
    UsageRecord,
)
from billing.store.models_payments import PaymentFileKind
from tests.billing.test_billday import population  # noqa: F401
from tests.billing.test_documents import invoice
from tests.billing.test_documents_safety import text_of
from tests.billing.test_email import NOW, outbox_db, send, smtp_server, statuses  # noqa: F401
from tests.billing.test_importer import (
    HEADER,
    MASTER,
    master_with,
    row_counts,
    run_import,
)
from tests.reliability.test_bad_input import rejected_reasons, statement

MARKER = "XXE-SECRET-MARKER"
SCRIPT_NAME = "<script>alert('x')</script><b>Bold</b> & \"Co\""
SCRIPT_CITY = "<i>Paris</i><img src=x onerror=alert(1)>"


# --- HTML and script in a customer name: PDF, XML and e-mail ------------------------------


def squeezed(text: str) -> str:
    """Text without whitespace: PDF text extraction may break a long name across lines."""
    return "".join(text.split())


def test_script_in_a_customer_name_is_literal_text_in_pdf_xml_and_email(
    engine,
    tmp_path,
    smtp_server,  # noqa: F811
):
    def hostile(document: dict) -> None:
        document["accounts"][0].update(name=SCRIPT_NAME, city=SCRIPT_CITY)

    run_import(engine, master_with(tmp_path, hostile))
    run_bill_day(engine, date(2026, 2, 1), "run-1")
    store = DocumentStore(str(tmp_path / "documents"))
    options = RenderSettings(
        database_url="", store_url=str(tmp_path / "documents"), seller={}, enqueue_email=True
    )
    with unit_of_work(engine) as session:
        ids = invoice_ids(session, run_id="run-1")
        (bill,) = load_invoices(session, ids)

    result = render_bills(engine, ids, InvoiceRenderer(DEFAULT_SELLER), store, options)

    assert (result.rendered, result.queued, result.failed) == (1, 1, {})
    assert bill.buyer.name == SCRIPT_NAME  # stored and read back literally
    pdf_text = squeezed(text_of(store.read(document_name(bill, "pdf"))))
    assert squeezed(SCRIPT_NAME) in pdf_text and squeezed(SCRIPT_CITY) in pdf_text
    xml = store.read(document_name(bill, "xml"))
    assert b"<script>" not in xml and b"&lt;script&gt;" in xml
    texts = [e.text for e in etree.fromstring(xml).iter()]
    assert SCRIPT_NAME in texts and SCRIPT_CITY in texts
    cii = etree.tostring(build_cii(bill, DEFAULT_SELLER))
    assert b"<script>" not in cii and b"&lt;script&gt;" in cii

    mailbox, smtp = smtp_server
    assert send(engine, store, smtp).sent == 1
    (message,) = mailbox.messages
    assert message["To"].addresses == (Address(SCRIPT_NAME, addr_spec="compta@dupont.example"),)
    assert [part.get_content_type() for part in message.walk()] == [
        "multipart/mixed", "text/plain", "application/pdf",
    ]  # fmt: skip
    assert SCRIPT_NAME in message.get_body(("plain",)).get_content()


# --- XXE, external DTDs, XInclude and billion laughs ----------------------------------------


@pytest.fixture
def watched_file(tmp_path) -> Iterator[tuple[Path, Callable[[], bool]]]:
    """A FIFO that exists, and a question: has anything opened it for reading?

    A helper process opens the FIFO for writing, which blocks until a reader opens it; it then
    writes ``MARKER``, leaves a flag file, closes, and later waits for the next reader.
    """
    fifo, flag = tmp_path / "secret.txt", tmp_path / "opened.flag"
    os.mkfifo(fifo)
    serve = (
        "import pathlib, sys, time\n"
        "fifo, flag = sys.argv[1:3]\n"
        "while True:\n"
        "    with open(fifo, 'w') as out:\n"
        "        pathlib.Path(flag).touch()\n"
        f"        out.write({MARKER!r})\n"
        "    time.sleep(0.5)  # let the reader see the end of the file before serving again\n"
    )
    helper = subprocess.Popen([sys.executable, "-c", serve, str(fifo), str(flag)])
    time.sleep(0.3)  # the helper is blocked in open() before any parser runs

    def opened() -> bool:
        time.sleep(0.05)  # a reader gets the marker only after the flag exists: this is margin
        return flag.exists()

    yield fifo, opened
    helper.kill()
    helper.wait()


def attacks(target: Path) -> dict[str, bytes]:
    """XML documents that would read ``target`` or blow up, if their parser let them."""
    url = target.as_uri()
    laughs = "".join(
        f'<!ENTITY l{n} "{f"&l{n - 1};" * 10 if n else "lol" * 10}">' for n in range(9)
    )
    return {
        "external entity": f'<!DOCTYPE x [<!ENTITY e SYSTEM "{url}">]><x>&e;</x>'.encode(),
        "parameter entity": f'<!DOCTYPE x [<!ENTITY % p SYSTEM "{url}"> %p;]><x/>'.encode(),
        "external DTD": f'<!DOCTYPE x SYSTEM "{url}"><x>&e;</x>'.encode(),
        "xinclude": (
            f'<x xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{url}" '
            'parse="text"/></x>'
        ).encode(),
        "billion laughs": f"<!DOCTYPE x [{laughs}]><x>&l8;</x>".encode(),
    }


def test_positive_control_a_resolving_parser_opens_the_watched_file(watched_file):
    fifo, opened = watched_file
    resolving = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=False)
    root = etree.fromstring(attacks(fifo)["external entity"], resolving)
    assert root.text == MARKER
    assert opened()


def test_xml_files_given_to_the_importers_are_refused_unread(engine, tmp_path, watched_file):
    fifo, opened = watched_file
    before = row_counts(engine)
    for number, (name, content) in enumerate(attacks(fifo).items()):
        for suffix in (".xml", ".json", ".csv"):
            path = tmp_path / f"attack-{number}{suffix}"
            path.write_bytes(b'<?xml version="1.0"?>' + content)
            with unit_of_work(engine) as session:
                with pytest.raises(ImportFileError):
                    import_file(session, path)
                with pytest.raises(PaymentRecordError, match="missing column"):
                    import_payments_csv(session, path)
        assert not opened(), name
    assert row_counts(engine) == before


OUR_PARSERS: list[tuple[str, Callable[[bytes], object]]] = [
    ("invoice XSD", validate_invoice_xml),
    ("Factur-X XSD", validate_cii_xsd),
    ("SVRL report", parse_svrl),
    ("SEPA XSD", lambda xml: sepa.validate(xml, PaymentFileKind.DIRECT_DEBIT)),
    ("EN 16931 Schematron (Saxon)", schematron_findings),
]
REFUSALS = (etree.XMLSyntaxError, InvoiceValidationError, BankDetailsError)


@pytest.mark.parametrize(("parser", "parse"), OUR_PARSERS, ids=[p for p, _ in OUR_PARSERS])
def test_our_xml_parsers_neither_expand_entities_nor_open_files(watched_file, parser, parse):
    fifo, opened = watched_file
    for name, document in attacks(fifo).items():
        started = time.monotonic()
        try:
            outcome = parse(document)
        except REFUSALS as error:
            outcome = error
        assert MARKER not in str(outcome) and "lollollol" not in str(outcome), (parser, name)
        if name == "billion laughs":  # (the others may include compiling the Schematron)
            assert time.monotonic() - started < 5, parser
        assert not opened(), (parser, name)


def test_entity_syntax_in_a_customer_name_is_escaped_text(watched_file):
    fifo, opened = watched_file
    name = f'<!DOCTYPE x [<!ENTITY e SYSTEM "{fifo.as_uri()}">]>&e;'
    hostile = invoice(buyer=dataclasses.replace(invoice().buyer, name=name))

    xml = invoice_xml(hostile, DEFAULT_SELLER)
    validate_invoice_xml(xml)
    cii = etree.tostring(build_cii(hostile, DEFAULT_SELLER), xml_declaration=True, encoding="UTF-8")
    schematron_findings(cii)  # Saxon reads it: still only text

    assert b"<!DOCTYPE" not in xml and b"&lt;!DOCTYPE" in xml and b"&amp;e;" in xml
    assert name in [e.text for e in etree.fromstring(xml).iter()]
    assert not opened()


# --- SQL metacharacters --------------------------------------------------------------------

SQL_REFS = ["A_1", "AX1", "A%1", "A'1", "A\\1"]
SQL_NAMES = [
    "Robert'); DROP TABLE accounts;--",
    '" OR 1=1 --',
    "100% _sure_ \\' \\\\",
    "'; DELETE FROM usage_records WHERE '1'='1",
    "x' UNION SELECT password FROM users --",
]


def test_sql_metacharacters_round_trip_literally_and_match_exactly(engine, tmp_path):
    def hostile(document: dict) -> None:
        template = document["accounts"][0]
        document["accounts"] += [
            dict(template, ref=ref, name=name)
            for ref, name in zip(SQL_REFS, SQL_NAMES, strict=True)
        ]
        document["contracts"].append(
            {"ref": "C_%'", "account": "A_1", "start_date": "2026-01-10", "items": [
                {"ref": "I_%'", "price_plan": "API-EUR", "item_type": "usage",
                 "start_date": "2026-01-10"}]}
        )  # fmt: skip

    path = master_with(tmp_path, hostile, "hostile'; DROP TABLE accounts;--.json")
    run_import(engine, path)
    usage = tmp_path / "usage_100%'.csv"
    usage.write_text(
        f"{HEADER}\nU_1,I_%',1,2026-02-01T10:00\nU%1,I_%',2,2026-02-01T10:00\n"
        "U'1,I_%',3,2026-02-01T10:00\nU\\1,I_%',x,2026-02-01T10:00\nUX1,I%',4,2026-02-01T10:00\n"
    )
    run_import(engine, usage)

    with unit_of_work(engine) as session:
        names = dict(session.execute(select(Account.ref, Account.name)).tuples().all())
        owner = session.scalar(
            select(Account.ref)
            .join(Contract, Contract.account_id == Account.id)
            .where(Contract.ref == "C_%'")
        )
        stored = set(session.scalars(select(UsageRecord.external_id)))
    assert {ref: names[ref] for ref in SQL_REFS} == dict(zip(SQL_REFS, SQL_NAMES, strict=True))
    assert len(names) == 3 + len(SQL_REFS)  # the tables are all there
    assert owner == "A_1"  # not AX1: "_" is no wildcard
    assert {"U_1", "U%1", "U'1"} <= stored and "UX1" not in stored
    assert rejected_reasons(engine, usage.name) == [
        (4, "quantity 'x' is not a decimal number"), (5, "unknown item_ref \"I%'\""),
    ]  # fmt: skip
    before = row_counts(engine)
    assert run_import(engine, path).inserted == 0 and run_import(engine, usage).inserted == 0
    assert row_counts(engine) == before

    with unit_of_work(engine) as session:
        lines = ["R'1;--,A_1,5.00,EUR,2026-03-01,", "R%,A%,1,EUR,2026-03-01,"]
        report = import_payments_csv(session, statement(tmp_path, *lines))
    assert (report.inserted, report.rejected) == (1, [(2, "unknown account 'A%'")])
    with unit_of_work(engine) as session:
        balances = dict(session.execute(select(Account.ref, Account.balance)).tuples().all())
    assert (balances["A_1"], balances["AX1"], balances["A%1"]) == (-5, 0, 0)


def test_nul_bytes_are_refused_clearly_by_every_entry_point(engine, tmp_path):
    def nul_name(document: dict) -> None:
        document["accounts"][1]["name"] = "Müller\x00; DROP TABLE accounts"

    with unit_of_work(engine) as session:
        with pytest.raises(ImportFileError) as caught:
            import_file(session, master_with(tmp_path, nul_name))
    assert (caught.value.record, caught.value.field) == ("accounts[1] (ref ACC-2)", "name")
    assert "contains a control character (U+0000)" in str(caught.value)

    run_import(engine, MASTER)
    usage = tmp_path / "nul.csv"
    usage.write_text(f"{HEADER}\nN\x001,I-2,1,2026-02-01T10:00\nN2,I-2,1,2026-02-01T10:00\n")
    assert run_import(engine, usage).counts["usage"].rejected == 1
    assert rejected_reasons(engine, "nul.csv") == [
        (1, "external_id 'N\\x001' contains a control character (U+0000) at position 1")
    ]
    with unit_of_work(engine) as session:
        raw = session.scalars(select(RejectedUsage.raw)).all()
    assert "N\u24001,I-2,1,2026-02-01T10:00" in raw  # the NUL shown, storable on PostgreSQL

    with unit_of_work(engine) as session:
        report = import_payments_csv(session, statement(tmp_path, "N\x00,ACC-1,1,EUR,2026-03-01,"))
    assert report.rejected == [
        (1, "reference 'N\\x00' contains a control character (U+0000) at position 1")
    ]
    with unit_of_work(engine) as session:
        with pytest.raises(PaymentRecordError, match=r"account_ref 'ACC-1\\x00' contains a cont"):
            record_bank_payment(
                session,
                reference="N-2",
                account_ref="ACC-1\x00",
                amount=Decimal(1),
                currency="EUR",
                received_on=date(2026, 3, 1),
            )


# --- e-mail header injection through names and addresses ----------------------------------

BREAKS = ["\r\n", "\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x00"]
INJECTED_NAMES = [f"Eve{b}Bcc: victim@evil.test" for b in BREAKS] + [
    "=?utf-8?q?Eve=0D=0ABcc:_victim@evil.test?=",
    "=?utf-8?b?RXZlDQpCY2M6IHZpY3RpbUBldmlsLnRlc3Q=?=",
]
INJECTED_ADDRESSES = [f"a@example.test{b}Bcc: victim@evil.test" for b in BREAKS] + [
    "a@example.test, victim@evil.test",
    "Eve <victim@evil.test>",
    "a@example.test>\r\nBcc:victim@evil.test",
    "=?utf-8?q?a=0D=0ABcc:_victim?=@evil.test",
]
ENVELOPE = Envelope("<id@x.test>", "a@example.test", "A", "Invoice", "body", "a.pdf", b"%PDF")


def headers_of(message: EmailMessage) -> list[str]:
    """The header names a receiving server would see, in order."""
    return list(message_from_bytes(message.as_bytes(), policy=policy.SMTP).keys())


@pytest.mark.parametrize(
    ("field", "value"),
    [("to_name", n) for n in INJECTED_NAMES] + [("to_address", a) for a in INJECTED_ADDRESSES],
)
def test_line_breaks_and_encoded_words_in_names_and_addresses_are_refused(field, value):
    with pytest.raises(HeaderInjectionError):
        build_message(dataclasses.replace(ENVELOPE, **{field: value}), SmtpSettings(), NOW)


def test_positive_control_python_emits_the_encoded_word_injection_we_refuse():
    """Without ``header_safe``, this Python writes a Bcc header; the header-block check stops
    it (a Python whose email package refuses it itself raises HeaderWriteError instead)."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "billing@openbill.example"
    message["To"] = Address(INJECTED_NAMES[-2], addr_spec="a@example.test")
    refused = getattr(email.errors, "HeaderWriteError", HeaderInjectionError)
    try:
        emitted = headers_of(message)
    except refused:
        return
    assert "Bcc" in emitted  # the attack is real here
    with pytest.raises(HeaderInjectionError):
        check_header_block(message)


HEADER_TEXT = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\r", "\n", "\r\n", ":", "=?", "?=", "<", ">", ",", ";", '"', "@"]),
    ),
    max_size=20,
).map("".join)


LOCAL = HEADER_TEXT | st.sampled_from(["a", "o'brien", "x+y"])
DOMAIN = HEADER_TEXT | st.sampled_from(["example.test", "xn--bcher-kva.example"])


def check_headers(name: str, address: str) -> None:
    """build_message refuses, or writes exactly our headers with exactly this one recipient."""
    try:
        message = build_message(
            dataclasses.replace(ENVELOPE, to_name=name, to_address=address), SmtpSettings(), NOW
        )
    except HeaderInjectionError:
        return
    assert headers_of(message) == [h.decode() for h in HEADERS]
    received = message_from_bytes(message.as_bytes(), policy=policy.default)
    (recipient,) = received["To"].addresses
    assert recipient.addr_spec == address.strip()  # surrounding blanks are dropped
    assert recipient.display_name.split() == name.split()  # spaces may be folded, no more


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=HEADER_TEXT, local=LOCAL, domain=DOMAIN)
def test_any_name_and_address_give_our_headers_only_or_a_refusal(name, local, domain):
    check_headers(name, f"{local}@{domain}")


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=HEADER_TEXT, local=LOCAL, domain=DOMAIN)
def test_any_name_and_address_thoroughly(name, local, domain):
    check_headers(name, f"{local}@{domain}")


def test_injection_through_stored_names_and_addresses_sends_nothing_extra(
    outbox_db,  # noqa: F811
    smtp_server,  # noqa: F811
):
    """Data that bypassed the importer: B's name carries an encoded-word Bcc, A's queued
    address a CRLF Bcc. Both invoices fail with the reason; once B's name is clean, B goes out."""
    engine, store = outbox_db
    mailbox, settings = smtp_server
    with unit_of_work(engine) as session:
        session.execute(update(Account).where(Account.ref == "B").values(name=INJECTED_NAMES[-2]))
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.to_address == "a@example.test")
            .values(to_address=INJECTED_ADDRESSES[0])
        )

    result = send(engine, store, settings)

    assert (result.sent, len(result.failed)) == (0, 2)
    assert all(status == OutboxStatus.FAILED for _, status, _, _ in statuses(engine))
    reasons = " ".join(error for _, _, _, error in statuses(engine))
    assert "recipient name contains an encoded word" in reasons
    assert "recipient address contains a line break" in reasons
    assert mailbox.messages == []

    with unit_of_work(engine) as session:
        session.execute(update(Account).where(Account.ref == "B").values(name="Customer B"))
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.to_address == "b@example.test")
            .values(status=OutboxStatus.QUEUED)
        )
    assert send(engine, store, settings).sent == 1
    assert [list(m.keys()) for m in mailbox.messages] == [[h.decode() for h in HEADERS]]
    assert "victim" not in str(mailbox.messages[0])


def test_names_with_line_breaks_are_refused_at_import(engine, tmp_path):
    for number, (field, value) in enumerate(
        [("name", "Eve\r\nBcc: victim@evil.test"), ("email", "a@b.test\r\nBcc: v@evil.test"),
         ("name", "Eve\u2028Bcc: victim@evil.test"), ("email", "Eve <victim@evil.test>")]
    ):  # fmt: skip

        def change(document: dict, field: str = field, value: str = value) -> None:
            document["accounts"][0][field] = value

        path = master_with(tmp_path, change, f"{number}.json")
        with unit_of_work(engine) as session:
            with pytest.raises(ImportFileError) as caught:
                import_file(session, path)
        assert (caught.value.record, caught.value.field) == ("accounts[0] (ref ACC-1)", field)
    assert row_counts(engine)["accounts"] == 0
