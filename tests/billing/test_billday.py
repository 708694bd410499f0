"""Bill day on a hand-checked population, on SQLite and PostgreSQL.

Every expected amount is worked out by hand in the comments. VAT is 20% (FR standard and GB
standard), rounded per line.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillingIssue,
    BillingState,
    BillUnit,
    Charge,
    ChargeStatus,
    UsageStatus,
)
from billing.store.usage import usage_marks
from tests import builders as b

D = Decimal
TIERS = [("100", "0.10"), ("1000", "0.05"), (None, "0.01")]


@pytest.fixture
def population(engine):
    """Account A (FR, EUR, billing day 1) and account B (GB, GBP, billing day 31)."""
    return seed_population(engine)


def seed_population(engine):
    """The hand-checked population in ``engine``'s store (the ``population`` fixture)."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20", ("standard", "GB"): "0.20"})
        adv = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        arr = b.plan(s, "SUPPORT", "recurring", price="12.00", timing="arrears")
        grad = b.plan(s, "API-GRAD", "graduated", tiers=TIERS)
        vol = b.plan(s, "API-VOL", "volume", tiers=TIERS)
        late = b.plan(s, "ADDON", "recurring", price="31.00", timing="advance")
        gbp_fee = b.plan(s, "UK-ARR", "recurring", "GBP", price="28.00", timing="arrears")
        gbp_use = b.plan(s, "UK-USE", "per_unit", "GBP", price="0.50")

        a = b.account(s, "A", created=date(2027, 1, 1), billing_day=1)
        ca = b.contract(s, a, "CA", date(2027, 1, 1))
        b.item(s, ca, "A1", adv, "recurring", date(2027, 1, 1))
        b.item(s, ca, "A2", arr, "recurring", date(2027, 1, 1), quantity="2")
        a3 = b.item(s, ca, "A3", grad, "usage", date(2027, 1, 1))
        a4 = b.item(s, ca, "A4", vol, "usage", date(2027, 1, 1))
        b.item(s, ca, "A5", late, "recurring", date(2027, 1, 11))
        b.usage(s, a3, "u-a3-1", "200", datetime(2027, 1, 10, 8))
        b.usage(s, a3, "u-a3-2", "50", datetime(2027, 1, 31, 23, 59))
        b.usage(s, a4, "u-a4-1", "250", datetime(2027, 1, 20))
        b.usage(s, a4, "u-a4-late", "999", datetime(2027, 2, 1, 0, 0))  # after midnight: next bill
        b.deferred(s, a, "cancel-A1", "cancel_item", date(2027, 2, 15), item_ref="A1")

        bb = b.account(
            s, "B", country="GB", currency="GBP", created=date(2027, 1, 15), billing_day=31
        )
        cb = b.contract(s, bb, "CB", date(2027, 1, 15))
        b.item(s, cb, "B1", gbp_fee, "recurring", date(2027, 1, 15))
        b2 = b.item(s, cb, "B2", gbp_use, "usage", date(2027, 1, 15))
        b.usage(s, b2, "u-b2-1", "10", datetime(2027, 2, 10, 12))
        b.usage(s, b2, "u-b2-2", "4", datetime(2027, 2, 28, 10))  # on the bill date: next bill
    return engine


def bills(engine):
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(
                Bill.bill_key, Bill.bill_date, Bill.currency, Bill.net, Bill.tax, Bill.gross
            ).order_by(Bill.bill_date, Bill.id)
        ).all()
    return [tuple(r) for r in rows]


def lines(engine, key):
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(Charge.description, Charge.period_start, Charge.period_end, Charge.amount)
            .join(Bill)
            .where(Bill.bill_key == key)
            .order_by(Charge.line_no)
        ).all()
    return [tuple(r) for r in rows]


def test_hand_checked_bill_days(population):
    engine = population
    run_bill_day(engine, date(2027, 2, 1), "run-1")
    unit_a, unit_b = 1, 2
    # A closes [Jan 1, Feb 1); B closes [Dec 31, Jan 31) (billing day 31).
    # A: PRO advance Jan 30.00 + Feb 30.00; SUPPORT arrears 2 x 12.00 = 24.00;
    #    graduated 250 = 100 x 0.10 + 150 x 0.05 = 17.50; volume 250 x 0.05 = 12.50
    #    (the 999 units at 00:00 on Feb 1 wait); ADDON from Jan 11: 31.00 x 21/31 = 21.00,
    #    then Feb in advance 31.00.  net 166.00, tax 6+6+4.8+3.5+2.5+4.2+6.2 = 33.20.
    # B: UK-ARR 28.00 x 16/31 days (Jan 15..31) = 14.4516 -> 14.45; tax 2.89.
    assert bills(engine) == [
        (f"cyc:{unit_b}:2027-01-31", date(2027, 1, 31), "GBP", D("14.45"), D("2.89"), D("17.34")),
        (f"cyc:{unit_a}:2027-02-01", date(2027, 2, 1), "EUR", D("166.00"), D("33.20"), D("199.20")),
    ]
    assert lines(engine, f"cyc:{unit_a}:2027-02-01") == [
        ("Product PRO", date(2027, 1, 1), date(2027, 2, 1), D("30.00")),
        ("Product SUPPORT", date(2027, 1, 1), date(2027, 2, 1), D("24.00")),
        ("Product API-GRAD", date(2027, 1, 10), date(2027, 2, 1), D("17.50")),
        ("Product ADDON", date(2027, 1, 11), date(2027, 2, 1), D("21.00")),
        ("Product API-VOL", date(2027, 1, 20), date(2027, 1, 21), D("12.50")),
        ("Product PRO", date(2027, 2, 1), date(2027, 3, 1), D("30.00")),
        ("Product ADDON", date(2027, 2, 1), date(2027, 3, 1), D("31.00")),
    ]

    # Feb 15: the deferred action cancels PRO; cycle_fees credits Feb 15..Mar 1 of the
    # 30.00 paid in advance: kept 14/28 days = 15.00, so the credit is -15.00. No bill is due.
    run_bill_day(engine, date(2027, 2, 15), "run-2")
    assert len(bills(engine)) == 2

    # Feb 28 is B's bill date (billing day 31 in February): [Jan 31, Feb 28) = 28.00 in arrears,
    # usage 10 x 0.50 = 5.00 (the 4 units of Feb 28 10:00 wait).  net 33.00, tax 6.60.
    run_bill_day(engine, date(2027, 2, 28), "run-3")
    # Mar 1, A: PRO credit -15.00; SUPPORT Feb 24.00; ADDON Mar 31.00 in advance;
    #    volume 999 x 0.05 = 49.95 (999 is in the 101..1000 tier).
    #    net 89.95, tax -3.00 + 4.80 + 6.20 + 9.99 = 17.99.
    run_bill_day(engine, date(2027, 3, 1), "run-4")
    assert bills(engine)[2:] == [
        (f"cyc:{unit_b}:2027-02-28", date(2027, 2, 28), "GBP", D("33.00"), D("6.60"), D("39.60")),
        (f"cyc:{unit_a}:2027-03-01", date(2027, 3, 1), "EUR", D("89.95"), D("17.99"), D("107.94")),
    ]
    with unit_of_work(engine) as s:
        next_dates = dict(s.execute(select(BillUnit.id, BillUnit.next_bill_date)).all())
        assert next_dates == {unit_a: date(2027, 4, 1), unit_b: date(2027, 3, 31)}
        balances = s.execute(select(Account.ref, Account.balance).order_by(Account.id)).all()
    # A: 199.20 + 107.94; B: 17.34 + 39.60 (the balance grows by each bill's gross).
    assert [tuple(r) for r in balances] == [("A", D("307.14")), ("B", D("56.94"))]


def test_rerun_adds_nothing(population):
    engine = population
    for _ in range(2):
        run_bill_day(engine, date(2027, 2, 1), "run")
    snapshot = _snapshot(engine)
    run_bill_day(engine, date(2027, 2, 1), "run-again")
    assert _snapshot(engine) == snapshot
    assert len(snapshot["bills"]) == 2


def _snapshot(engine):
    with unit_of_work(engine) as s:
        return {
            "bills": s.execute(select(Bill.bill_key, Bill.number, Bill.gross)).all(),
            "charges": s.execute(select(Charge.charge_key, Charge.status, Charge.amount)).all(),
            "usage": sorted((k, mark[0]) for k, mark in usage_marks(s).items()),
            "units": s.execute(select(BillUnit.id, BillUnit.next_bill_date)).all(),
        }


def test_bill_numbers_are_gapless_in_date_order(population):
    engine = population
    run_bill_day(engine, date(2027, 3, 1), "catch-up")
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(Bill.bill_date, Bill.number, Bill.bill_no).order_by(Bill.number)
        ).all()
    # Catch-up in one run: B Jan 31, A Feb 1, B Feb 28, A Mar 1 -> numbers 1..4 in date order.
    assert [r.number for r in rows] == [1, 2, 3, 4]
    assert [r.bill_date for r in rows] == sorted(r.bill_date for r in rows)
    assert rows[0].bill_no == "INV-00000001"


def test_failing_account_is_recorded_and_others_are_billed(population):
    engine = population
    with unit_of_work(engine) as s:  # B's country loses its VAT rate: B cannot be billed
        s.execute(text("update tax_rates set country = 'XX' where country = 'GB'"))
    result = run_bill_day(engine, date(2027, 2, 1), "run-fail")
    assert list(result.billing.failed) == ["B"]
    assert "no 'standard' VAT rate for GB" in result.billing.failed["B"]
    assert [key for key, *_ in bills(engine)] == ["cyc:1:2027-02-01"]
    with unit_of_work(engine) as s:
        state = s.scalar(select(BillUnit.billing_state).where(BillUnit.id == 2))
        issues = s.scalars(select(BillingIssue.reason)).all()
    assert state == BillingState.FAILED
    assert len(issues) == 1
    # The next run, with the rate back, bills B (the failed unit is retried).
    with unit_of_work(engine) as s:
        s.execute(text("update tax_rates set country = 'GB' where country = 'XX'"))
    run_bill_day(engine, date(2027, 2, 1), "run-retry")
    assert len(bills(engine)) == 2


def test_dry_run_writes_nothing(population):
    engine = population
    before = _snapshot(engine)
    result = run_bill_day(engine, date(2027, 2, 1), "dry", dry_run=True)
    assert result.billing.bills == 2
    assert result.billing.totals == {"EUR": D("199.20"), "GBP": D("17.34")}
    assert _snapshot(engine) == before


def test_usage_is_collected_into_its_charge(population):
    engine = population
    run_bill_day(engine, date(2027, 2, 1), "run")
    with unit_of_work(engine) as s:
        states = {k: mark[0] for k, mark in usage_marks(s).items()}
        open_charges = s.scalar(
            select(func.count()).select_from(Charge).where(Charge.status == ChargeStatus.OPEN)
        )
    assert states == {
        "u-a3-1": UsageStatus.COLLECTED,
        "u-a3-2": UsageStatus.COLLECTED,
        "u-a4-1": UsageStatus.COLLECTED,
        "u-a4-late": UsageStatus.PENDING,
        "u-b2-1": UsageStatus.PENDING,
        "u-b2-2": UsageStatus.PENDING,
    }
    assert open_charges == 8


def test_a_cycle_with_nothing_to_bill_advances_without_a_bill(population):
    engine = population
    with unit_of_work(engine) as s:
        b.account(s, "EMPTY", created=date(2027, 1, 1), billing_day=1)  # no contract
    result = run_bill_day(engine, date(2027, 2, 1), "run")
    assert (result.billing.bills, result.billing.empty_cycles, result.billing.billed) == (2, 1, 3)
    with unit_of_work(engine) as s:
        unit = s.scalars(select(BillUnit).join(Account).where(Account.ref == "EMPTY")).one()
    assert (unit.last_bill_date, unit.next_bill_date) == (date(2027, 2, 1), date(2027, 3, 1))
    assert len(bills(engine)) == 2
