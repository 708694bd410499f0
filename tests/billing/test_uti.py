"""The seed's manual mode for a UTI item, on SQLite and PostgreSQL.

Usage on a UTI item goes Pending -> Collected when the UTI Schedule Generator runs with a
Process Now later than the usage; the Invoicing Schedule line appears as ``calculated``; the
Billing daemon's operations (bill day's bill_accounts + number_bills) then invoice it.
VAT is 20%; the UTI plan is 0.50 per unit.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.jobs.bill_day import bill_accounts, number_bills
from billing.jobs.uti_schedule_generator import run_uti_schedule_generator
from billing.store.db import unit_of_work
from billing.store.models import (
    Bill,
    BillingIssue,
    Charge,
    ChargeStatus,
    ContractItem,
    UsageStatus,
)
from billing.store.usage import usage_marks
from tests import builders as b
from tests.billing.test_changes import snapshot

D = Decimal
PROCESS_NOW = datetime(2027, 1, 12, 12, 0)


@pytest.fixture
def uti_population(engine):
    """Account A (FR, EUR, billing day 1) with a UTI item and three usage records."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        per_unit = b.plan(s, "UTI-SMS", "per_unit", price="0.50")
        a = b.account(s, "A", created=date(2027, 1, 1))
        ca = b.contract(s, a, "CA", date(2027, 1, 1))
        it = b.item(s, ca, "A-UTI", per_unit, "uti", date(2027, 1, 1))
        b.usage(s, it, "u1", "10", datetime(2027, 1, 10, 8, 0))
        b.usage(s, it, "u2", "4", datetime(2027, 1, 12, 11, 59))
        b.usage(s, it, "u3", "6", datetime(2027, 1, 12, 12, 0))  # at Process Now: waits
    return engine


def usage_states(engine):
    with unit_of_work(engine) as s:
        return {k: mark[0] for k, mark in usage_marks(s).items()}


def charges(engine):
    with unit_of_work(engine) as s:
        return s.execute(
            select(
                Charge.charge_key,
                Charge.status,
                Charge.immediate,
                Charge.bill_on,
                Charge.quantity,
                Charge.amount,
            ).order_by(Charge.id)
        ).all()


def test_manual_mode_collects_then_the_billing_daemon_invoices(uti_population):
    engine = uti_population
    result = run_uti_schedule_generator(engine, PROCESS_NOW, "uti-1")
    assert (result.collected, result.charges, result.failed) == (2, 1, {})
    assert usage_states(engine) == {
        "u1": UsageStatus.COLLECTED,
        "u2": UsageStatus.COLLECTED,
        "u3": UsageStatus.PENDING,
    }
    # 10 + 4 units x 0.50 = 7.00, an immediate IS line dated Process Now's day.
    item_id = 1
    key = f"uti:{item_id}:2027-01-12T12:00:00"
    assert [tuple(r) for r in charges(engine)] == [
        (key, ChargeStatus.CALCULATED, True, date(2027, 1, 12), D("14"), D("7.00"))
    ]

    billed = bill_accounts(engine, PROCESS_NOW.date(), "billing-1")
    number_bills(engine)
    assert billed.bills == 1
    with unit_of_work(engine) as s:
        bill = s.scalars(select(Bill)).one()
        lines = s.execute(select(Charge.id, Charge.amount)).all()
        charge = s.scalars(select(Charge)).one()
    # Net 7.00, VAT 1.40: the bill is numbered and its one line is the UTI charge.
    assert (bill.bill_no, bill.bill_date, bill.net, bill.tax, bill.gross) == (
        "INV-00000001",
        date(2027, 1, 12),
        D("7.00"),
        D("1.40"),
        D("8.40"),
    )
    assert [tuple(r) for r in lines] == [(charge.id, D("7.00"))]
    assert (charge.status, charge.bill_id) == (ChargeStatus.OPEN, bill.id)


def test_later_usage_waits_for_a_later_run(uti_population):
    engine = uti_population
    run_uti_schedule_generator(engine, PROCESS_NOW, "uti-1")
    run_uti_schedule_generator(engine, datetime(2027, 1, 13, 0, 0), "uti-2")
    assert set(usage_states(engine).values()) == {UsageStatus.COLLECTED}
    # 6 units x 0.50 = 3.00 in a second line keyed by the second Process Now.
    assert [(r.charge_key, r.amount) for r in charges(engine)] == [
        ("uti:1:2027-01-12T12:00:00", D("7.00")),
        ("uti:1:2027-01-13T00:00:00", D("3.00")),
    ]


def test_rerun_with_the_same_process_now_changes_nothing(uti_population):
    engine = uti_population
    run_uti_schedule_generator(engine, PROCESS_NOW, "uti-1")
    before = snapshot(engine)
    again = run_uti_schedule_generator(engine, PROCESS_NOW, "uti-2")
    assert (again.collected, again.charges) == (0, 0)
    assert snapshot(engine) == before


def test_an_account_that_cannot_be_rated_is_recorded_and_the_others_go_on(uti_population):
    engine = uti_population
    with unit_of_work(engine) as s:
        fee = b.plan(s, "FEE", "recurring", price="5.00", timing="advance")
        bb = b.account(s, "B", created=date(2027, 1, 1))
        cb = b.contract(s, bb, "CB", date(2027, 1, 1))
        bad = b.item(s, cb, "B-UTI", fee, "uti", date(2027, 1, 1))  # a fee plan cannot rate usage
        b.usage(s, bad, "b1", "3", datetime(2027, 1, 11))
    result = run_uti_schedule_generator(engine, PROCESS_NOW, "uti-1")
    assert result.collected == 2
    assert list(result.failed) == [2]
    assert "rate_usage cannot price a recurring plan" in result.failed[2]
    assert usage_states(engine)["b1"] == UsageStatus.PENDING
    with unit_of_work(engine) as s:
        issues = s.execute(select(BillingIssue.step, BillingIssue.account_id)).all()
    assert [tuple(r) for r in issues] == [("uti_schedule_generator", 2)]


def test_usage_arriving_for_a_billed_run_goes_to_a_later_run_never_lost(uti_population):
    """A record stamped before a Process Now whose line is billed already: a rerun of that
    Process Now cannot re-price the billed line (it is open) and leaves the record to a later
    run; the billed line keeps pricing exactly its own 14 units."""
    engine = uti_population
    run_uti_schedule_generator(engine, PROCESS_NOW, "uti-1")
    bill_accounts(engine, PROCESS_NOW.date(), "billing-1")
    with unit_of_work(engine) as s:
        it = s.scalars(select(ContractItem).where(ContractItem.ref == "A-UTI")).one()
        b.usage(s, it, "u-late", "2", datetime(2027, 1, 11, 9, 0))  # before Process Now
    again = run_uti_schedule_generator(engine, PROCESS_NOW, "uti-2")
    assert (again.collected, again.charges) == (0, 0)  # its line is billed: nothing to re-price
    assert usage_states(engine)["u-late"] == UsageStatus.PENDING
    assert [(r.charge_key, r.quantity) for r in charges(engine)] == [
        ("uti:1:2027-01-12T12:00:00", D("14")),
    ]
    run_uti_schedule_generator(engine, datetime(2027, 1, 13, 0, 0), "uti-3")
    with unit_of_work(engine) as s:
        marks = usage_marks(s)
    # 2 late units and u3's 6 (stamped at the first Process Now) in the second run's line.
    assert marks["u-late"] == (UsageStatus.COLLECTED, "uti:1:2027-01-13T00:00:00")
    assert [(r.charge_key, r.quantity) for r in charges(engine)] == [
        ("uti:1:2027-01-12T12:00:00", D("14")),
        ("uti:1:2027-01-13T00:00:00", D("8")),
    ]
