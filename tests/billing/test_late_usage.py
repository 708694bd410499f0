"""Late usage (issue #19): usage that arrives for a cycle already billed.

Account A (FR, EUR, billing day 1) has a usage item U1 on CALLS, graduated: the first 100
calls at 1.00, the next at 0.50. 80 calls of November are billed on the 1 December bill
(80.00). 40 more calls of 25 November arrive after that bill, and 10 calls of 15 December.

The 1 January bill holds December's 10 calls (10.00) and, as a delta line naming November
[Nov 1, Dec 1) and the December invoice, the late 40 calls priced as November's total less
what November was billed: 120 calls cost 100 x 1.00 + 20 x 0.50 = 110.00, 80.00 was billed,
so the delta is 30.00 (priced alone they would cost 40.00, priced with December's 10 calls as
one charge of 50 calls 50.00). Every bill day runs through ``run_bill_day`` with the
post-billing checks on.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.cli.status_cmd import count_states
from billing.domain import late_usage as late
from billing.domain.periods import Period
from billing.domain.pricing import PricePlan, Tier
from billing.ingest.importer import import_file
from billing.jobs.bill_day import run_bill_day
from billing.jobs.database import engine_of
from billing.jobs.uti_schedule_generator import run_uti_schedule_generator
from billing.ops.catalog import load_plans
from billing.ops.views import issues
from billing.store.db import unit_of_work
from billing.store.models import (
    Bill,
    Charge,
    ChargeStatus,
    Contract,
    ContractItem,
    UsageRecord,
    UsageStatus,
)
from billing.store.models import PricePlan as PricePlanRow
from billing.store.usage import usage_marks
from tests import builders as b
from tests.billing.test_changes import snapshot
from tests.expectations.direct import run_rules_directly

D = Decimal
DEC_1, JAN_1, FEB_1 = date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1)


def checks(database, as_of, _output):
    return run_rules_directly(engine_of(database), as_of)


def bill_day(engine, as_of: date):
    result = run_bill_day(engine, as_of, f"run-{as_of}", checks=checks)
    assert result.problem is None, result.problem
    return result


def late_population(engine) -> None:
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        calls = b.plan(s, "CALLS", "graduated", tiers=[("100", "1.00"), (None, "0.50")])
        a = b.account(s, "A", created=date(2026, 10, 1))
        ca = b.contract(s, a, "CA", date(2026, 10, 1))
        u1 = b.item(s, ca, "U1", calls, "usage", date(2026, 10, 1))
        b.usage(s, u1, "nov-1", "80", datetime(2026, 11, 10, 9))


def add_usage(engine, external_id: str, quantity: str, at: datetime, item: str = "U1") -> None:
    with unit_of_work(engine) as s:
        it = s.scalars(select(ContractItem).where(ContractItem.ref == item)).one()
        b.usage(s, it, external_id, quantity, at)


def lines_of(engine, bill_date: date):
    """The bill's lines as (description, period start, period end, quantity, net)."""
    with unit_of_work(engine) as s:
        return [
            tuple(row)
            for row in s.execute(
                select(
                    Charge.description,
                    Charge.period_start,
                    Charge.period_end,
                    Charge.quantity,
                    Charge.amount,
                )
                .join(Bill, Bill.id == Charge.bill_id)
                .where(Bill.bill_date == bill_date)
                .order_by(Charge.line_no)
            )
        ]


def test_late_usage_is_billed_on_the_next_bill_as_a_delta_of_its_cycle(engine):
    late_population(engine)
    bill_day(engine, DEC_1)
    assert lines_of(engine, DEC_1) == [
        ("Product CALLS", date(2026, 11, 10), date(2026, 11, 11), D("80"), D("80.00"))
    ]
    add_usage(engine, "nov-late", "40", datetime(2026, 11, 25, 18))
    add_usage(engine, "dec-1", "10", datetime(2026, 12, 15, 12))
    bill_day(engine, JAN_1)
    with unit_of_work(engine) as s:
        dec_no = s.scalar(select(Bill.bill_no).where(Bill.bill_date == DEC_1))
    assert lines_of(engine, JAN_1) == [
        (
            f"Product CALLS, corrects invoice {dec_no}",
            date(2026, 11, 1),
            date(2026, 12, 1),
            D("40"),
            D("30.00"),
        ),
        ("Product CALLS", date(2026, 12, 15), date(2026, 12, 16), D("10"), D("10.00")),
    ]


def test_the_delta_is_billed_once_and_counted(engine):
    late_population(engine)
    bill_day(engine, DEC_1)
    add_usage(engine, "nov-late", "40", datetime(2026, 11, 25, 18))
    result = bill_day(engine, JAN_1)
    assert (result.billing.late_usage_billed, result.billing.late_usage_held) == (1, 0)
    assert result.billing.late_usage_amounts == {"EUR": D("30.00")}
    with unit_of_work(engine) as s:
        delta = s.scalars(select(Charge).where(Charge.charge_key.like("lat:%"))).one()
        original = s.scalars(select(Charge).where(Charge.charge_key.like("use:%"))).one()
        record = usage_marks(s)["nov-late"]
    assert delta.charge_key == f"lat:{delta.contract_item_id}:2026-12-01:2027-01-01"
    assert (delta.corrects_charge_id, delta.status) == (original.id, ChargeStatus.OPEN)
    assert record == (UsageStatus.COLLECTED, delta.charge_key)

    before = snapshot(engine)
    rerun = bill_day(engine, JAN_1)
    assert (rerun.billing.late_usage_billed, rerun.billing.bills) == (0, 0)
    assert snapshot(engine) == before


def test_later_late_usage_of_the_same_cycle_is_priced_on_top_of_the_earlier_delta(engine):
    """10 more November calls arrive after the January bill: November now has 130 calls,
    100.00 + 30 x 0.50 = 115.00, of which 80.00 + 30.00 were billed: the February delta is
    5.00 (10 calls at the second tier), naming the December invoice again."""
    late_population(engine)
    bill_day(engine, DEC_1)
    add_usage(engine, "nov-late", "40", datetime(2026, 11, 25, 18))
    bill_day(engine, JAN_1)
    add_usage(engine, "nov-later", "10", datetime(2026, 11, 30, 23, 59))
    bill_day(engine, FEB_1)
    with unit_of_work(engine) as s:
        dec_no = s.scalar(select(Bill.bill_no).where(Bill.bill_date == DEC_1))
    assert lines_of(engine, FEB_1) == [
        (
            f"Product CALLS, corrects invoice {dec_no}",
            date(2026, 11, 1),
            date(2026, 12, 1),
            D("10"),
            D("5.00"),
        )
    ]


def test_late_usage_beyond_the_window_is_held_with_its_reason_and_listed(engine):
    """CALLS-30 bills late usage up to 30 days: a call of 5 November reaching the 1 January
    bill is 57 days old, so it is held (never billed, never dropped); one of 10 December is
    the cycle's own usage and is billed."""
    late_population(engine)
    with unit_of_work(engine) as s:
        short = b.plan(s, "CALLS-30", "per_unit", price="0.10")
        short.late_usage_days = 30
        contract = s.scalars(select(Contract).where(Contract.ref == "CA")).one()
        b.item(s, contract, "U2", short, "usage", date(2026, 10, 1))
    bill_day(engine, DEC_1)
    add_usage(engine, "u2-nov", "7", datetime(2026, 11, 5, 10), item="U2")
    add_usage(engine, "u2-dec", "3", datetime(2026, 12, 10, 10), item="U2")
    result = bill_day(engine, JAN_1)
    assert (result.billing.late_usage_billed, result.billing.late_usage_held) == (0, 1)
    with unit_of_work(engine) as s:
        held = s.scalars(select(UsageRecord).where(UsageRecord.external_id == "u2-nov")).one()
        listed = [i for i in issues(s) if i.kind == "late usage held"]
    reason = (
        "late usage of 2026-11-05 is 57 days old at the bill of 2027-01-01; price plan "
        "CALLS-30 bills late usage up to 30 days (late_usage_days)"
    )
    assert (held.status, held.charge_key, held.held_on) == (UsageStatus.HELD, None, JAN_1)
    assert held.hold_reason == reason
    assert [(i.account_ref, i.on, i.where, i.reason) for i in listed] == [
        ("A", JAN_1, "usage u2-nov on item U2", reason)
    ]
    assert [line[0] for line in lines_of(engine, JAN_1)] == ["Product CALLS-30"]
    with engine.connect() as conn:
        assert count_states(conn)["Usage"] == {"pending": 0, "collected": 2, "held": 1}
    before = snapshot(engine)
    bill_day(engine, JAN_1)
    assert snapshot(engine) == before


def test_the_window_counts_days_to_the_bill_that_takes_it():
    at = datetime(2026, 11, 2, 23, 59)
    assert late.age_days(at, JAN_1) == 60
    assert late.within_window(at, JAN_1, 60) and not late.within_window(at, JAN_1, 59)
    assert not late.within_window(datetime(2026, 12, 31), JAN_1, 0)
    assert late.is_late(datetime(2026, 11, 30, 23, 59), DEC_1)
    assert not late.is_late(datetime(2026, 12, 1, 0, 0), DEC_1)
    assert not late.is_late(datetime(2020, 1, 1), None)


def test_a_late_record_belongs_to_the_cycle_of_the_unit_grid():
    assert late.original_cycle(date(2026, 11, 25), DEC_1, 1, "monthly") == Period(
        date(2026, 11, 1), DEC_1
    )
    assert late.original_cycle(date(2026, 9, 30), DEC_1, 1, "monthly") == Period(
        date(2026, 9, 1), date(2026, 10, 1)
    )
    assert late.original_cycle(date(2026, 2, 28), date(2026, 4, 30), 31, "monthly") == Period(
        date(2026, 2, 28), date(2026, 3, 31)
    )
    assert late.original_cycle(date(2026, 5, 2), date(2026, 10, 1), 1, "quarterly") == Period(
        date(2026, 4, 1), date(2026, 7, 1)
    )


@pytest.mark.parametrize(
    ("model", "billed", "late_quantity", "amount"),
    [
        # graduated 100 at 1.00 then 0.50: 120 cost 110.00, 80 were billed 80.00
        ("graduated", ("80", "80.00"), "40", "30.00"),
        # volume, 100 at 1.00, above at 0.50: 120 x 0.50 = 60.00 less 80.00 billed: a credit
        ("volume", ("80", "80.00"), "40", "-20.00"),
        # nothing billed for the cycle yet: the late quantity priced alone
        ("graduated", ("0", "0"), "40", "40.00"),
    ],
)
def test_the_delta_prices_the_cycle_total_less_what_was_billed(
    model, billed, late_quantity, amount
):
    plan = PricePlan(
        code="T",
        model=model,
        currency="EUR",
        unit_price=None,
        tiers=(Tier(D("100"), D("1.00")), Tier(None, D("0.50"))),
    )
    rated = late.delta(plan, D(billed[0]), D(billed[1]), D(late_quantity))
    assert (rated.quantity, rated.amount) == (D(late_quantity), D(amount))
    assert rated.quantity * rated.unit_price == rated.amount


def test_the_catalogue_imports_the_window_and_defaults_it(engine, tmp_path):
    document = {
        "tax_categories": [{"code": "standard", "name": "Standard"}],
        "products": [
            {
                "code": "P-CALLS",
                "name": "Calls",
                "tax_category": "standard",
                "price_plans": [
                    {"code": "C-DEF", "currency": "EUR", "model": "per_unit", "unit_price": "0.10"},
                    {
                        "code": "C-30",
                        "currency": "EUR",
                        "model": "per_unit",
                        "unit_price": "0.10",
                        "late_usage_days": 30,
                    },
                ],
            }
        ],
    }
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(document))
    with unit_of_work(engine) as s:
        import_file(s, path)
    with unit_of_work(engine) as s:
        windows = dict(s.execute(select(PricePlanRow.code, PricePlanRow.late_usage_days)).all())
        plans = {info.plan.code: info.late_usage_days for info in load_plans(s).values()}
    assert windows == plans == {"C-DEF": late.DEFAULT_LATE_USAGE_DAYS, "C-30": 30}
    with unit_of_work(engine) as s:  # the same file again: nothing differs, nothing added
        report = import_file(s, path)
    assert report.of("price_plans").unchanged == 2


def test_the_uti_daemon_holds_records_beyond_the_window(engine):
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        sms = b.plan(s, "SMS", "per_unit", price="0.50")
        a = b.account(s, "A", created=date(2026, 10, 1))
        ca = b.contract(s, a, "CA", date(2026, 10, 1))
        it = b.item(s, ca, "T1", sms, "uti", date(2026, 10, 1))
        b.usage(s, it, "old", "4", datetime(2026, 10, 2, 8))
        b.usage(s, it, "recent", "6", datetime(2027, 1, 10, 8))
    result = run_uti_schedule_generator(engine, datetime(2027, 1, 12, 12, 0), "uti")
    assert (result.collected, result.held) == (1, 1)
    with unit_of_work(engine) as s:
        states = {k: mark[0] for k, mark in usage_marks(s).items()}
    assert states == {"old": UsageStatus.HELD, "recent": UsageStatus.COLLECTED}
