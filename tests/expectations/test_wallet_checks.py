"""The prepaid credits' post-billing rules, each catching a row broken by hand (SQLite and
PostgreSQL).

The population is tests/billing/test_billday.py's, billed on 2027-02-01 (A's bill id 1:
199.20 EUR). Before that, A's wallet W got two free lots that never expire: L1 50.00 (entry id
1) and L2 100.00 (id 2); B has an empty wallet WB in GBP. Bill day spends L1 (lower id first),
then L2: 150.00 paid, 199.20 - 150.00 = 49.20 left due; W's balance 0.00.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine, insert, select, update

from billing.jobs.bill_day import run_bill_day
from billing.ops.wallets import find_wallet, grant_credits
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill
from billing.store.models_terms import Wallet, WalletEntry
from tests.billing import test_billday
from tests.expectations.test_suites import check, failures, ge_check

D = Decimal
AS_OF = date(2027, 2, 1)
population = test_billday.population


@pytest.fixture
def spent(population: Engine) -> Engine:
    with unit_of_work(population) as s:
        for ref, account, currency in (("W", "A", "EUR"), ("WB", "B", "GBP")):
            account_id = s.scalar(select(Account.id).where(Account.ref == account))
            s.add(Wallet(ref=ref, account_id=account_id, name=ref, currency=currency,
                         created_on=date(2027, 1, 1)))  # fmt: skip
        s.flush()
        for amount, key in (("50.00", "L1"), ("100.00", "L2")):
            grant_credits(s, find_wallet(s, "W"), D(amount), on=date(2027, 1, 1), reference=key)
    run_bill_day(population, AS_OF, "run")
    return population


def entries(engine: Engine) -> list[tuple]:
    with unit_of_work(engine) as s:
        return s.execute(
            select(
                WalletEntry.id,
                WalletEntry.kind,
                WalletEntry.amount,
                WalletEntry.lot_id,
                WalletEntry.bill_id,
            ).order_by(WalletEntry.id)  # fmt: skip
        ).all()


def add_entry(engine: Engine, key: str, wallet: str, kind: str, amount: str, lot: int, **more):
    with unit_of_work(engine) as s:
        wallet_id = s.scalar(select(Wallet.id).where(Wallet.ref == wallet))
        s.execute(
            insert(WalletEntry).values(
                entry_key=key,
                wallet_id=wallet_id,
                kind=kind,
                amount=D(amount),
                on_date=AS_OF,
                lot_id=lot,
                description="by hand",
                **more,
            )  # fmt: skip
        )


def test_spent_credits_pass_every_check_also_through_great_expectations(spent, tmp_path):
    assert [tuple(e[1:]) for e in entries(spent)] == [
        ("grant", D("50.00"), None, None),
        ("grant", D("100.00"), None, None),
        ("consumption", D("-50.00"), 1, 1),
        ("consumption", D("-100.00"), 2, 1),
    ]
    with unit_of_work(spent) as s:
        assert s.scalar(select(Bill.amount_paid).where(Bill.id == 1)) == D("150.00")
        assert s.scalar(select(Account.balance).where(Account.ref == "A")) == D("49.20")
    report = ge_check(spent, tmp_path)
    assert failures(report) == {}, failures(report)


def test_balance_counts_prepaid_credits_consumed(spent, tmp_path):
    with unit_of_work(spent) as s:  # as if consumption had not moved the balance
        s.execute(update(Account).where(Account.ref == "A").values(balance=D("199.20")))
    report = check(spent, tmp_path)
    assert failures(report) == {"account_balance_matches_ledger": 1}
    sample = report.result("account_balance_matches_ledger").sample[0]
    # 199.20 invoiced - 150.00 of credits consumed
    assert (sample["expected_balance"], sample["prepaid_credits"]) == (D("49.20"), D("-150.00"))


def test_bill_paid_beyond_its_gross(spent, tmp_path):
    with unit_of_work(spent) as s:
        s.execute(update(Bill).where(Bill.id == 1).values(amount_paid=D("199.21")))
    assert failures(check(spent, tmp_path)) == {"bill_paid_within_gross": 1}


def test_lot_overdrawn(spent, tmp_path):
    grant_more(spent, "200.00", "L3")  # the balance stays positive: 200.00 - 60.00
    add_entry(spent, "exp:1", "W", "expiry", "-60.00", 1)  # L1 had nothing left
    assert failures(check(spent, tmp_path)) == {"wallet_lots_not_overdrawn": 1}


def test_consumption_naming_another_wallets_lot(spent, tmp_path):
    grant_more(spent, "200.00", "L3")
    add_entry(spent, "exp:3-elsewhere", "WB", "expiry", "-1.00", 5)  # WB takes from W's L3
    report = check(spent, tmp_path)
    # WB's balance is -1.00, and L3 gave to another wallet.
    assert failures(report) == {"wallet_lots_not_overdrawn": 1, "wallet_balance_not_negative": 1}


def test_wallet_balance_negative(spent, tmp_path):
    add_entry(spent, "exp:2", "W", "expiry", "-10.00", 2)  # L2: 100.00 - 100.00 - 10.00
    report = check(spent, tmp_path)
    assert failures(report) == {"wallet_balance_not_negative": 1, "wallet_lots_not_overdrawn": 1}
    assert report.result("wallet_balance_not_negative").sample[0]["balance"] == D("-10.00")


def test_consumption_beyond_the_bill(spent, tmp_path):
    grant_more(spent, "500.00", "L3")
    # 60.00 more of L3 on bill 1: 210.00 consumed of a 199.20 bill that records 150.00 paid;
    # the balance did not move either.
    add_entry(spent, "spd:5:1", "W", "consumption", "-60.00", 5, bill_id=1)
    report = check(spent, tmp_path)
    assert failures(report) == {
        "wallet_consumption_within_bill": 1,
        "account_balance_matches_ledger": 1,
    }
    sample = report.result("wallet_consumption_within_bill").sample[0]
    assert (sample["gross"], sample["amount_paid"], sample["consumed"]) == (
        D("199.20"), D("150.00"), D("210.00"),
    )  # fmt: skip


def grant_more(engine: Engine, amount: str, key: str) -> None:
    with unit_of_work(engine) as s:
        grant_credits(s, find_wallet(s, "W"), D(amount), on=AS_OF, reference=key)
