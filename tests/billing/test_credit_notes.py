"""Credit notes (issue #19): a correction that lowers what is owed is a credit note, never a
negative invoice. On both databases.

Account A (FR, EUR, 20 % VAT) bought PRO, 30.00 a month in advance, on Oct 1, 2026: the Nov 1
bill day issues INV-00000001, October and November, 60.00 net, 72.00 gross
(``tests/billing/test_corrections.py``). Terminated effective Nov 20, the Dec 1 bill holds only
the credit of Nov 20 - Dec 1 (-11.00): it is issued as CN-00000001.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from lxml import etree
from sqlalchemy import select
from typer.testing import CliRunner

from billing.cli import app
from billing.documents.cii import cii_bytes
from billing.documents.model import load_invoices
from billing.documents.pdf import InvoiceRenderer
from billing.documents.seller import DEFAULT_SELLER
from billing.documents.validation import (
    validate_cii_schematron,
    validate_cii_xsd,
    validate_invoice_xml,
)
from billing.documents.xml_export import invoice_xml
from billing.domain.credit_notes import (
    Creditable,
    CreditNoteError,
    document_for,
    parse_lines,
    plan_credit,
)
from billing.ops.credit_notes import issue_credit_note
from billing.payments.config import PaymentConfig
from billing.payments.ledger import record_payment
from billing.payments.refund import refund_payments
from billing.payments.sandbox import SandboxGateway
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillSeries,
    Charge,
    PaymentMethod,
    PaymentStatus,
    Refund,
)
from tests import builders as b
from tests.billing.test_changes import snapshot
from tests.billing.test_corrections import (
    DEC_1,
    NOV_1,
    NOV_20,
    bill_day,
    process_changes,
    terminate,
)
from tests.billing.test_corrections import account_a as account_a  # noqa: F401 (fixture)
from tests.expectations.direct import run_rules_directly

D = Decimal
RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
NS = {
    "rsm": RSM,
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
}


def bills(engine):
    with unit_of_work(engine) as s:
        return s.execute(
            select(Bill.bill_no, Bill.series_code, Bill.type_code, Bill.net, Bill.gross).order_by(
                Bill.id
            )
        ).all()


def series(engine):
    with unit_of_work(engine) as s:
        return dict(s.execute(select(BillSeries.code, BillSeries.next_number)).all())


def balance(engine, ref="A"):
    with unit_of_work(engine) as s:
        return s.scalar(select(Account.balance).where(Account.ref == ref))


def credit_note_of_december(engine):
    terminate(engine, NOV_20)
    process_changes(engine, NOV_20)
    bill_day(engine, DEC_1)


# -- the rule (pure) --------------------------------------------------------------------------


def test_a_negative_total_is_a_credit_note_anything_else_an_invoice():
    assert document_for("INV", D("-0.01")) == ("CN", "381")
    assert document_for("INV", D("0")) == ("INV", "380")
    assert document_for("INV", D("19.00")) == ("INV", "380")


def _line(position, net, remaining, rate="0.20"):
    return Creditable(position, 100 + position, f"line {position}", NOV_1, DEC_1,
                      D(net), D(remaining), D(rate), "standard", "S")  # fmt: skip


def test_plan_credit_never_credits_more_than_remains():
    lines = [_line(1, "30.00", "30.00"), _line(2, "30.00", "19.00")]
    everything = plan_credit("INV-1", "EUR", lines, None)
    assert [(c.position, c.net, c.tax) for c in everything] == [
        (1, D("-30.00"), D("-6.00")),
        (2, D("-19.00"), D("-3.80")),
    ]
    (part,) = plan_credit("INV-1", "EUR", lines, {2: D("10.00")})
    assert (part.net, part.tax, part.gross) == (D("-10.00"), D("-2.00"), D("-12.00"))
    refusals = {
        "line 2 of invoice INV-1: 19.01 EUR asked, only 19.00 EUR remains": {2: D("19.01")},
        "invoice INV-1 has no line 3 (its lines: 1, 2)": {3: None},
        "line 1 of invoice INV-1: a credit is a positive amount": {1: D("-1")},
        "line 1 of invoice INV-1: 1.001 is not in EUR's minor units": {1: D("1.001")},
    }
    for message, wanted in refusals.items():
        with pytest.raises(CreditNoteError, match=message.replace("(", r"\(").replace(")", r"\)")):
            plan_credit("INV-1", "EUR", lines, wanted)
    done = [_line(1, "30.00", "0.00")]
    with pytest.raises(CreditNoteError, match="invoice INV-1 has nothing left to credit"):
        plan_credit("INV-1", "EUR", done, None)
    with pytest.raises(CreditNoteError, match="line 1 of invoice INV-1 has nothing left"):
        plan_credit("INV-1", "EUR", done, {1: None})


def test_lines_option():
    assert parse_lines("1, 3,2=10.50") == {1: None, 3: None, 2: D("10.50")}
    for bad in ("", "x", "0", "1,1", "2=ten", "2=NaN"):
        with pytest.raises(CreditNoteError):
            parse_lines(bad)


# -- bill day -----------------------------------------------------------------------------------


def test_a_negative_correction_bill_is_a_credit_note_numbered_gaplessly(account_a):  # noqa: F811
    engine = account_a
    credit_note_of_december(engine)
    assert bills(engine) == [
        ("INV-00000001", "INV", "380", D("60.00"), D("72.00")),
        ("CN-00000001", "CN", "381", D("-11.00"), D("-13.20")),
    ]
    assert series(engine) == {"INV": 2, "CN": 2}
    assert balance(engine) == D("58.80")  # 72.00 - 13.20: the credit note lowers what is owed
    # Running the same day again adds nothing, numbers nothing.
    before = snapshot(engine)
    bill_day(engine, DEC_1)
    assert snapshot(engine) == before
    assert run_rules_directly(engine, DEC_1).failed == ()


def test_a_bill_mixing_fees_and_corrections_stays_an_invoice(engine):
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        a = b.account(s, "A", created=date(2026, 10, 1))
        ca = b.contract(s, a, "CA", date(2026, 10, 1))
        b.item(s, ca, "A1", pro, "recurring", date(2026, 10, 1))
        b.item(s, ca, "A2", pro, "recurring", date(2026, 10, 1))
    bill_day(engine, NOV_1)
    credit_note_of_december(engine)  # A1 ends Nov 20; A2 goes on
    (_, dec) = bills(engine)
    assert dec == ("INV-00000002", "INV", "380", D("19.00"), D("22.80"))
    with unit_of_work(engine) as s:
        nets = s.scalars(
            select(Charge.amount).join(Bill).where(Bill.bill_no == "INV-00000002")
        ).all()
    assert sorted(nets) == [D("-11.00"), D("30.00")]  # a negative line on an invoice
    assert series(engine) == {"INV": 3, "CN": 1}


# -- documents ----------------------------------------------------------------------------------


def _document(engine, bill_no):
    with unit_of_work(engine) as s:
        bill_id = s.scalar(select(Bill.id).where(Bill.bill_no == bill_no))
        (invoice,) = load_invoices(s, [bill_id])
    return invoice


def test_the_cii_of_a_credit_note_is_type_381_naming_the_invoice(account_a):  # noqa: F811
    engine = account_a
    credit_note_of_december(engine)
    invoice = _document(engine, "CN-00000001")
    xml = cii_bytes(invoice, DEFAULT_SELLER)
    validate_cii_xsd(xml)
    assert validate_cii_schematron(xml) == []
    root = etree.fromstring(xml)

    def text(path):
        return root.findtext(path, namespaces=NS)

    assert text("rsm:ExchangedDocument/ram:TypeCode") == "381"
    assert text("rsm:ExchangedDocument/ram:ID") == "CN-00000001"
    settlement = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/"
    reference = settlement + "ram:InvoiceReferencedDocument/"
    assert text(reference + "ram:IssuerAssignedID") == "INV-00000001"
    assert text(reference + "ram:FormattedIssueDateTime/qdt:DateTimeString") == "20261101"
    totals = settlement + "ram:SpecifiedTradeSettlementHeaderMonetarySummation/"
    assert text(totals + "ram:LineTotalAmount") == "11.00"  # positive, as a credit note states
    assert text(totals + "ram:GrandTotalAmount") == "13.20"
    assert text(totals + "ram:DuePayableAmount") == "13.20"
    line = "rsm:SupplyChainTradeTransaction/ram:IncludedSupplyChainTradeLineItem/"
    line_total = "ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount"
    assert text(line + "ram:SpecifiedLineTradeSettlement/" + line_total) == "11.00"
    assert root.find(settlement + "ram:SpecifiedTradeSettlementPaymentMeans", NS) is None
    exported = etree.fromstring(invoice_xml(invoice, DEFAULT_SELLER))  # our own export says so
    validate_invoice_xml(exported)
    (element,) = exported.iterfind("{*}invoice")
    assert (element.get("type"), element.get("corrects")) == ("381", "INV-00000001")


@pytest.mark.parametrize(
    ("language", "title", "corrects"),
    [
        ("en", "Credit note", "Corrects invoice INV-00000001"),
        ("fr", "Avoir", "Rectifie la facture INV-00000001"),
        ("pt", "Nota de crédito", "Retifica a fatura INV-00000001"),
        ("de", "Gutschrift", "Korrigiert die Rechnung INV-00000001"),
    ],
)
def test_the_pdf_says_credit_note_and_names_the_invoice(
    account_a,  # noqa: F811
    language,
    title,
    corrects,
):
    engine = account_a
    with unit_of_work(engine) as s:
        s.scalars(select(Account)).one().language = language
    credit_note_of_december(engine)
    invoice = _document(engine, "CN-00000001")
    assert invoice.is_credit_note and invoice.gross == D("13.20")
    html = InvoiceRenderer(DEFAULT_SELLER).html(invoice)
    assert f"<h1>{title}</h1>" in html
    assert corrects in html
    assert "-11" not in html and "−11" not in html  # amounts print positive


# -- by hand: billing credit-note ---------------------------------------------------------------


def cli(engine, *args):
    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(app, ["credit-note", *args, "--database", url])


def test_cli_credits_lines_and_refuses_more_than_remains(account_a):  # noqa: F811
    engine = account_a
    assert balance(engine) == D("72.00")
    done = cli(engine, "--bill", "INV-00000001", "--lines", "2=10.00", "--reason", "goodwill",
               "--date", "2026-11-05")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "credit note CN-00000001 on invoice INV-00000001" in done.output
    assert "10.00 net + 2.00 VAT = 12.00 EUR" in done.output
    assert bills(engine)[-1] == ("CN-00000001", "CN", "381", D("-10.00"), D("-12.00"))
    assert balance(engine) == D("60.00")
    with unit_of_work(engine) as s:
        invoice = s.scalars(select(Bill).where(Bill.bill_no == "INV-00000001")).one()
        assert invoice.amount_paid == D("12.00")  # applied to the invoice it corrects
        assert s.scalar(select(Bill.note).where(Bill.bill_no == "CN-00000001")) == "goodwill"
    before = snapshot(engine)
    refusals = [
        (["--lines", "2=20.01"], "line 2 of invoice INV-00000001: 20.01 EUR asked, only 20.00"),
        (["--lines", "7"], "invoice INV-00000001 has no line 7"),
        (["--lines", "x"], "--lines"),
        (["--all", "--lines", "1"], "either --lines or --all"),
        ([], "either --lines or --all"),
    ]
    for extra, message in refusals:
        refused = cli(engine, "--bill", "INV-00000001", "--reason", "r", *extra)
        assert refused.exit_code == 2, refused.output
        assert message in " ".join(refused.output.split()), refused.output
    for bill, message in [
        ("INV-404", "no invoice numbered INV-404"),
        ("CN-00000001", "CN-00000001 is a credit note"),
    ]:
        refused = cli(engine, "--bill", bill, "--all", "--reason", "r")
        assert refused.exit_code == 2 and message in refused.output, refused.output
    refused = cli(engine, "--bill", "INV-00000001", "--all", "--reason", "  ")
    assert refused.exit_code == 2 and "needs a reason" in refused.output
    assert snapshot(engine) == before  # a refusal changes nothing
    # What remains of line 2 (20.00) and all of line 1: the invoice is fully credited.
    done = cli(engine, "--bill", "INV-00000001", "--all", "--reason", "void",
               "--date", "2026-11-05")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert bills(engine)[-1] == ("CN-00000002", "CN", "381", D("-50.00"), D("-60.00"))
    assert balance(engine) == D("0.00")
    again = cli(engine, "--bill", "INV-00000001", "--all", "--reason", "again")
    assert again.exit_code == 2
    assert "invoice INV-00000001 has nothing left to credit" in again.output
    assert series(engine) == {"INV": 2, "CN": 3}
    assert run_rules_directly(engine, date(2026, 11, 5)).failed == ()
    # The credit notes are documents like the bill day's: 381, naming the invoice.
    xml = cii_bytes(_document(engine, "CN-00000002"), DEFAULT_SELLER)
    validate_cii_xsd(xml)
    assert validate_cii_schematron(xml) == []
    assert b"<ram:Content>void</ram:Content>" in xml


def test_voiding_counts_the_corrections_bill_day_made(account_a):  # noqa: F811
    """November was credited 11.00 by the termination: a void credits only what remains."""
    engine = account_a
    credit_note_of_december(engine)
    with unit_of_work(engine) as s:
        issued = issue_credit_note(
            s, invoice_no="INV-00000001", lines=None, reason="void", as_of=DEC_1
        )
    assert (issued.bill_no, issued.net, issued.gross) == ("CN-00000002", D("49.00"), D("58.80"))
    assert balance(engine) == D("0.00")
    assert run_rules_directly(engine, DEC_1).failed == ()


def test_a_credit_note_on_a_paid_invoice_is_refunded(account_a, tmp_path):  # noqa: F811
    engine = account_a
    with unit_of_work(engine) as s:
        account = s.scalars(select(Account)).one()
        account.payment_method, account.card_token = PaymentMethod.CARD, "tok_visa"
        record_payment(
            s, idempotency_key="ref:PAID", account_id=account.id, amount=D("72.00"),
            currency="EUR", received_on=date(2026, 11, 10), method=PaymentMethod.INVOICE,
            status=PaymentStatus.SETTLED, reference="PAID",
        )  # fmt: skip
        issued = issue_credit_note(
            s, invoice_no="INV-00000001", lines={1: None}, reason="refund October", as_of=NOV_20
        )
    assert issued.applied == D("0") and issued.gross == D("36.00")
    assert balance(engine) == D("-36.00")  # nothing open: credit on the account
    gateway = SandboxGateway(tmp_path / "gw.sqlite3")
    config = PaymentConfig(output_dir=tmp_path / "out")
    result = refund_payments(engine, NOV_20, gateway, config, run_id="refund")
    assert result.refunded == 1 and result.refunded_amounts == {"EUR": D("36.00")}
    with unit_of_work(engine) as s:
        assert s.scalars(select(Refund.amount)).all() == [D("36.00")]
    assert balance(engine) == D("0.00")
    assert run_rules_directly(engine, NOV_20).failed == ()


def test_a_negated_zero_prints_without_a_sign():
    """A credit note states its amounts positive by negating the stored ones: a reverse-
    charged credit's VAT 0.00 becomes -0.00, which must print (and go into the CII) as 0."""
    from billing.documents.cii import _amount
    from billing.documents.formatting import Formatter

    f = Formatter.for_account("de", "DE", "EUR")
    zero = Decimal("-0.00")
    assert str(zero) == "-0.00"
    assert "-" not in f.money(zero)
    assert "-" not in f.price(zero) and "-" not in f.number(zero)
    assert _amount(zero, "EUR") == "0.00"
