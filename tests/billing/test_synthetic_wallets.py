"""Prepaid credits in the synthetic population (``billing.ingest.synthetic_wallets``): a share
of accounts with wallets and grants, some expiring before the first bill day, some topping up;
a bill day spends them and every post-billing check passes (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from billing.ingest.synthetic import seed
from billing.jobs.bill_day import Payments, run_bill_day
from billing.payments.config import PaymentConfig
from billing.payments.sandbox import SandboxGateway
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill
from billing.store.models_terms import Wallet, WalletEntry
from tests.expectations.direct import run_rules_directly

START = date(2027, 1, 1)
BILL_DAY = date(2027, 2, 1)


def test_seeded_wallets_are_spent_expired_and_topped_up_by_bill_day(engine, tmp_path):
    report = seed(engine, accounts=400, usage_per_account=1, start=START, seed=3, wallets=True)
    with unit_of_work(engine) as s:
        wallets = s.scalars(select(Wallet)).all()
        grants = s.scalars(select(WalletEntry)).all()
        currencies = dict(s.execute(select(Account.id, Account.currency)).tuples().all())
    assert (report.wallets, report.wallet_grants) == (len(wallets), len(grants))
    assert 20 <= len(wallets) <= 70  # about one in ten of 400
    assert all(w.currency == currencies[w.account_id] for w in wallets)
    welcome = [g for g in grants if g.expires_on is not None]
    assert welcome and all(g.expires_on == START + timedelta(days=20) < BILL_DAY for g in welcome)
    assert any(g.expires_on is None for g in grants)
    assert any(w.topup_threshold is not None for w in wallets)

    payments = Payments(SandboxGateway(tmp_path / "gw.sqlite3"), PaymentConfig(output_dir=tmp_path))
    result = run_bill_day(engine, BILL_DAY, "run-1", payments=payments)
    assert result.wallets is not None
    assert result.wallets.lots_expired > 0 and result.wallets.consumptions > 0
    assert result.wallets.topups > 0
    with unit_of_work(engine) as s:
        topups = s.scalar(select(func.count()).where(Bill.bill_key.like("pb:top:%")))
    assert topups == result.wallets.topups
    checks = run_rules_directly(engine, BILL_DAY)
    assert [r.name for r in checks.failed] == []
    assert Decimal(0) < sum(result.wallets.consumed_amounts.values())
