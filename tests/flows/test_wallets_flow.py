"""Prepaid credits in the deployed path: the bill-day flow runs ``apply_wallets`` as a task of
its own, after numbering and before collection, and reports it (SQLite and PostgreSQL).

The population is tests/billing/test_billday.py's: account A's bill of 2027-02-01 is 199.20 EUR.
A has a wallet with 50.00 of free credits, so 199.20 - 50.00 = 149.20 is left to pay.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from sqlalchemy import select

from billing.ops.wallets import find_wallet, grant_credits
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill
from billing.store.models_terms import Wallet
from flows.bill_day import bill_day
from tests.billing.test_billday import population, seed_population  # noqa: F401
from tests.flows.conftest import artifacts, task_runs
from tests.flows.test_bill_day_flow import billing_db  # noqa: F401

D = Decimal


def test_the_flow_spends_prepaid_credits_after_numbering_and_before_collection(billing_db):  # noqa: F811
    engine = billing_db
    with unit_of_work(engine) as s:
        a = s.scalars(select(Account).where(Account.ref == "A")).one()
        s.add(Wallet(ref="W-A", account_id=a.id, name="Credits", currency="EUR",
                     created_on=date(2027, 1, 1)))  # fmt: skip
        s.flush()
        grant_credits(s, find_wallet(s, "W-A"), D("50.00"), on=date(2027, 1, 1), reference="hi")
    state = bill_day(as_of=date(2027, 2, 1), database_block="", documents=False, return_state=True)
    assert state.is_completed()  # the checks gate passed, with the wallet rules
    runs = {r["name"].rsplit("-", 1)[0]: r for r in task_runs(state.state_details.flow_run_id)}
    assert runs["number_invoices"]["end_time"] <= runs["apply_wallets"]["start_time"]
    for after in ("apply_cycle_fees", "collect_payments", "refund_payments"):
        assert runs["apply_wallets"]["end_time"] <= runs[after]["start_time"], after
    with unit_of_work(engine) as s:
        paid = s.scalar(select(Bill.amount_paid).where(Bill.currency == "EUR"))
    assert paid == D("50.00")  # of 199.20: the rest waits for A's payment (by invoice)
    table = json.loads(artifacts("bill-day-summary")[0]["data"])
    assert {"measure": "bills paid by prepaid credits", "value": "1"} in table
    assert {"measure": "prepaid credits used EUR", "value": "50.00 EUR"} in table
    summary = artifacts("bill-day-run-summary")[0]["data"]
    assert "| prepaid credits | bills paid | 1 |" in summary
