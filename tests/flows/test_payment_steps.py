"""Collect and refund inside the real bill-day flow, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from billing.payments.sandbox import SandboxGateway
from billing.payments.sepa import xsd_path
from billing.store.db import unit_of_work
from billing.store.models import Account, Payment
from billing.store.models_payments import PaymentFileKind
from blocks.payment_gateway import PaymentGateway as GatewayBlock
from flows.bill_day import bill_day
from tests.billing.test_billday import population  # noqa: F401
from tests.billing.test_payments import by_card, by_debit

AS_OF = date(2027, 2, 1)
DD_FILE = Path("var/output/2027-02-01/sepa/FR72ZZZ123456/DD-20270201-001.pain.008.xml")


pytestmark = pytest.mark.usefixtures("holding_bank")  # tests/flows/conftest.py


@pytest.fixture
def billing_db(population, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # reports, SEPA files and the sandbox ledger go to ./var
    monkeypatch.setenv("BILLING_DATABASE_URL", population.url.render_as_string(hide_password=False))
    from flows.runtime import engine_for

    engine_for.cache_clear()
    return population


def _state(engine) -> tuple[dict[str, Decimal], list[tuple[str, str]]]:
    with unit_of_work(engine) as s:
        balances = dict(s.execute(select(Account.ref, Account.balance)).tuples().all())
        payments = [
            (k, st.value)
            for k, st in s.execute(
                select(Payment.idempotency_key, Payment.status).order_by(Payment.id)
            )
        ]
    return balances, payments


def test_bill_day_collects_cards_and_writes_the_debit_file(billing_db):
    by_debit(billing_db, "A")
    by_card(billing_db, "B", "tok_visa")
    summary = bill_day(as_of=AS_OF, database_block="", documents=False)  # checks (ledger) pass
    assert Path(summary[f"SEPA file {DD_FILE.name}"]).resolve() == DD_FILE.resolve()
    balances, payments = _state(billing_db)
    assert balances == {"A": Decimal("199.20"), "B": Decimal(0)}  # A's debit is pending
    assert sorted(payments) == [
        ("card:cyc:2:2027-01-31:1", "settled"),
        ("dd:cyc:1:2027-02-01:1", "pending"),
    ]
    schema = etree.XMLSchema(etree.parse(str(xsd_path(PaymentFileKind.DIRECT_DEBIT))))
    assert schema.validate(etree.parse(str(DD_FILE)))
    bill_day(as_of=AS_OF, database_block="", documents=False)
    assert _state(billing_db) == (balances, payments)
    assert [p.name for p in DD_FILE.parent.iterdir()] == [DD_FILE.name]


def test_transient_processor_error_is_retried_by_the_task(billing_db, tmp_path):
    by_card(billing_db, "B", "tok_transient")
    ledger = tmp_path / "gw.sqlite3"
    GatewayBlock(sandbox_ledger=str(ledger), sandbox_transient_failures=1).save(
        "default", overwrite=True
    )
    try:
        bill_day(as_of=AS_OF, database_block="", documents=False)
    finally:
        GatewayBlock.delete("default")
    balances, payments = _state(billing_db)
    assert balances["B"] == 0
    assert payments == [("card:cyc:2:2027-01-31:1", "settled")]
    [request] = SandboxGateway(ledger).requests("charge")
    assert (request.calls, request.status) == (2, "succeeded")


def test_a_processor_still_transient_after_the_last_retry_is_reported_not_failed(
    billing_db, tmp_path
):
    """The task retries collection by the step's policy (``PAYMENT_RETRY``, the only retry
    layer); after its last run the charge stays pending, the run completes and the collection
    table names it (the next run resumes it)."""
    import json

    from billing.jobs.bill_day import PAYMENT_RETRY
    from tests.flows.conftest import artifacts

    by_card(billing_db, "B", "tok_transient")
    ledger = tmp_path / "gw.sqlite3"
    GatewayBlock(sandbox_ledger=str(ledger), sandbox_transient_failures=10).save(
        "default", overwrite=True
    )
    try:
        summary = bill_day(as_of=AS_OF, database_block="", documents=False)
    finally:
        GatewayBlock.delete("default")
    assert summary["card payments collected"] == 0
    balances, payments = _state(billing_db)
    assert balances["B"] == Decimal("17.34")
    assert payments == [("card:cyc:2:2027-01-31:1", "pending")]
    [request] = SandboxGateway(ledger).requests("charge")
    # one processor call a run, no retry nested inside: no final answer, none stored
    assert (request.calls, request.status) == (PAYMENT_RETRY.attempts, None)
    assert PAYMENT_RETRY.attempts < 10  # the sandbox's 10 transient failures outlast them
    table = json.loads(artifacts("bill-day-collect")[0]["data"])
    assert {"measure": "transient", "value": "1"} in table
