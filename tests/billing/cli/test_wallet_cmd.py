"""``billing wallet grant | buy | show`` and the wallets in ``billing show account`` (SQLite and
PostgreSQL). Account A of tests/billing/test_billday.py (EUR), billed on 2027-02-01 (199.20)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import Bill
from billing.store.models_terms import WalletEntry
from tests.billing.cli.test_show import cells, run
from tests.billing.test_billday import population  # noqa: F401

D = Decimal


def test_grant_buy_and_show(population):  # noqa: F811
    engine = population
    granted = run(engine, "wallet", "grant", "A", "50.00", "--as-of", "2027-01-01",
                  "--expires", "2027-03-01")  # fmt: skip
    assert granted.exit_code == 0, granted.output
    assert "granted: 50.00 EUR to wallet A-credits (account A) from 2027-01-01" in granted.stdout
    assert "key gnt:1:2027-01-01/50.00/2027-03-01" in granted.stdout
    again = run(engine, "wallet", "grant", "A", "50.00", "--as-of", "2027-01-01",
                "--expires", "2027-03-01")  # fmt: skip
    assert "already granted (nothing written)" in again.stdout
    bought = run(engine, "wallet", "buy", "A-credits", "100", "--as-of", "2027-01-20",
                 "--key", "order-7")  # fmt: skip
    assert bought.exit_code == 0, bought.output
    assert (
        "bought: 100.00 EUR for wallet A-credits (account A) on bill INV-00000001" in bought.stdout
    )
    run_bill_day(engine, date(2027, 2, 1), "run-1")
    # A's bill is INV-3 (B's, of Jan 31, is INV-2). 199.20 due: the grant (expires Mar 1)
    # 50.00 first, then the 100.00 bought: 49.20 left due.
    shown = run(engine, "wallet", "show", "A")
    assert shown.exit_code == 0, shown.output
    rows = cells(shown.stdout)
    head = {r[0]: r[1] for r in rows if len(r) == 2}
    assert head["balance"] == "0.00 EUR" and head["top-up"] == "no"
    assert "Lots with credit left: none" in shown.stdout
    moves = [r for r in rows if len(r) == 5 and r[0].startswith("2027")]
    assert [(r[1], r[2], r[3]) for r in moves] == [
        ("consumption", "-100.00 EUR", "INV-00000003"),
        ("consumption", "-50.00 EUR", "INV-00000003"),
        ("purchase", "100.00 EUR", "INV-00000001"),
        ("grant", "50.00 EUR", "-"),
    ]
    account = run(engine, "show", "account", "A")
    head = {r[0]: r[1] for r in cells(account.stdout) if len(r) == 2}
    assert head["prepaid credits"] == "A-credits: 0.00 EUR"
    with unit_of_work(engine) as s:
        assert s.scalar(select(Bill.amount_paid).where(Bill.bill_no == "INV-00000003")) == D(
            "150.00"
        )


def test_refusals_exit_2_and_write_nothing(population):  # noqa: F811
    engine = population
    for args, message in (
        (("grant", "NOBODY", "5", "--as-of", "2027-01-01"), "no wallet and no account"),
        (("grant", "A", "0", "--as-of", "2027-01-01"), "positive"),
        (("grant", "A", "1.001", "--as-of", "2027-01-01"), "more decimals than EUR"),
        (("buy", "A", "5", "--as-of", "2027-01-01", "--expires", "2027-01-01"), "cannot expire"),
        (("grant", "A", "5", "--as-of", "2027-01-01", "--key", "x" * 65), "at most 64"),
    ):
        result = run(engine, "wallet", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    with unit_of_work(engine) as s:
        assert s.scalars(select(WalletEntry)).all() == []
    assert "has no wallet" in run(engine, "wallet", "show", "B").stdout
