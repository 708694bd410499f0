"""Usage thresholds (progressive billing, issue #21), on SQLite and PostgreSQL.

Account A (FR, EUR, VAT 20 %, billing day 1, monthly) was created on 2026-12-01; the 1 January
bill day closes its first cycle (nothing to bill), so January [Jan 1, Feb 1) is its open cycle
when the UTI daemon runs in January. Its usage item U1 is on CALLS: per unit at 0.50, or
graduated (the first 100 calls at 1.00, the next at 0.50). Every bill day runs with the
post-billing checks on (the rules run directly, tests/expectations/direct.py); the Billing
daemon is bill day's billing and numbering (as tests/billing/test_uti.py runs it).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.domain import thresholds as th
from billing.domain.pricing import PricePlan, Tier
from billing.jobs.bill_day import bill_accounts, number_bills, run_bill_day
from billing.jobs.database import engine_of
from billing.jobs.uti_schedule_generator import run_uti_schedule_generator
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    Charge,
    ChargeStatus,
    ContractItem,
    UsageStatus,
)
from billing.store.usage import usage_marks
from tests import builders as b
from tests.billing.test_changes import snapshot
from tests.expectations.direct import run_rules_directly

D = Decimal
JAN_1, FEB_1, MAR_1 = date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)
PER_UNIT = {"model": "per_unit", "price": "0.50"}
GRADUATED = {"model": "graduated", "tiers": [("100", "1.00"), (None, "0.50")]}


def checks(database, as_of, _output):
    return run_rules_directly(engine_of(database), as_of)


def bill_day(engine, as_of: date):
    result = run_bill_day(engine, as_of, f"run-{as_of}", checks=checks)
    assert result.problem is None, result.problem
    return result


def billing_daemon(engine, as_of: date):
    """The Billing daemon's operations: bill what is due (immediate charges), number it."""
    billed = bill_accounts(engine, as_of, f"billing-{as_of}")
    number_bills(engine)
    assert billed.failed == {}
    return billed


def uti(engine, process_now: datetime):
    result = run_uti_schedule_generator(engine, process_now, f"uti-{process_now.isoformat()}")
    assert result.failed == {}
    return result


def population(engine, threshold: str | None, calls=PER_UNIT, sms: str | None = None) -> None:
    """Account A with U1 on CALLS (and U2 on SMS at ``sms`` a unit, when given)."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        model, price, tiers = calls["model"], calls.get("price"), calls.get("tiers")
        plan = b.plan(s, "CALLS", model, price=price, tiers=tiers)
        a = b.account(s, "A", created=date(2026, 12, 1))
        a.usage_threshold = None if threshold is None else D(threshold)
        ca = b.contract(s, a, "CA", date(2026, 12, 1))
        b.item(s, ca, "U1", plan, "usage", date(2026, 12, 1))
        if sms is not None:
            b.item(s, ca, "U2", b.plan(s, "SMS", "per_unit", price=sms), "usage", date(2026, 12, 1))
    bill_day(engine, JAN_1)


def add_usage(engine, external_id: str, quantity: str, at: datetime, item: str = "U1") -> None:
    with unit_of_work(engine) as s:
        it = s.scalars(select(ContractItem).where(ContractItem.ref == item)).one()
        b.usage(s, it, external_id, quantity, at)


def item_id(engine, ref: str = "U1") -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(ContractItem.id).where(ContractItem.ref == ref))


def charges(engine):
    """Every charge as (key, status, immediate, bill_on, quantity, amount), in id order."""
    with unit_of_work(engine) as s:
        return [
            tuple(row)
            for row in s.execute(
                select(
                    Charge.charge_key,
                    Charge.status,
                    Charge.immediate,
                    Charge.bill_on,
                    Charge.quantity,
                    Charge.amount,
                ).order_by(Charge.id)
            )
        ]


def bills(engine):
    """Every bill as (bill date, net, tax, gross), in id order."""
    with unit_of_work(engine) as s:
        return [
            tuple(row)
            for row in s.execute(
                select(Bill.bill_date, Bill.net, Bill.tax, Bill.gross).order_by(Bill.id)
            )
        ]


def lines_of(engine, bill_date: date):
    """The lines of the bills of ``bill_date`` as (key, period start, period end, quantity, net)."""
    with unit_of_work(engine) as s:
        return [
            tuple(row)
            for row in s.execute(
                select(
                    Charge.charge_key,
                    Charge.period_start,
                    Charge.period_end,
                    Charge.quantity,
                    Charge.amount,
                )
                .join(Bill, Bill.id == Charge.bill_id)
                .where(Bill.bill_date == bill_date)
                .order_by(Bill.id, Charge.line_no)
            )
        ]


def test_per_unit_usage_past_the_threshold_is_billed_early_then_the_cycle_bills_the_rest(engine):
    population(engine, "10.00")
    u1 = item_id(engine)
    add_usage(engine, "c1", "15", datetime(2027, 1, 5, 10))
    # 15 x 0.50 = 7.50 < 10.00: nothing yet.
    below = uti(engine, datetime(2027, 1, 6))
    assert (below.threshold_accounts, below.threshold_charges) == (0, 0)
    assert charges(engine) == []

    add_usage(engine, "c2", "10", datetime(2027, 1, 10, 10))
    # 25 x 0.50 = 12.50 >= 10.00: one immediate charge, billed from Process Now's day.
    early = uti(engine, datetime(2027, 1, 12, 12))
    key = f"thr:{u1}:2027-02-01:2027-01-12T12:00:00"
    assert (early.threshold_accounts, early.threshold_charges, early.threshold_records) == (1, 1, 2)
    assert early.threshold_amounts == {"EUR": D("12.50")}
    assert charges(engine) == [
        (key, ChargeStatus.CALCULATED, True, date(2027, 1, 12), D("25"), D("12.50"))
    ]
    with unit_of_work(engine) as s:
        assert {k: m for k, m in usage_marks(s).items()} == {
            "c1": (UsageStatus.COLLECTED, key),
            "c2": (UsageStatus.COLLECTED, key),
        }

    billing_daemon(engine, date(2027, 1, 12))
    # An immediate bill of Jan 12: 12.50 + 20 % VAT 2.50 = 15.00.
    assert bills(engine) == [(date(2027, 1, 12), D("12.50"), D("2.50"), D("15.00"))]
    assert lines_of(engine, date(2027, 1, 12)) == [
        (key, date(2027, 1, 5), date(2027, 1, 11), D("25"), D("12.50"))
    ]

    add_usage(engine, "c3", "8", datetime(2027, 1, 20, 10))
    # 33 x 0.50 = 16.50 less 12.50 billed: 4.00 unbilled < 10.00, nothing early.
    assert uti(engine, datetime(2027, 1, 21)).threshold_charges == 0
    bill_day(engine, FEB_1)
    # The cycle bill: the cycle's 33 calls cost 16.50, 12.50 were billed: 8 calls, 4.00.
    assert lines_of(engine, FEB_1) == [
        (f"use:{u1}:2027-02-01", date(2027, 1, 20), date(2027, 1, 21), D("8"), D("4.00"))
    ]
    assert bills(engine)[-1] == (FEB_1, D("4.00"), D("0.80"), D("4.80"))


def test_graduated_tiers_the_cycle_bills_the_price_of_the_total_less_what_was_billed(engine):
    population(engine, "50.00", GRADUATED)
    u1 = item_id(engine)
    add_usage(engine, "c1", "80", datetime(2027, 1, 10, 10))
    # 80 calls at the first tier: 80.00 >= 50.00.
    uti(engine, datetime(2027, 1, 12, 12))
    billing_daemon(engine, date(2027, 1, 12))
    add_usage(engine, "c2", "40", datetime(2027, 1, 20, 10))
    # 120 calls cost 100 x 1.00 + 20 x 0.50 = 110.00; 80.00 was billed: 30.00 < 50.00.
    assert uti(engine, datetime(2027, 1, 25)).threshold_charges == 0
    bill_day(engine, FEB_1)
    # The cycle line is 30.00, where the 40 calls priced alone (from the first tier) would
    # cost 40.00.
    assert lines_of(engine, FEB_1) == [
        (f"use:{u1}:2027-02-01", date(2027, 1, 20), date(2027, 1, 21), D("40"), D("30.00"))
    ]
    assert [bill[1] for bill in bills(engine)] == [D("80.00"), D("30.00")]  # 110.00 in all


def test_a_second_threshold_charge_prices_on_top_of_the_first_and_the_cycle_bills_nothing_more(
    engine,
):
    population(engine, "20.00", GRADUATED)
    u1 = item_id(engine)
    add_usage(engine, "c1", "80", datetime(2027, 1, 10, 10))
    uti(engine, datetime(2027, 1, 12, 12))  # 80.00
    add_usage(engine, "c2", "40", datetime(2027, 1, 20, 10))
    # 120 calls cost 110.00, 80.00 billed: 30.00 >= 20.00, a second charge for the 40 calls.
    second = uti(engine, datetime(2027, 1, 21))
    assert second.threshold_amounts == {"EUR": D("30.00")}
    billing_daemon(engine, date(2027, 1, 21))
    assert [(k, q, a) for k, _, _, _, q, a in charges(engine)] == [
        (f"thr:{u1}:2027-02-01:2027-01-12T12:00:00", D("80"), D("80.00")),
        (f"thr:{u1}:2027-02-01:2027-01-21T00:00:00", D("40"), D("30.00")),
    ]
    # Both are on the Billing daemon's bill of Jan 21 (the first was not billed yet).
    assert [line[3:] for line in lines_of(engine, date(2027, 1, 21))] == [
        (D("80"), D("80.00")),
        (D("40"), D("30.00")),
    ]
    # Everything was billed early: the 1 February cycle has no usage line and no bill.
    result = bill_day(engine, FEB_1)
    assert result.billing.bills == 0
    assert lines_of(engine, FEB_1) == []


def test_below_the_threshold_nothing_is_billed_early(engine):
    population(engine, "100.00")
    add_usage(engine, "c1", "25", datetime(2027, 1, 10, 10))
    result = uti(engine, datetime(2027, 1, 12, 12))  # 12.50 < 100.00
    assert (result.accounts, result.threshold_accounts, result.threshold_charges) == (1, 0, 0)
    assert charges(engine) == []
    bill_day(engine, FEB_1)
    assert [line[3:] for line in lines_of(engine, FEB_1)] == [(D("25"), D("12.50"))]


def test_an_account_without_a_threshold_is_not_looked_at(engine):
    population(engine, None)
    add_usage(engine, "c1", "1000", datetime(2027, 1, 10, 10))
    result = uti(engine, datetime(2027, 1, 12, 12))
    assert (result.accounts, result.threshold_charges) == (0, 0)


def test_the_sum_of_the_items_passes_the_threshold_each_item_is_charged(engine):
    """SMS 60 x 0.10 = 6.00 and CALLS 10 x 0.50 = 5.00: neither reaches 10.00 alone, together
    11.00 does; each item gets its own charge."""
    population(engine, "10.00", sms="0.10")
    add_usage(engine, "s1", "60", datetime(2027, 1, 10, 9), item="U2")
    add_usage(engine, "c1", "10", datetime(2027, 1, 10, 10))
    result = uti(engine, datetime(2027, 1, 12, 12))
    assert (result.threshold_accounts, result.threshold_charges) == (1, 2)
    by_item = {k.split(":")[1]: a for k, _, _, _, _, a in charges(engine)}
    assert by_item == {str(item_id(engine, "U1")): D("5.00"), str(item_id(engine, "U2")): D("6.00")}


def test_a_rerun_with_the_same_process_now_adds_nothing(engine):
    population(engine, "10.00")
    u1 = item_id(engine)
    add_usage(engine, "c1", "25", datetime(2027, 1, 10, 10))
    now = datetime(2027, 1, 12, 12)
    uti(engine, now)
    before = snapshot(engine)
    assert uti(engine, now).threshold_charges == 0
    assert snapshot(engine) == before
    # A record stamped before that Process Now arrives after the run: a rerun still adds nothing
    # (the run of that Process Now billed the account already); the cycle bill takes it.
    add_usage(engine, "c2", "5", datetime(2027, 1, 12, 11))
    before = snapshot(engine)
    assert uti(engine, now).threshold_charges == 0
    assert snapshot(engine) == before
    bill_day(engine, FEB_1)
    # 30 x 0.50 = 15.00, 12.50 billed early (on this bill too: it was never billed before).
    assert lines_of(engine, FEB_1) == [
        (f"thr:{u1}:2027-02-01:2027-01-12T12:00:00", date(2027, 1, 10), date(2027, 1, 11),
         D("25"), D("12.50")),
        (f"use:{u1}:2027-02-01", date(2027, 1, 12), date(2027, 1, 13), D("5"), D("2.50")),
    ]  # fmt: skip
    before = snapshot(engine)
    bill_day(engine, FEB_1)
    assert snapshot(engine) == before


def test_late_usage_of_a_cycle_billed_early_is_billed_once_as_a_delta(engine):
    """January: 80 calls billed early (80.00), 40 more on the cycle bill (30.00). 10 calls of
    28 January arrive after the 1 February bill: January's 130 calls cost 100.00 + 30 x 0.50 =
    115.00, of which 110.00 were billed, so the 1 March bill holds a delta of 5.00 for
    January."""
    population(engine, "50.00", GRADUATED)
    u1 = item_id(engine)
    add_usage(engine, "c1", "80", datetime(2027, 1, 10, 10))
    uti(engine, datetime(2027, 1, 12, 12))
    billing_daemon(engine, date(2027, 1, 12))
    add_usage(engine, "c2", "40", datetime(2027, 1, 20, 10))
    bill_day(engine, FEB_1)
    add_usage(engine, "late", "10", datetime(2027, 1, 28, 18))
    # The late record is of a closed cycle: the February run does not bill it early.
    assert uti(engine, datetime(2027, 2, 10)).threshold_charges == 0
    result = bill_day(engine, MAR_1)
    assert result.billing.late_usage_amounts == {"EUR": D("5.00")}
    assert lines_of(engine, MAR_1) == [
        (f"lat:{u1}:2027-02-01:2027-03-01", JAN_1, FEB_1, D("10"), D("5.00"))
    ]
    with unit_of_work(engine) as s:
        marks = usage_marks(s)
    assert marks == {
        "c1": (UsageStatus.COLLECTED, f"thr:{u1}:2027-02-01:2027-01-12T12:00:00"),
        "c2": (UsageStatus.COLLECTED, f"use:{u1}:2027-02-01"),
        "late": (UsageStatus.COLLECTED, f"lat:{u1}:2027-02-01:2027-03-01"),
    }
    before = snapshot(engine)
    bill_day(engine, MAR_1)
    assert snapshot(engine) == before


def test_a_cycle_that_has_ended_waits_for_its_bill(engine):
    """Process Now after midnight of the unit's next bill date, before bill day billed it: the
    ended cycle's usage is the cycle bill's, whole; the run bills nothing early."""
    population(engine, "10.00")
    add_usage(engine, "c1", "30", datetime(2027, 1, 25, 10))  # 15.00
    assert uti(engine, datetime(2027, 2, 1, 0, 30)).threshold_charges == 0
    bill_day(engine, FEB_1)
    assert [line[3:] for line in lines_of(engine, FEB_1)] == [(D("30"), D("15.00"))]
    # February's open cycle starts at midnight of 1 February: only its own usage counts.
    add_usage(engine, "c2", "10", datetime(2027, 2, 3, 10))  # 5.00 < 10.00
    assert uti(engine, datetime(2027, 2, 4)).threshold_charges == 0


def test_a_price_change_after_the_early_bill_reprices_the_cycle(engine):
    """25 calls billed early at 0.50 (12.50), then the item's price becomes 0.40 and no call
    follows: the cycle's 25 calls cost 10.00, so the cycle bill credits 2.50 on a line of
    quantity 0 (the price of the total less what was billed, as without the early bill)."""
    population(engine, "10.00")
    u1 = item_id(engine)
    add_usage(engine, "c1", "25", datetime(2027, 1, 10, 10))
    uti(engine, datetime(2027, 1, 12, 12))
    billing_daemon(engine, date(2027, 1, 12))
    with unit_of_work(engine) as s:
        s.get(ContractItem, u1).price_override = D("0.40")
    bill_day(engine, FEB_1)
    assert lines_of(engine, FEB_1) == [(f"use:{u1}:2027-02-01", JAN_1, FEB_1, D("0"), D("-2.50"))]


@pytest.mark.parametrize(
    ("model", "billed", "quantity", "amount"),
    [
        # per unit 0.50: 33 cost 16.50, 25 billed 12.50
        ("per_unit", ("25", "12.50"), "8", "4.00"),
        # graduated 100 at 1.00 then 0.50: 120 cost 110.00, 80 billed 80.00
        ("graduated", ("80", "80.00"), "40", "30.00"),
        # volume, 100 at 1.00, above at 0.50: 120 x 0.50 = 60.00 less 80.00: a credit
        ("volume", ("80", "80.00"), "40", "-20.00"),
    ],
)
def test_the_rest_of_a_cycle_is_the_price_of_its_total_less_what_was_billed(
    model, billed, quantity, amount
):
    plan = _plan(model)
    rated = th.rest_of_cycle(plan, D(billed[0]), D(billed[1]), D(quantity))
    assert (rated.quantity, rated.amount) == (D(quantity), D(amount))


def _plan(model: str) -> PricePlan:
    if model == "per_unit":
        return PricePlan(code="T", model=model, currency="EUR", unit_price=D("0.50"))
    tiers = (Tier(D("100"), D("1.00")), Tier(None, D("0.50")))
    return PricePlan(code="T", model=model, currency="EUR", unit_price=None, tiers=tiers)


def test_the_threshold_counts_the_sum_and_charges_the_positive_items():
    volume = th.ItemUsage(1, _plan("volume"), D("80"), D("80.00"), D("40"))  # -20.00
    calls = th.ItemUsage(2, _plan("per_unit"), D("0"), D("0"), D("70"))  # 35.00
    assert th.charges_over([volume, calls], D("15.00")) == [(calls, calls.unbilled())]
    assert th.charges_over([volume, calls], D("15.01")) == []  # 15.00 in all
    assert th.charges_over([], D("0")) == []


def test_the_open_cycle_holds_process_now():
    assert th.in_open_cycle(datetime(2027, 1, 12), JAN_1, FEB_1)
    assert th.in_open_cycle(datetime(2027, 1, 1), JAN_1, FEB_1)
    assert th.in_open_cycle(datetime(2026, 12, 5), None, FEB_1)
    assert not th.in_open_cycle(datetime(2027, 2, 1), JAN_1, FEB_1)
    assert not th.in_open_cycle(datetime(2026, 12, 31, 23), JAN_1, FEB_1)


def test_an_account_whose_usage_cannot_be_priced_is_recorded_and_the_others_go_on(engine):
    """A's usage item is on a plan in USD, A bills in EUR: A fails with the reason; B (created
    on 1 January, so its open cycle is its first) is billed early."""
    population(engine, "10.00")
    with unit_of_work(engine) as s:
        usd = b.plan(s, "CALLS-USD", "per_unit", "USD", price="0.50")
        s.scalars(select(ContractItem).where(ContractItem.ref == "U1")).one().price_plan_id = usd.id
        other = b.account(s, "B", created=JAN_1)
        other.usage_threshold = D("10.00")
        cb = b.contract(s, other, "CB", JAN_1)
        b.item(s, cb, "B1", b.plan(s, "CALLS-B", "per_unit", price="0.50"), "usage", JAN_1)
    add_usage(engine, "a1", "30", datetime(2027, 1, 10, 10))
    add_usage(engine, "b1", "30", datetime(2027, 1, 10, 10), item="B1")
    result = run_uti_schedule_generator(engine, datetime(2027, 1, 12, 12), "uti-bad")
    with unit_of_work(engine) as s:
        a_id = s.scalar(select(Account.id).where(Account.ref == "A"))
    assert result.failed == {
        a_id: f"item {item_id(engine)}: price plan CALLS-USD is in USD, the account bills in EUR"
    }
    assert (result.threshold_accounts, result.threshold_charges) == (1, 1)
    assert [k.split(":")[1] for k, *_ in charges(engine)] == [str(item_id(engine, "B1"))]
