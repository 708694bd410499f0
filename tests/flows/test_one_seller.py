"""One seller identity on the invoice, in its Factur-X XML and in the SEPA files; the debit
the invoice pre-notifies is the one in the file (same date, same amount).

The bill-day flow runs with a Seller Identity block that is not the demo seller, so every
value below can only have come from that block: the PDF and the CII of the invoice that A pays
by direct debit, the pain.008 that collects it, and the pain.001 that pays A's credit back.
"""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from facturx import get_xml_from_pdf
from lxml import etree
from pypdf import PdfReader
from sqlalchemy import select

from billing.documents.formatting import Formatter
from billing.documents.seller import DEFAULT_SELLER, Seller
from billing.payments.statement import record_bank_payment
from billing.store.db import unit_of_work
from billing.store.models import Account
from blocks.payment_gateway import PaymentGateway as GatewayBlock
from blocks.seller_identity import SellerIdentity
from flows.bill_day import bill_day
from flows.payment_steps import SellerNotACreditor, creditor_of, payments_setup
from tests.billing.test_billday import population  # noqa: F401
from tests.billing.test_payments import by_debit

SELLER = Seller(
    **{
        **DEFAULT_SELLER.to_dict(),
        "name": "Compagnie Exemple SA",
        "vat_id": "FR40303265045",
        "iban": "FR7630001007941234567890185",
        "bic": "BDFEFRPPCCT",
        "creditor_id": "FR19ZZZ654321",
    }
)
RAM = {"ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}


@pytest.fixture
def seller_block():
    SellerIdentity(**SELLER.to_dict()).save("default", overwrite=True)
    yield
    SellerIdentity.delete("default")


pytestmark = pytest.mark.usefixtures("holding_bank")  # tests/flows/conftest.py


@pytest.fixture
def billing_db(population, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # documents, reports and SEPA files go to ./var
    monkeypatch.setenv("BILLING_DATABASE_URL", population.url.render_as_string(hide_password=False))
    from flows.runtime import engine_for

    engine_for.cache_clear()
    yield population
    engine_for.cache_clear()


def _sepa(kind: str) -> etree._ElementTree:
    [path] = Path("var/output").rglob(f"{kind}-*.xml")
    return etree.parse(str(path))


def test_the_invoice_its_xml_and_both_sepa_files_name_the_seller_of_the_block(
    billing_db, seller_block
):
    by_debit(billing_db, "A")
    bill_day(as_of=date(2027, 2, 1), database_block="")
    with unit_of_work(billing_db) as s:  # A pays 200.00 by transfer as well: 0.80 to pay back
        record_bank_payment(
            s, reference="P1", account_ref="A", amount=Decimal("200.00"), currency="EUR",
            received_on=date(2027, 2, 1),
        )  # fmt: skip
    bill_day(as_of=date(2027, 2, 2), database_block="", documents=False)

    pdf = Path("var/documents/2027/02/INV-00000002.pdf").read_bytes()  # A's invoice
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for value in (SELLER.name, SELLER.vat_id, SELLER.creditor_id):
        assert value in text, value

    _, xml = get_xml_from_pdf(pdf, check_xsd=True)
    cii = etree.fromstring(xml)
    party = cii.find(".//ram:SellerTradeParty", RAM)
    assert party is not None
    assert party.findtext("ram:Name", namespaces=RAM) == SELLER.name
    assert party.findtext("ram:SpecifiedTaxRegistration/ram:ID", namespaces=RAM) == SELLER.vat_id
    assert cii.findtext(".//ram:CreditorReferenceID", namespaces=RAM) == SELLER.creditor_id

    debit = _sepa("DD")
    assert debit.findtext(".//{*}PmtInf/{*}Cdtr/{*}Nm") == SELLER.name
    assert debit.findtext(".//{*}PmtInf/{*}CdtrAcct/{*}Id/{*}IBAN") == SELLER.iban
    assert debit.findtext(".//{*}PmtInf/{*}CdtrAgt/{*}FinInstnId/{*}BIC") == SELLER.bic
    assert debit.findtext(".//{*}CdtrSchmeId/{*}Id/{*}PrvtId/{*}Othr/{*}Id") == SELLER.creditor_id

    # The pre-notification printed on the invoice is the debit of the file: date and amount.
    with unit_of_work(billing_db) as s:
        a = s.scalars(select(Account).where(Account.ref == "A")).one()
        f = Formatter.for_account(a.language or "en", a.country, "EUR")
    collect_on = date.fromisoformat(debit.findtext(".//{*}ReqdColltnDt") or "")
    amount = Decimal(debit.findtext(".//{*}DrctDbtTxInf/{*}InstdAmt") or "")
    assert amount == Decimal(cii.findtext(".//ram:DuePayableAmount", namespaces=RAM) or "")
    printed = text.replace("\u202f", "\u00a0").replace("\n", " ")
    assert f.date(collect_on) in printed and f.money(amount) in printed, (collect_on, amount)

    transfer = _sepa("CT")
    assert transfer.findtext(".//{*}PmtInf/{*}Dbtr/{*}Nm") == SELLER.name
    assert transfer.findtext(".//{*}PmtInf/{*}DbtrAcct/{*}Id/{*}IBAN") == SELLER.iban
    assert transfer.findtext(".//{*}PmtInf/{*}DbtrAgt/{*}FinInstnId/{*}BIC") == SELLER.bic


def test_a_seller_whose_creditor_id_fails_its_check_digits_stops_collection():
    wrong = Seller(**{**SELLER.to_dict(), "creditor_id": "FR12ZZZ654321"})
    with pytest.raises(SellerNotACreditor, match="creditor_id 'FR12ZZZ654321'"):
        creditor_of(wrong)
    without_bic = Seller(**{**SELLER.to_dict(), "bic": ""})
    with pytest.raises(SellerNotACreditor, match="bic required"):
        creditor_of(without_bic)
    assert creditor_of(Seller(**{**SELLER.to_dict(), "creditor_id": ""})) is None


def _save_gateway_as_before(ledger: str, creditor_id: str) -> None:
    """A Payment Gateway block document as the block type stored it before the seller became
    the creditor: with a ``creditor_id`` in its data (written over the API, as the old type's
    ``save`` did; the current type no longer has the field)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate

    GatewayBlock(sandbox_ledger=ledger).save("default", overwrite=True)
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name("default", "payment-gateway")
        update = BlockDocumentUpdate(data={"creditor_id": creditor_id}, merge_existing_data=True)
        client.update_block_document(document.id, update)


def test_a_gateway_block_naming_another_creditor_stops_the_run(seller_block, tmp_path):
    """A Payment Gateway block saved before the seller became the creditor keeps its creditor
    fields (the block type allows extra fields): they must agree with the seller, or the run
    stops."""
    ledger = str(tmp_path / "gw.sqlite3")
    _save_gateway_as_before(ledger, SELLER.creditor_id)
    try:
        assert payments_setup(str(tmp_path)).config.creditor.creditor_id == SELLER.creditor_id
        _save_gateway_as_before(ledger, "FR72ZZZ123456")
        with pytest.raises(SellerNotACreditor, match="still has creditor_id 'FR72ZZZ123456'"):
            payments_setup(str(tmp_path))
    finally:
        GatewayBlock.delete("default")
