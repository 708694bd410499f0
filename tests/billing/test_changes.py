"""Contract change requests, on SQLite and PostgreSQL, with hand-checked amounts.

Account A (FR, EUR, billing day 1) bought PRO (30.00 a month in advance, by-day proration)
on Jan 1, 2027. Bill day on Feb 1 charges January and, in advance, February [Feb 1, Mar 1):
28 days. Every request below is effective Feb 15, so 14 of February's 28 days remain.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.jobs.bill_day import apply_cycle_fees, run_bill_day
from billing.ops.changes import apply_change_requests, due_request_ids
from billing.store.db import unit_of_work
from billing.store.models import (
    Base,
    Bill,
    ChangeRequest,
    Charge,
    ChargeStatus,
    ContractItem,
    ItemStatus,
    PricePlan,
    RequestStatus,
)
from tests import builders as b

D = Decimal
FEB_15 = date(2027, 2, 15)


def snapshot(engine):
    """Every row of every table, in primary-key order: what "changes nothing" compares."""
    with unit_of_work(engine) as s:
        return {
            table.name: [
                tuple(row)
                for row in s.execute(table.select().order_by(*table.primary_key.columns)).all()
            ]
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def contract_a(engine):
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        b.plan(s, "PREMIUM", "recurring", price="50.00", timing="advance")
        b.plan(s, "PRO-USD", "recurring", "USD", price="30.00", timing="advance")
        b.plan(s, "SMS", "per_unit", price="0.10")
        a = b.account(s, "A", created=date(2027, 1, 1))
        ca = b.contract(s, a, "CA", date(2027, 1, 1))
        b.item(s, ca, "A1", pro, "recurring", date(2027, 1, 1))
    run_bill_day(engine, date(2027, 2, 1), "feb")
    return engine


def request(engine, ref, kind, effective=FEB_15, item="A1", **values):
    with unit_of_work(engine) as s:
        item_id = s.scalar(select(ContractItem.id).where(ContractItem.ref == item))
        if "plan" in values:
            code = values.pop("plan")
            values["new_price_plan_id"] = s.scalar(
                select(PricePlan.id).where(PricePlan.code == code)
            )
        row = ChangeRequest(
            ref=ref, contract_item_id=item_id, kind=kind, effective_date=effective, **values
        )
        s.add(row)
        s.flush()
        return row.id


def process(engine, on=FEB_15):
    with unit_of_work(engine) as s:
        return apply_change_requests(s, due_request_ids(s, on), on)


def charge(engine, key):
    with unit_of_work(engine) as s:
        row = s.scalars(select(Charge).where(Charge.charge_key == key)).one()
        return row.kind.value, row.period_start, row.period_end, row.bill_on, row.amount, row.status


def status(engine, ref):
    with unit_of_work(engine) as s:
        row = s.scalars(select(ChangeRequest).where(ChangeRequest.ref == ref)).one()
        return row.status, row.reason, row.processed_on


def test_quantity_up_mid_cycle_charges_the_rest_of_the_period(contract_a):
    engine = contract_a
    rid = request(engine, "CR1", "quantity", new_quantity=D("3"))
    result = process(engine)
    assert result.applied == {"quantity": 1} and result.adjustments == 1
    # February was charged 30.00 for 1 unit. From Feb 15, 14/28 of the month remain:
    # new terms 3 x 30.00 x 14/28 = 45.00, old terms 1 x 30.00 x 14/28 = 15.00: +30.00.
    assert charge(engine, f"chg:{rid}:2027-02-01") == (
        "adjustment",
        FEB_15,
        date(2027, 3, 1),
        FEB_15,
        D("30.00"),
        ChargeStatus.CALCULATED,
    )
    assert status(engine, "CR1") == (RequestStatus.APPLIED, None, FEB_15)
    # The next bill takes the adjustment with March at 3 x 30.00 = 90.00: net 120.00.
    run_bill_day(engine, date(2027, 3, 1), "mar")
    with unit_of_work(engine) as s:
        nets = s.scalars(select(Bill.net).order_by(Bill.bill_date)).all()
    assert nets == [D("60.00"), D("120.00")]


def test_quantity_change_before_the_cycle_is_charged_corrects_its_head(engine):
    """Arrears: the cycle is charged whole at the new terms later, so the head is corrected."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        arr = b.plan(s, "SUPPORT", "recurring", price="28.00", timing="arrears")
        a = b.account(s, "A", created=date(2027, 2, 1))
        ca = b.contract(s, a, "CA", date(2027, 2, 1))
        b.item(s, ca, "A1", arr, "recurring", date(2027, 2, 1))
    rid = request(engine, "CR1", "quantity", new_quantity=D("2"))
    process(engine)
    # Feb 1..15 (14 of 28 days) stays at 1 unit: 1 x 28.00 x 14/28 - 2 x 28.00 x 14/28 = -14.00.
    assert charge(engine, f"chg:{rid}:2027-02-01")[1:5] == (
        date(2027, 2, 1),
        FEB_15,
        FEB_15,
        D("-14.00"),
    )
    # On Mar 1 February is charged whole at 2 units, 56.00: with -14.00 the month is 42.00,
    # that is 14 days at 1 unit (14.00) plus 14 days at 2 units (28.00).
    run_bill_day(engine, date(2027, 3, 1), "mar")
    with unit_of_work(engine) as s:
        assert s.scalars(select(Bill.net)).all() == [D("42.00")]


def test_price_change_charges_the_difference_for_the_rest_of_the_period(contract_a):
    engine = contract_a
    rid = request(engine, "CR1", "price", new_price=D("45.00"))
    process(engine)
    # 45.00 x 14/28 = 22.50 instead of 30.00 x 14/28 = 15.00: +7.50.
    assert charge(engine, f"chg:{rid}:2027-02-01")[4] == D("7.50")
    with unit_of_work(engine) as s:
        assert s.scalar(select(ContractItem.price_override)) == D("45.00")


def test_swap_ends_the_old_item_with_its_credit_and_starts_the_new_one(contract_a):
    engine = contract_a
    request(engine, "CR1", "swap", plan="PREMIUM")
    result = process(engine)
    assert (result.credits, result.items_created) == (1, 1)
    with unit_of_work(engine) as s:
        items = s.execute(
            select(
                ContractItem.ref,
                ContractItem.status,
                ContractItem.start_date,
                ContractItem.end_date,
            ).order_by(ContractItem.id)
        ).all()
    assert [tuple(r) for r in items] == [
        ("A1", ItemStatus.ENDED, date(2027, 1, 1), FEB_15),
        ("A1-swap-CR1", ItemStatus.ACTIVE, FEB_15, None),
    ]
    # A1 keeps Feb 1..15 (14/28 x 30.00 = 15.00) of the 30.00 paid: credit -15.00.
    assert charge(engine, "cxl:1:2027-02-01")[4] == D("-15.00")
    # PREMIUM from Feb 15: 50.00 x 14/28 = 25.00, under the schedule's own key.
    assert charge(engine, "rec:2:2027-02-01")[1:5] == (FEB_15, date(2027, 3, 1), FEB_15, D("25.00"))


def test_termination_sets_the_pending_cancel_date_and_cycle_fees_credits(contract_a):
    engine = contract_a
    request(engine, "CR1", "termination")
    process(engine)
    with unit_of_work(engine) as s:
        item = s.scalars(select(ContractItem)).one()
        assert (item.status, item.pending_cancel_date) == (ItemStatus.ACTIVE, FEB_15)
    # Bill day's cycle_fees cancels it and credits Feb 15..Mar 1: -15.00.
    apply_cycle_fees(engine, FEB_15, "run")
    assert charge(engine, "cxl:1:2027-02-01")[4] == D("-15.00")
    with unit_of_work(engine) as s:
        assert s.scalar(select(ContractItem.status)) == ItemStatus.CANCELLED


@pytest.mark.parametrize(
    ("kind", "values", "effective", "reason"),
    [
        (
            "quantity",
            {"new_quantity": D("-1")},
            FEB_15,
            "new_quantity: must not be negative, got -1",
        ),
        ("quantity", {}, FEB_15, "new_quantity: a quantity change needs a new_quantity"),
        ("price", {"new_price": D("-5")}, FEB_15, "new_price: must not be negative, got -5"),
        ("swap", {}, FEB_15, "new_price_plan_id: a swap needs the new price plan"),
        ("swap", {"plan": "PRO"}, FEB_15, "new_price_plan_id: item A1 already has price plan PRO"),
        (
            "swap",
            {"plan": "PRO-USD"},
            FEB_15,
            "new_price_plan_id: price plan PRO-USD is in USD, the account bills in EUR",
        ),
        (
            "swap",
            {"plan": "SMS"},
            FEB_15,
            "new_price_plan_id: a per_unit plan cannot price recurring item A1",
        ),
        (
            "quantity",
            {"new_quantity": D("2")},
            date(2026, 12, 31),
            "effective_date: 2026-12-31 is before item A1 starts (2027-01-01)",
        ),
    ],
)
def test_invalid_requests_are_rejected_with_the_field(contract_a, kind, values, effective, reason):
    engine = contract_a
    request(engine, "BAD", kind, effective=effective, **values)
    request(engine, "GOOD", "quantity", new_quantity=D("2"))
    result = process(engine)
    assert result.rejected == {"BAD": reason}
    assert status(engine, "BAD") == (RequestStatus.REJECTED, reason, FEB_15)
    assert status(engine, "GOOD")[0] == RequestStatus.APPLIED


def test_a_request_on_a_cancelled_item_is_rejected(contract_a):
    engine = contract_a
    with unit_of_work(engine) as s:
        s.scalars(select(ContractItem)).one().status = ItemStatus.CANCELLED
    request(engine, "CR1", "price", new_price=D("10"))
    assert process(engine).rejected == {"CR1": "contract_item_id: item A1 is cancelled"}


def test_requests_effective_later_wait(contract_a):
    engine = contract_a
    request(engine, "CR1", "quantity", effective=date(2027, 2, 20), new_quantity=D("2"))
    assert process(engine).applied == {}
    assert status(engine, "CR1")[0] == RequestStatus.PENDING


def test_rerun_with_the_same_date_changes_nothing(contract_a):
    engine = contract_a
    request(engine, "CR1", "quantity", new_quantity=D("3"))
    request(engine, "CR2", "swap", effective=date(2027, 2, 10), plan="PREMIUM", item="A1")
    request(engine, "CR3", "price", new_price=D("-1"))
    process(engine)
    before = snapshot(engine)
    again = process(engine)
    assert (again.applied, again.rejected) == ({}, {})
    assert snapshot(engine) == before
