"""Changes after the fact (issue #19): a change effective before bills already made is settled
on the next bill as a correction line, and bill day never fails its checks because of it.

Account A (FR, EUR, billing day 1) bought PRO (30.00 a month in advance, by-day proration) on
Oct 1, 2026. Bill day on Nov 1 bills October and, in advance, November [Nov 1, Dec 1): 30 days.
The item is terminated effective Nov 20: Nov 20 is the first day not served, so 11 of
November's 30 days are credited, 30.00 x 11/30 = -11.00. Every bill day below runs through the
job users run (``run_bill_day``) with the post-billing checks on (their SQL, run directly).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.jobs.bill_day import run_bill_day
from billing.jobs.contract_change_process import run_contract_change_process
from billing.jobs.database import engine_of
from billing.store.db import unit_of_work
from billing.store.models import Bill, BillLine, ChangeRequest, Charge, ContractItem, ItemStatus
from tests import builders as b
from tests.expectations.direct import run_rules_directly

D = Decimal
NOV_1, NOV_20, DEC_1, JAN_1 = (
    date(2026, 11, 1),
    date(2026, 11, 20),
    date(2026, 12, 1),
    date(2027, 1, 1),
)


def checks(database, as_of, _output):
    """The post-billing gate, on the rules' SQL alone (no Data Docs: a GE run costs seconds)."""
    return run_rules_directly(engine_of(database), as_of)


def bill_day(engine, as_of: date, run_id: str | None = None):
    result = run_bill_day(engine, as_of, run_id or f"run-{as_of}", checks=checks)
    assert result.problem is None, result.problem
    return result


@pytest.fixture
def account_a(engine):
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        a = b.account(s, "A", created=date(2026, 10, 1))
        ca = b.contract(s, a, "CA", date(2026, 10, 1))
        b.item(s, ca, "A1", pro, "recurring", date(2026, 10, 1))
    bill_day(engine, NOV_1)
    return engine


def terminate(engine, effective: date, ref: str = "CR1") -> None:
    with unit_of_work(engine) as s:
        item_id = s.scalar(select(ContractItem.id).where(ContractItem.ref == "A1"))
        s.add(
            ChangeRequest(
                ref=ref, contract_item_id=item_id, kind="termination", effective_date=effective
            )
        )


def process_changes(engine, on: date) -> None:
    run_contract_change_process(engine, datetime(on.year, on.month, on.day, 2, 0))


def bills(engine):
    """Each bill as (bill date, number, net, [(description, period start, end, net)])."""
    with unit_of_work(engine) as s:
        found = []
        for bill in s.scalars(select(Bill).order_by(Bill.bill_date, Bill.id)):
            lines = s.execute(
                select(
                    BillLine.description, BillLine.period_start, BillLine.period_end, BillLine.net
                )
                .where(BillLine.bill_id == bill.id)
                .order_by(BillLine.position)
            ).all()
            found.append((bill.bill_date, bill.bill_no, bill.net, [tuple(r) for r in lines]))
        return found


def test_termination_processed_before_the_next_bill_is_credited_on_it(account_a):
    """The issue's scenario: terminated effective Nov 20, processed on the 20th, and the
    1 December bill day must pass its checks with the credit on the December bill."""
    engine = account_a
    terminate(engine, NOV_20)
    process_changes(engine, NOV_20)
    bill_day(engine, DEC_1)
    (nov, dec) = bills(engine)
    assert nov[2] == D("60.00")
    assert dec[0] == DEC_1 and dec[2] == D("-11.00")
    with unit_of_work(engine) as s:
        assert s.scalar(select(ContractItem.status)) == ItemStatus.CANCELLED
        assert s.scalars(select(Charge).where(Charge.status == "calculated")).all() == []
