"""Trials (issue #21): no fee before an item's trial end, and moving that end after the fact.

PRO costs 31.00 a month so that a day of January (31 days) costs 1.00; the bill unit bills
monthly on the 1st. February 2027 has 28 days.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from billing.cli import app
from billing.domain.adjustments import change_adjustments
from billing.domain.pricing import PricePlan
from billing.domain.schedule import (
    ChargeSpec,
    CycleGrid,
    ItemTerms,
    cancellation_credit,
    scheduled_charges,
)
from billing.domain.trials import trial_corrections
from billing.jobs.bill_day import run_bill_day
from billing.ops.trials import TrialError, extend_trial
from billing.store.db import unit_of_work
from billing.store.models import Base, Bill, Charge, ChargeStatus, ContractItem, ItemStatus
from tests import builders as b
from tests.expectations.direct import run_rules_directly

D = Decimal
JAN_1, JAN_11, JAN_21, JAN_26 = (date(2027, 1, d) for d in (1, 11, 21, 26))
FEB_1, FEB_15, MAR_1, MAR_10, APR_1 = (
    date(2027, 2, 1), date(2027, 2, 15), date(2027, 3, 1), date(2027, 3, 10), date(2027, 4, 1),
)  # fmt: skip
GRID = CycleGrid(FEB_1, 1, "monthly")


def plan(proration: str = "by_day", timing: str = "advance") -> PricePlan:
    return PricePlan(
        code="PRO", model="recurring", currency="EUR", unit_price=D("31.00"), timing=timing,
        proration=proration,
    )  # fmt: skip


def item(trial_end: date | None, proration: str = "by_day", timing: str = "advance") -> ItemTerms:
    return ItemTerms(
        item_id=7, item_type="recurring", description="Pro", plan=plan(proration, timing),
        tax_category="standard", quantity=D(1), price_override=None, start=JAN_1, end=None,
        trial_end=trial_end,
    )  # fmt: skip


def fees(terms: ItemTerms, through: date = FEB_1) -> list[tuple]:
    return [
        (s.charge_key, s.period_start, s.period_end, s.bill_on, s.amount)
        for s in scheduled_charges(terms, GRID, through, None)
    ]


def charged(start: date, end: date, amount: str) -> ChargeSpec:
    return ChargeSpec(
        f"rec:7:{start.replace(day=1)}", "recurring", 7, "Pro", start, end, start,
        D(1), D(amount), D(amount), "standard",
    )  # fmt: skip


# -- the schedule, by hand ------------------------------------------------------------------


def test_a_cycle_entirely_in_trial_has_no_fee_line():
    # Trial until Feb 1: January has no line at all; February is charged whole on Feb 1.
    assert fees(item(FEB_1)) == [("rec:7:2027-02-01", FEB_1, MAR_1, FEB_1, D("31.00"))]


def test_a_trial_ending_mid_cycle_charges_the_rest_by_day():
    # Trial until Jan 11: January is charged from Jan 11, 21 of 31 days: 21.00, billed from
    # Jan 11 as an item starting that day would be.
    assert fees(item(JAN_11))[0] == ("rec:7:2027-01-01", JAN_11, FEB_1, JAN_11, D("21.00"))


def test_a_trial_ending_mid_cycle_under_full_and_none_proration():
    # full: any paid day is the whole cycle, 31.00; none: only a wholly paid cycle is charged,
    # 0.00 (the zero line an item starting Jan 11 gets too).
    assert fees(item(JAN_11, "full"))[0][1:] == (JAN_11, FEB_1, JAN_11, D("31.00"))
    assert fees(item(JAN_11, "none"))[0][1:] == (JAN_11, FEB_1, JAN_11, D("0.00"))


def test_in_arrears_the_rest_is_billed_at_the_cycle_end():
    # Arrears: January from Jan 11 (21.00) is billed on Feb 1; a trial until Feb 1 leaves it out.
    assert fees(item(JAN_11, timing="arrears")) == [
        ("rec:7:2027-01-01", JAN_11, FEB_1, FEB_1, D("21.00"))
    ]
    assert fees(item(FEB_1, timing="arrears")) == []


def test_a_trial_ending_on_or_before_the_start_changes_nothing():
    assert fees(item(JAN_1)) == fees(item(None)) == fees(item(date(2026, 12, 1)))


# -- moving the trial end, by hand ----------------------------------------------------------


def test_extending_credits_the_days_that_become_trial():
    # January was charged from Jan 11 (21.00, charge 40). Trial until Jan 21: the fee becomes
    # 11 days, 11.00; the correction is -10.00 for [Jan 11, Jan 21), naming charge 40.
    (spec,) = trial_corrections(item(JAN_11), JAN_21, GRID, None, {JAN_1: 40})
    assert (spec.charge_key, spec.kind, spec.period_start, spec.period_end, spec.bill_on) == (
        "trl:7:2027-01-01:1", "adjustment", JAN_11, JAN_21, JAN_11,
    )  # fmt: skip
    assert (spec.amount, spec.corrects_charge_id) == (D("-10.00"), 40)
    assert spec.description == "Pro (trial until 2027-01-21)"


def test_extending_across_cycles_corrects_each_charged_fee():
    # From Jan 11 to Feb 15, both fees charged: January 0 - 21.00 = -21.00; February from
    # Feb 15 is 14 of 28 days, 15.50, less 31.00 charged: -15.50. The n-th correction of a
    # cycle is keyed n: February had one already.
    specs = trial_corrections(item(JAN_11), FEB_15, GRID, FEB_1, {JAN_1: 40, FEB_1: 41}, {FEB_1: 1})
    assert [(s.charge_key, s.period_start, s.period_end, s.amount) for s in specs] == [
        ("trl:7:2027-01-01:1", JAN_11, FEB_1, D("-21.00")),
        ("trl:7:2027-02-01:2", FEB_1, FEB_15, D("-15.50")),
    ]


def test_shortening_charges_a_passed_cycle_and_leaves_the_rest_to_the_schedule():
    # Trial until Mar 1, shortened to Jan 21 after the Feb 1 bill (nothing was charged):
    # January has passed (it ends on the last bill date), so it is charged now: 11.00 for
    # [Jan 21, Feb 1), correcting no charge. February is still to be scheduled: nothing now.
    (spec,) = trial_corrections(item(MAR_1), JAN_21, GRID, FEB_1, {})
    assert (spec.charge_key, spec.period_start, spec.period_end, spec.amount) == (
        "trl:7:2027-01-01:1", JAN_21, FEB_1, D("11.00"),
    )  # fmt: skip
    assert spec.corrects_charge_id is None
    # Never billed: nothing at all; the same end: nothing.
    assert trial_corrections(item(MAR_1), JAN_21, GRID, None, {}) == []
    assert trial_corrections(item(JAN_21), JAN_21, GRID, FEB_1, {JAN_1: 40}) == []


def test_full_proration_moves_nothing_while_a_day_stays_paid():
    # full: January is 31.00 from Jan 11 or from Jan 21 alike; trial until Feb 1 credits it all.
    assert trial_corrections(item(JAN_11, "full"), JAN_21, GRID, None, {JAN_1: 40}) == []
    (spec,) = trial_corrections(item(JAN_11, "full"), FEB_1, GRID, None, {JAN_1: 40})
    assert spec.amount == D("-31.00")


def test_a_cancellation_after_an_extended_trial_credits_only_what_the_fee_still_holds():
    # January charged 31.00; the trial extended to Jan 26 credited -25.00 (6.00 left). The item
    # is then cancelled on Jan 21, inside the trial: the credit is the 6.00 left, not 10.00.
    extended = item(JAN_26)
    credit = cancellation_credit(extended, GRID, charged(JAN_1, FEB_1, "31.00"), JAN_21, 40)
    assert credit is not None and credit.amount == D("-6.00")
    # Without a trial the same cancellation credits 11 days: -11.00.
    plain = cancellation_credit(item(None), GRID, charged(JAN_1, FEB_1, "31.00"), JAN_21, 40)
    assert plain is not None and plain.amount == D("-11.00")


def test_a_quantity_change_after_an_extended_trial_reprices_only_the_paid_days():
    # January charged 31.00, trial extended to Jan 21 (11 paid days left). 2 units from Jan 15:
    # the paid rest [Jan 21, Feb 1) at 2 units (22.00) less at 1 unit (11.00): +11.00.
    old = item(JAN_21)
    new = dataclasses.replace(old, quantity=D(2))
    (spec,) = change_adjustments(
        old, new, GRID, [charged(JAN_1, FEB_1, "31.00")], date(2027, 1, 15), 3, None
    )
    assert (spec.period_start, spec.period_end, spec.amount) == (JAN_21, FEB_1, D("11.00"))


# -- on both databases ----------------------------------------------------------------------


def snapshot(engine):
    with unit_of_work(engine) as s:
        return {
            table.name: [
                tuple(row)
                for row in s.execute(table.select().order_by(*table.primary_key.columns)).all()
            ]
            for table in Base.metadata.sorted_tables
        }


def lines(engine, bill_date: date, account: int) -> list[tuple]:
    with unit_of_work(engine) as s:
        return [
            (c.charge_key, c.period_start, c.period_end, c.amount, c.description)
            for c in s.scalars(
                select(Charge)
                .join(Bill, Bill.id == Charge.bill_id)
                .where(Bill.bill_date == bill_date, Bill.account_id == account)
                .order_by(Charge.line_no)
            )
        ]


def net(engine, bill_date: date, account: int) -> tuple:
    with unit_of_work(engine) as s:
        return s.execute(
            select(Bill.bill_no, Bill.net).where(
                Bill.bill_date == bill_date, Bill.account_id == account
            )
        ).one()


@pytest.fixture
def trials(engine):
    """Account T (FR, EUR, billing day 1) from Jan 1, 2027, items from Jan 1: T1 on PRO (30.00
    a month in advance, by day) in trial until Jan 17; T2 on PRO-FULL (30.00, full proration)
    until Jan 17; T3 on PRO until Mar 1; T4 a usage item (SMS, 0.10), 100 on Jan 5."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        full = b.plan(s, "PRO-FULL", "recurring", price="30.00", timing="advance", proration="full")
        sms = b.plan(s, "SMS", "per_unit", price="0.10")
        t = b.account(s, "T", created=JAN_1)
        ct = b.contract(s, t, "CT", JAN_1)
        for ref, row, trial_end in (("T1", pro, date(2027, 1, 17)), ("T2", full, date(2027, 1, 17)),
                                    ("T3", pro, MAR_1)):  # fmt: skip
            b.item(s, ct, ref, row, "recurring", JAN_1).trial_end_date = trial_end
        t4 = b.item(s, ct, "T4", sms, "usage", JAN_1)
        b.usage(s, t4, "U1", "100", datetime(2027, 1, 5, 12))
    run_bill_day(engine, FEB_1, "feb")
    return engine


def test_fees_start_at_the_trial_end_on_the_bill(trials):
    engine = trials
    # T1: [Jan 17, Feb 1) is 15 of 31 days, 30.00 x 15/31 = 14.516 = 14.52, then February
    # 30.00. T2 (full): any paid day is the cycle, 30.00 + 30.00. T3: January and February are
    # trial, no line. T4: usage during the trial, 100 x 0.10 = 10.00.
    # Net 14.52 + 30.00 + 30.00 + 30.00 + 10.00 = 114.52.
    assert lines(engine, FEB_1, 1) == [
        ("use:4:2027-02-01", date(2027, 1, 5), date(2027, 1, 6), D("10.00"), "Product SMS"),
        ("rec:1:2027-01-01", date(2027, 1, 17), FEB_1, D("14.52"), "Product PRO"),
        ("rec:2:2027-01-01", date(2027, 1, 17), FEB_1, D("30.00"), "Product PRO-FULL"),
        ("rec:1:2027-02-01", FEB_1, MAR_1, D("30.00"), "Product PRO"),
        ("rec:2:2027-02-01", FEB_1, MAR_1, D("30.00"), "Product PRO-FULL"),
    ]
    assert net(engine, FEB_1, 1)[1] == D("114.52")
    assert run_rules_directly(engine, FEB_1).success
    # March: T3's trial is over, 30.00 from Mar 1 for each of T1, T2, T3.
    run_bill_day(engine, MAR_1, "mar")
    assert net(engine, MAR_1, 1)[1] == D("90.00")
    before = snapshot(engine)
    run_bill_day(engine, MAR_1, "mar-again")
    assert snapshot(engine)["charges"] == before["charges"]


def test_extending_after_the_fee_was_billed_credits_it_on_the_next_bill(trials):
    engine = trials
    invoice, _ = net(engine, FEB_1, 1)
    with unit_of_work(engine) as s:
        result = extend_trial(s, "T1", FEB_15, date(2027, 2, 5))
    # January was charged from Jan 17 (14.52): all of it becomes trial, -14.52. February was
    # charged whole (30.00): from Feb 15 it is 14 of 28 days, 15.00, so -15.00 for
    # [Feb 1, Feb 15). Both correct fees of the Feb 1 invoice: billed on the next bill, Mar 1.
    assert [(c.charge_key, c.amount, c.bill_on) for c in result.corrections] == [
        ("trl:1:2027-01-01:1", D("-14.52"), MAR_1),
        ("trl:1:2027-02-01:1", D("-15.00"), MAR_1),
    ]
    assert (result.old_end, result.new_end, result.changed) == (date(2027, 1, 17), FEB_15, True)
    with unit_of_work(engine) as s:
        again = extend_trial(s, "T1", FEB_15, date(2027, 2, 6))
    assert (again.changed, again.corrections) == (False, [])

    run_bill_day(engine, MAR_1, "mar")
    # Mar 1: March for T1, T2, T3 (90.00), less 14.52 and 15.00: 60.48.
    mar = lines(engine, MAR_1, 1)
    assert (
        "trl:1:2027-01-01:1", date(2027, 1, 17), FEB_1, D("-14.52"),
        f"Product PRO (trial until 2027-02-15), corrects invoice {invoice}",
    ) in mar  # fmt: skip
    assert (
        "trl:1:2027-02-01:1", FEB_1, FEB_15, D("-15.00"),
        f"Product PRO (trial until 2027-02-15), corrects invoice {invoice}",
    ) in mar  # fmt: skip
    assert net(engine, MAR_1, 1)[1] == D("60.48")
    assert run_rules_directly(engine, MAR_1).success


def test_extending_twice_and_shortening(trials):
    engine = trials
    with unit_of_work(engine) as s:
        extend_trial(s, "T1", FEB_15, date(2027, 2, 5))
        # Again to Mar 10: February's fee, 15.00 after the first move, becomes 0: -15.00 more,
        # the second correction of February. March is not charged yet: the schedule charges
        # it from Mar 10, 22 of 31 days, 30.00 x 22/31 = 21.29.
        second = extend_trial(s, "T1", MAR_10, date(2027, 2, 6))
        # T3 (trial until Mar 1, nothing charged) shortened to Jan 21: January has passed,
        # charged now: 30.00 x 11/31 = 10.645 = 10.65; February is left to the schedule.
        shortened = extend_trial(s, "T3", JAN_21, date(2027, 2, 6))
    assert [(c.charge_key, c.amount, c.period_start, c.period_end) for c in second.corrections] == [
        ("trl:1:2027-02-01:2", D("-15.00"), FEB_15, MAR_1)
    ]
    assert [(c.charge_key, c.amount, c.bill_on) for c in shortened.corrections] == [
        ("trl:3:2027-01-01:1", D("10.65"), MAR_1)
    ]
    run_bill_day(engine, MAR_1, "mar")
    keys = {line[0]: line[1:4] for line in lines(engine, MAR_1, 1)}
    assert keys["rec:3:2027-02-01"] == (FEB_1, MAR_1, D("30.00"))
    assert keys["rec:3:2027-03-01"] == (MAR_1, APR_1, D("30.00"))
    assert "rec:1:2027-03-01" not in keys  # in advance from Mar 10: on the first bill after it
    # T1: -14.52 - 15.00 - 15.00 = -44.52; T2: 30.00; T3: 10.65 + 30.00 + 30.00 = 70.65.
    # Net 56.13.
    assert net(engine, MAR_1, 1)[1] == D("56.13")
    assert run_rules_directly(engine, MAR_1).success
    # T1 was charged 14.52 + 30.00 - 14.52 - 15.00 - 15.00 = 0.00 for its trial up to Mar 10.
    assert charged_to(engine, 1) == D("0.00")
    run_bill_day(engine, APR_1, "apr")
    keys = {line[0]: line[1:4] for line in lines(engine, APR_1, 1)}
    assert keys["rec:1:2027-03-01"] == (MAR_10, APR_1, D("21.29"))
    assert charged_to(engine, 1) == D("51.29")  # with April in advance, 30.00
    assert run_rules_directly(engine, APR_1).success


def charged_to(engine, item_id: int) -> Decimal:
    with unit_of_work(engine) as s:
        amounts = s.scalars(
            select(Charge.amount).where(
                Charge.contract_item_id == item_id, Charge.status != ChargeStatus.CANCELLED
            )
        )
        return sum(amounts, D("0.00"))


@pytest.mark.parametrize(
    ("ref", "until", "message"),
    [
        ("NOPE", FEB_15, "item: unknown contract item 'NOPE'"),
        ("T4", FEB_15, "item: T4 is a usage item; only a recurring item's fee has a trial"),
        ("T1", date(2026, 12, 31), "until: 2026-12-31 is before item T1 starts (2027-01-01)"),
        ("T2", date(2027, 6, 1), "until: 2027-06-01 is after item T2 ends (2027-04-01)"),
        ("T3", FEB_15, "item: T3 is ended"),
    ],
)
def test_refusals_name_the_item_and_the_field(trials, ref, until, message):
    engine = trials
    with unit_of_work(engine) as s:
        s.execute(update(ContractItem).where(ContractItem.ref == "T2").values(end_date=APR_1))
        s.execute(
            update(ContractItem).where(ContractItem.ref == "T3").values(status=ItemStatus.ENDED)
        )
    before = snapshot(engine)
    with pytest.raises(TrialError) as error, unit_of_work(engine) as s:
        extend_trial(s, ref, until, date(2027, 2, 5))
    assert str(error.value) == message
    assert snapshot(engine) == before


def test_the_cli_extends_and_reports(trials, db_url):
    runner = CliRunner()
    args = ["trial", "extend", "T1", "--until", "2027-02-15", "--as-of", "2027-02-05"]
    result = runner.invoke(app, [*args, "--database", db_url])
    assert result.exit_code == 0, result.output
    assert "T1: trial until 2027-02-15 (was 2027-01-17)" in result.output
    assert "trl:1:2027-02-01:1" in result.output and "-15.00 EUR" in result.output
    again = runner.invoke(app, [*args, "--database", db_url])
    assert again.exit_code == 0 and "already ends on 2027-02-15: nothing to do" in again.output
    bad = runner.invoke(app, ["trial", "extend", "T1", "--until", "2026-01-01", "--as-of",
                              "2027-02-05", "--database", db_url])  # fmt: skip
    assert bad.exit_code == 1
    assert "until: 2026-01-01 is before item T1 starts" in bad.output
