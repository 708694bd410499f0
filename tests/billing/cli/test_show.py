"""``billing show account``, ``billing issues`` and ``billing export invoices --account``.

The population is account A (EUR) and account B (GBP) of tests/billing/test_billday.py,
billed on 2027-02-01, then given a payment, a dunning row, issues and rejected usage.
Expected values are read back from the database, so the tests check what the views show.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner, Result

from billing.jobs.bill_day import run_bill_day
from billing.ops.views import UnknownAccounts, format_money, issues, mask_iban
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillingIssue,
    BillUnit,
    Charge,
    DeferredAction,
    Payment,
    RejectedUsage,
)
from billing.store.models_payments import AccountDunning
from tests.billing.test_billday import population  # noqa: F401

AS_OF = date(2027, 2, 1)
IBAN = "FR7630006000011234567890189"


@pytest.fixture
def billed(population):  # noqa: F811
    """A and B billed once; A pays by direct debit, has paid 10.00 and is in dunning."""
    run_bill_day(population, AS_OF, "run-1")
    with unit_of_work(population) as s:
        a = s.scalars(select(Account).where(Account.ref == "A")).one()
        a.payment_method = "direct_debit"
        a.iban = IBAN
        a.mandate_ref = "MD-A"
        a.balance = Decimal("1234.5")
        bill = s.scalars(select(Bill).where(Bill.account_id == a.id)).one()
        s.add(Payment(idempotency_key="p1", account_id=a.id, bill_id=bill.id,
                      method="direct_debit", amount=Decimal("10.00"), currency="EUR",
                      received_on=date(2027, 2, 5), status="failed", reference="DD-1",
                      reason="AC04 account closed"))  # fmt: skip
        s.add(AccountDunning(account_id=a.id, since=date(2027, 2, 20), bill_id=bill.id,
                             reason="direct debit returned three times"))  # fmt: skip
    return population


def url_of(engine) -> str:  # type: ignore[no-untyped-def]
    return engine.url.render_as_string(hide_password=False)


def run(engine, *args: str) -> Result:  # type: ignore[no-untyped-def]
    from flows.cli import app

    return CliRunner().invoke(app, [*args, "-d", url_of(engine)], env={"COLUMNS": "200"})


def cells(output: str) -> list[list[str]]:
    """Every table row of rich's output as its stripped cells."""
    return [
        [c.strip() for c in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.strip().startswith("│")
    ]


def test_format_money_uses_the_currency_minor_units():
    assert format_money(Decimal("1234.5"), "EUR") == "1,234.50 EUR"
    assert format_money(Decimal("-0.125"), "TND") == "-0.125 TND"
    assert format_money(Decimal("1500"), "JPY") == "1,500 JPY"
    with pytest.raises(TypeError):
        format_money(12.5, "EUR")  # type: ignore[arg-type]


def test_mask_iban_keeps_country_check_digits_and_last_four():
    masked = mask_iban("FR76 3000 6000 0112 3456 7890 189")
    assert masked == "FR76 " + "*" * 19 + " 0189"
    assert mask_iban(None) is None


def test_show_account_has_everything_about_the_account(billed):
    result = run(billed, "show", "account", "A")
    assert result.exit_code == 0, result.output
    rows = cells(result.stdout)
    head = {r[0]: r[1] for r in rows if len(r) == 2}
    assert head["name"] == "Customer A" and head["currency"] == "EUR"
    assert head["country"] == "FR" and head["status"] == "active"
    assert head["payment method"] == "direct_debit"
    assert head["IBAN"] == mask_iban(IBAN) and IBAN not in result.stdout
    assert head["balance"] == "1,234.50 EUR"
    assert head["dunning"].startswith("dunning since 2027-02-20, bill INV-")
    assert head["billing day"] == "1, monthly"
    with unit_of_work(billed) as s:
        a_id = s.scalar(select(Account.id).where(Account.ref == "A"))
        bill = s.scalars(select(Bill).where(Bill.account_id == a_id)).one()
        by_status = dict(
            s.execute(
                select(Charge.status, func.count()).where(Charge.account_id == a_id)
                .group_by(Charge.status)
            ).tuples().all()
        )  # fmt: skip
        open_sum = s.scalar(
            select(func.sum(Charge.amount)).where(
                Charge.account_id == a_id, Charge.status == "open"
            )
        )
    items = [r[0] for r in rows if len(r) == 9 and r[0].startswith("A")]
    assert items == ["A1", "A2", "A3", "A4", "A5"]
    (contract,) = [r for r in rows if r[0] == "CA"]
    assert contract[3:] == ["active", "yes", "A1, A2, A3, A4, A5"]
    charge_rows = {r[0]: r[1:] for r in rows if len(r) == 3}
    assert {k: int(v[0]) for k, v in charge_rows.items()} == {
        str(k): v for k, v in by_status.items()
    }
    assert charge_rows["open"][1] == f"{Decimal(open_sum).quantize(Decimal('0.01'))} EUR"
    (bill_row,) = [r for r in rows if r[0] == bill.bill_no]
    assert bill_row[3:6] == [f"{bill.net:.2f} EUR", f"{bill.tax:.2f} EUR", f"{bill.gross:.2f} EUR"]
    assert bill_row[7:] == ["invoiced", bill.due_date.isoformat()]
    (payment,) = [r for r in rows if r[0] == "payment"]
    assert payment == ["payment", "2027-02-05", "direct_debit", "10.00 EUR", "failed", "DD-1",
                       bill.bill_no, "AC04 account closed"]  # fmt: skip
    assert "Open issues: none" in result.stdout


def test_show_account_of_an_unknown_ref_is_one_line(billed):
    result = run(billed, "show", "account", "NOPE")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: unknown account 'NOPE'"
    assert result.stdout == ""


@pytest.fixture
def troubled(billed):
    """B failed to bill (still failed); A's old issue was retried; a deferred action failed;
    rejected usage naming A's item A3, an item A30 of nobody, and nothing at all."""
    with unit_of_work(billed) as s:
        ids = dict(s.execute(select(Account.ref, Account.id)).tuples().all())
        units = dict(s.execute(select(BillUnit.account_id, BillUnit.id)).tuples().all())
        s.execute(update(BillUnit).where(BillUnit.id == units[ids["B"]])
                  .values(billing_state="failed", failure_reason="no tax rate GB"))  # fmt: skip
        s.add_all([
            BillingIssue(run_id="run-2", step="bill_accounts", account_id=ids["B"],
                         bill_unit_id=units[ids["B"]], as_of=date(2027, 2, 28),
                         reason="no tax rate GB"),
            BillingIssue(run_id="run-0", step="bill_accounts", account_id=ids["A"],
                         bill_unit_id=units[ids["A"]], as_of=date(2027, 1, 1),
                         reason="old, billed since"),
            BillingIssue(run_id="run-1", step="collect", account_id=ids["A"],
                         as_of=AS_OF, reason="card declined"),
        ])  # fmt: skip
        s.execute(update(DeferredAction).values(status="failed", reason="no such item"))
        s.add_all([
            RejectedUsage(source="u.csv#1", row_number=1, raw="x1,A3,-1,2027-02-02T00:00",
                          reason="quantity -1 is negative"),
            RejectedUsage(source="u.csv#1", row_number=2, raw="x2,A30,1,2027-02-02T00:00",
                          reason="unknown item_ref 'A30'"),
            RejectedUsage(source="u.csv#1", row_number=3, raw=",,,", reason="blank"),
        ])  # fmt: skip
    return billed


def test_issues_lists_failed_accounts_and_rejected_usage(troubled):
    result = run(troubled, "issues")
    assert result.exit_code == 0, result.output
    rows = [r for r in cells(result.stdout) if r[0] != "kind"]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("billing issue", "A", "2027-02-01", "card declined"),
        ("deferred action failed", "A", "2027-02-15", "no such item"),
        ("billing issue", "B", "2027-02-28", "no tax rate GB"),
        ("usage rejected", "-", "-", "quantity -1 is negative"),
        ("usage rejected", "-", "-", "unknown item_ref 'A30'"),
        ("usage rejected", "-", "-", "blank"),
    ]
    assert "6 issue(s)" in result.stdout


def test_status_counts_the_issues_that_issues_lists(troubled):
    from billing.cli.status_cmd import count_states

    with troubled.connect() as conn:
        counted = count_states(conn)["Billing issues"]
    with unit_of_work(troubled) as s:
        listed = [i for i in issues(s) if i.kind == "billing issue"]
    assert counted == {"open": len(listed), "retried": 1, "resolved": 0}
    assert len(listed) == 2


def test_issues_filters(troubled):
    with unit_of_work(troubled) as s:
        everything = issues(s, include_past=True)
        assert "old, billed since" in {i.reason for i in everything}
        since = issues(s, since=date(2027, 2, 10))
        assert [(i.account_ref, i.reason) for i in since] == [
            ("A", "no such item"), ("B", "no tax rate GB"),
        ]  # fmt: skip
        of_a = issues(s, account_ref="A")
        assert [i.reason for i in of_a] == [
            "card declined", "no such item", "quantity -1 is negative",
        ]  # fmt: skip
        with pytest.raises(UnknownAccounts):
            issues(s, account_ref="NOPE")
    show = run(troubled, "show", "account", "B")
    assert "no tax rate GB" in show.stdout and "card declined" not in show.stdout
    bad = run(troubled, "issues", "--account", "NOPE")
    assert bad.exit_code == 1 and bad.stderr.strip() == "error: unknown account 'NOPE'"


def test_export_invoices_of_chosen_accounts(billed, tmp_path):
    every = run(billed, "export", "invoices")
    assert {i["account_ref"] for i in json.loads(every.stdout)} == {"A", "B"}
    only_b = run(billed, "export", "invoices", "--account", "B")
    assert only_b.exit_code == 0, only_b.output
    assert [i["account_ref"] for i in json.loads(only_b.stdout)] == ["B"]
    both = run(billed, "export", "invoices", "--account", "B", "--account", "A")
    assert len(json.loads(both.stdout)) == 2


def test_export_invoices_of_an_unknown_account_writes_nothing(billed, tmp_path):
    target = tmp_path / "out.json"
    result = run(billed, "export", "invoices", "--account", "A", "--account", "ZZ",
                 "--account", "YY", "-o", str(target))  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: unknown accounts 'ZZ', 'YY'"
    assert not target.exists()


def test_issues_says_none_when_there_are_none(billed):
    result = run(billed, "issues")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Issues: none"
