"""Bank-statement import and the ``billing payment`` commands, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from billing.cli import app
from billing.jobs.bill_day import run_bill_day
from billing.payments.collect import collect_payments
from billing.payments.config import PaymentConfig
from billing.payments.sandbox import SandboxGateway
from billing.payments.statement import import_payments_csv
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill, Payment
from tests.billing.test_billday import population  # noqa: F401
from tests.billing.test_payments import CREDITOR, by_debit

D = Decimal


@pytest.fixture
def billed(population):  # noqa: F811
    run_bill_day(population, date(2027, 2, 1), "run-1")
    return population


def balance(engine, ref: str) -> Decimal:
    with unit_of_work(engine) as s:
        return s.scalars(select(Account.balance).where(Account.ref == ref)).one()


def test_statement_import_records_settles_rejects_and_replays(billed, tmp_path):
    by_debit(billed, "A")
    gateway = SandboxGateway(tmp_path / "gw.sqlite3")
    config = PaymentConfig(output_dir=tmp_path / "out", creditor=CREDITOR)
    # 17 February: the first day A's debit (due 3 March) is within the 14-day horizon.
    collect_payments(billed, date(2027, 2, 17), gateway, config, run_id="r")
    with unit_of_work(billed) as s:
        bill_no = s.scalars(select(Bill.bill_no).where(Bill.currency == "GBP")).one()
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "reference,account_ref,amount,currency,date,bill_no\n"
        "DD-1-1,A,199.20,EUR,2027-03-03,\n"  # settles A's pending debit
        f"BANK-7,B,10.00,GBP,2027-02-05,{bill_no}\n"  # a transfer, applied to that bill
        "BANK-7,B,10.00,GBP,2027-02-05,\n"  # the same line again: unchanged
        "BANK-8,ZZZ,1.00,EUR,2027-02-05,\n"  # unknown account
        "BANK-9,B,1.001,GBP,2027-02-05,\n"  # fractions of a penny
        "BANK-10,B,5.00,EUR,2027-02-05,\n"  # not the account's currency
        "BANK-11,B,5.00,GBP,05/02/2027,\n"  # not an ISO date
    )
    with unit_of_work(billed) as s:
        report = import_payments_csv(s, statement)
    assert (report.inserted, report.settled, report.unchanged) == (1, 1, 1)
    assert [n for n, _ in report.rejected] == [4, 5, 6, 7]
    assert "unknown account" in report.rejected[0][1]
    assert balance(billed, "A") == 0
    assert balance(billed, "B") == D("7.34")
    with unit_of_work(billed) as s:
        again = import_payments_csv(s, statement)
    assert (again.inserted, again.settled, again.unchanged) == (0, 0, 3)
    assert balance(billed, "B") == D("7.34")


def test_cli_record_and_import(billed, tmp_path):
    url = billed.url.render_as_string(hide_password=False)
    runner = CliRunner()
    args = ["payment", "record", "--account", "A", "--amount", "99.20", "--currency", "EUR"]
    args += ["--date", "2027-02-03", "--reference", "TRF-1", "--database", url]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "inserted" in first.output
    second = runner.invoke(app, args)
    assert "unchanged" in second.output
    assert balance(billed, "A") == D("100.00")
    bad = runner.invoke(app, [*args[:-4], "--reference", "TRF-2", "--database", url, "--x"])
    assert bad.exit_code != 0
    csv = tmp_path / "p.csv"
    csv.write_text("reference,account_ref,amount,currency,date\nTRF-3,A,100.00,EUR,2027-02-04\n")
    imported = runner.invoke(app, ["import", "payments", str(csv), "--database", url])
    assert imported.exit_code == 0, imported.output
    assert balance(billed, "A") == 0
    with unit_of_work(billed) as s:
        assert len(s.scalars(select(Payment)).all()) == 2
    unknown = runner.invoke(app, ["payment", "settle", "--reference", "NOPE", "--database", url])
    assert unknown.exit_code == 2
