"""Minimum commitments (issue #21): the shortfall rules by hand, then cycle bills on both
databases.

The pure part bills the cycle of January 2027, ``[Jan 1, Feb 1)``: 31 days, a unit billing
monthly on the 1st. Contract 10 holds item 1 (a fee of 30.00 a month in advance) and item 2
(usage); item 3 is on another contract (11) of the same account.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

import pytest
from sqlalchemy import select

from billing.domain.commercial import CommitmentTerm, Spent, TermItem, UnitTerms, term_specs
from billing.domain.commitments import shortfall_specs
from billing.domain.periods import Period
from billing.domain.schedule import ChargeSpec, CycleGrid
from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import Base, Bill, Charge
from billing.store.models_terms import Commitment
from tests import builders as b
from tests.expectations.direct import run_rules_directly

D = Decimal
JAN_1, JAN_5, JAN_11, JAN_16, JAN_21 = (date(2027, 1, d) for d in (1, 5, 11, 16, 21))
FEB_1, MAR_1 = date(2027, 2, 1), date(2027, 3, 1)
JANUARY = Period(JAN_1, FEB_1)
GRID = CycleGrid(FEB_1, 1, "monthly")
ITEMS = {
    1: TermItem(1, "I1", 100, 10, JAN_1, None),
    2: TermItem(2, "I2", 200, 10, JAN_1, None),
    3: TermItem(3, "I3", 100, 11, JAN_1, None),
}


class Line(NamedTuple):
    """A charge on the bill as the terms read it (``billing.domain.commercial.TermTarget``)."""

    id: int
    charge_key: str
    kind: str
    contract_item_id: int | None
    description: str
    period_start: date
    period_end: date
    amount: Decimal
    tax_category: str = "standard"


def fee(item: int, start: date, end: date, amount: str, kind: str = "recurring") -> Line:
    return Line(
        item * 100 + start.day, f"rec:{item}:{start}", kind, item, "Pro", start, end, D(amount)
    )


def usage(item: int, amount: str, start: date = JAN_5, end: date = JAN_21) -> Line:
    return Line(item * 1000, f"use:{item}:{FEB_1}", "usage", item, "SMS", start, end, D(amount))


def discount(item: int | None, amount: str, start: date = JAN_5, end: date = JAN_21) -> ChargeSpec:
    return ChargeSpec(
        "dsc:1:2027-01-01:1", "discount", item, "10 % off", start, end, FEB_1,
        D(1), D(amount), D(amount), "standard",
    )  # fmt: skip


def commitment(amount: str, *, start: date = JAN_1, **fields) -> CommitmentTerm:
    fields.setdefault("contract_id", None if "item_id" in fields else 10)
    return CommitmentTerm(
        id=5, ref="MIN-5", amount=D(amount), tax_category="standard", description="Gold",
        start=start, end=fields.pop("end", None), **fields,
    )  # fmt: skip


def shortfalls(terms: CommitmentTerm, lines, discounts=()) -> list[ChargeSpec]:
    unit = UnitTerms(commitments=(terms,), items=ITEMS)
    return shortfall_specs(unit, GRID, JANUARY, lines, list(discounts), "EUR")


def only(specs: list[ChargeSpec]) -> tuple:
    (spec,) = specs
    return (
        spec.charge_key, spec.kind, spec.contract_item_id, spec.description, spec.period_start,
        spec.period_end, spec.bill_on, spec.quantity, spec.amount, spec.tax_category,
    )  # fmt: skip


# -- the rules, by hand -------------------------------------------------------------------


def test_a_contract_with_two_items_is_charged_what_its_cycle_misses():
    # January's fee in advance (30.00) was billed on Jan 1 (an earlier bill); this bill has
    # January's usage (25.00) and February's fee in advance (30.00, for the next cycle: not
    # January's spend), and item 3 of another contract (50.00: not this contract's).
    # Spend 30.00 + 25.00 = 55.00; minimum 100.00: shortfall 45.00.
    terms = commitment("100.00", billed=(Spent(JAN_1, FEB_1, D("30.00")),))
    lines = [usage(2, "25.00"), fee(1, FEB_1, MAR_1, "30.00"), fee(3, JAN_1, FEB_1, "50.00")]
    assert only(shortfalls(terms, lines)) == (
        "min:5:2027-01-01", "commitment", None, "Gold",
        JAN_1, FEB_1, FEB_1, D(1), D("45.00"), "standard",
    )  # fmt: skip


def test_no_shortfall_when_the_spend_reaches_the_minimum():
    # 30.00 billed earlier + 70.00 of usage = 100.00: nothing missing (and 80.00 is more).
    terms = commitment("100.00", billed=(Spent(JAN_1, FEB_1, D("30.00")),))
    assert shortfalls(terms, [usage(2, "70.00")]) == []
    assert shortfalls(terms, [usage(2, "80.00")]) == []


def test_a_commitment_starting_mid_cycle_is_prorated_by_day():
    # From Jan 11: 21 of January's 31 days. 100.00 x 21/31 = 67.741... = 67.74.
    # The item started Jan 11 too: its first fee, 30.00 x 21/31 = 20.32, is on this bill, with
    # 10.00 of usage. 67.74 - 30.32 = 37.42, for [Jan 11, Feb 1).
    terms = commitment("100.00", start=JAN_11)
    lines = [fee(1, JAN_11, FEB_1, "20.32"), usage(2, "10.00", JAN_11, JAN_21)]
    assert only(shortfalls(terms, lines))[4:9] == (JAN_11, FEB_1, FEB_1, D(1), D("37.42"))


def test_the_target_s_own_dates_bound_the_active_part():
    # The contract ended Jan 16: [Jan 1, Jan 16) is 15 days, 100.00 x 15/31 = 48.387 = 48.39;
    # no spend. A contract that starts Feb 1 has no active day in January: no line.
    ended = commitment("100.00", target_start=JAN_1, target_end=JAN_16)
    assert only(shortfalls(ended, []))[4:9] == (JAN_1, JAN_16, FEB_1, D(1), D("48.39"))
    assert shortfalls(commitment("100.00", target_start=FEB_1), []) == []
    assert shortfalls(commitment("100.00", start=FEB_1), []) == []
    assert shortfalls(commitment("100.00", start=date(2026, 1, 1), end=JAN_1), []) == []


def test_an_item_discount_counts_and_a_bill_discount_does_not():
    # On item 2: minimum 50.00. Usage 45.00, less the item discount on it (-4.50): 40.50.
    # The bill discount (-10.00, on no item) is the bill's, not the item's. 50.00 - 40.50 = 9.50,
    # a line on item 2.
    terms = commitment("50.00", item_id=2)
    spec = only(
        shortfalls(terms, [usage(2, "45.00")], [discount(2, "-4.50"), discount(None, "-10.00")])
    )
    assert spec[2] == 2 and spec[8] == D("9.50")


def test_corrections_count_in_the_cycle_they_correct():
    # On this bill: a credit of December's fee (-10.00, an earlier cycle: not January's) and a
    # cancellation credit of January's fee (-9.68, January's). Fee 30.00 billed earlier.
    # Spend 30.00 - 9.68 = 20.32; 100.00 - 20.32 = 79.68.
    terms = commitment("100.00", billed=(Spent(JAN_1, FEB_1, D("30.00")),))
    lines = [
        fee(1, date(2026, 12, 20), JAN_1, "-10.00", kind="adjustment"),
        fee(1, JAN_21, FEB_1, "-9.68", kind="adjustment"),
    ]
    assert only(shortfalls(terms, lines))[8] == D("79.68")


def test_an_earlier_shortfall_and_a_one_day_charge():
    # A shortfall line of item 2 billed earlier is never spend; a one-time fee (a one-day
    # period [Jan 5, Jan 6)) on item 2 is: 50.00 - 12.00 = 38.00.
    terms = commitment("50.00", item_id=2, billed=(Spent(date(2026, 12, 1), JAN_1, D("50.00")),))
    setup = Line(9, "one:2", "one_time", 2, "Setup", JAN_5, date(2027, 1, 6), D("12.00"))
    shortfall_line = Line(8, "min:4:2027-01-01", "commitment", 2, "x", JAN_1, FEB_1, D("7.00"))
    assert only(shortfalls(terms, [setup, shortfall_line]))[8] == D("38.00")


def test_term_specs_skips_a_shortfall_already_stored():
    # A rerun after a crash: the stored shortfall is among the bill's charges, not added again.
    terms = UnitTerms(commitments=(commitment("100.00"),), items=ITEMS)
    stored = Line(99, "min:5:2027-01-01", "commitment", None, "x", JAN_1, FEB_1, D("100.00"))
    assert [s.charge_key for s in term_specs(terms, GRID, JANUARY, [], "EUR")] == [
        "min:5:2027-01-01"
    ]
    assert term_specs(terms, GRID, JANUARY, [stored], "EUR") == []


# -- cycle bills, on both databases -------------------------------------------------------


def _at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12)


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


def lines_of(engine, bill_date: date) -> list[tuple]:
    with unit_of_work(engine) as s:
        return [
            (c.charge_key, c.period_start, c.period_end, c.amount)
            for c in s.scalars(
                select(Charge)
                .join(Bill, Bill.id == Charge.bill_id)
                .where(Bill.bill_date == bill_date)
                .order_by(Charge.line_no)
            )
        ]


def totals(engine) -> list[tuple]:
    with unit_of_work(engine) as s:
        return s.execute(
            select(Bill.bill_date, Bill.net, Bill.tax, Bill.gross).order_by(Bill.id)
        ).all()


@pytest.fixture
def committed(engine):
    """Account A (FR, EUR, billing day 1) from Jan 1, 2027: contract CA with PRO (30.00 a month
    in advance, by day) and SMS (0.10 each); a commitment of 100.00 a cycle on CA. Account B:
    an item commitment on its SMS item of 280.00, from Feb 15."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        sms = b.plan(s, "SMS", "per_unit", price="0.10")
        a = b.account(s, "A", created=JAN_1)
        ca = b.contract(s, a, "CA", JAN_1)
        b.item(s, ca, "A1", pro, "recurring", JAN_1)
        a2 = b.item(s, ca, "A2", sms, "usage", JAN_1)
        b.usage(s, a2, "U1", "200", _at(2027, 1, 10))
        b.usage(s, a2, "U2", "500", _at(2027, 2, 10))
        s.add(
            Commitment(
                ref="MIN-A",
                account_id=a.id,
                contract_id=ca.id,
                amount=D("100.00"),
                tax_category="standard",
                description="Gold plan",
                start_date=JAN_1,
            )
        )
        bb = b.account(s, "B", created=JAN_1)
        cb = b.contract(s, bb, "CB", JAN_1)
        b2 = b.item(s, cb, "B2", sms, "usage", JAN_1)
        b.usage(s, b2, "U3", "500", _at(2027, 2, 20))
        s.add(Commitment(ref="MIN-B", account_id=bb.id, contract_item_id=b2.id,
                         amount=D("280.00"), tax_category="standard", description="SMS pack",
                         start_date=date(2027, 2, 15)))  # fmt: skip
    return engine


def test_cycle_bills_carry_the_shortfall_and_a_rerun_adds_nothing(committed):
    engine = committed
    run_bill_day(engine, FEB_1, "feb")
    # A, January: fee [Jan 1, Feb 1) 30.00 and usage 200 x 0.10 = 20.00 are January's; the fee
    # of February in advance (30.00) is not. 100.00 - 50.00 = 50.00 short.
    # Net 30.00 + 30.00 + 20.00 + 50.00 = 130.00, VAT 20 % 26.00, gross 156.00.
    # B, January: its commitment starts Feb 15, no usage: no bill.
    # Lines in period order: the shortfall spans the cycle.
    assert lines_of(engine, FEB_1) == [
        ("rec:1:2027-01-01", JAN_1, FEB_1, D("30.00")),
        ("min:1:2027-01-01", JAN_1, FEB_1, D("50.00")),
        ("use:2:2027-02-01", date(2027, 1, 10), date(2027, 1, 11), D("20.00")),
        ("rec:1:2027-02-01", FEB_1, MAR_1, D("30.00")),
    ]
    assert totals(engine) == [(FEB_1, D("130.00"), D("26.00"), D("156.00"))]

    run_bill_day(engine, MAR_1, "mar")
    # A, February: the fee billed on Feb 1 (30.00) + usage 500 x 0.10 = 50.00: 80.00, 20.00
    # short. Net 30.00 (March in advance) + 50.00 + 20.00 = 100.00.
    # B, February: active Feb 15 - Mar 1, 14 of 28 days: 280.00 x 14/28 = 140.00, less usage
    # 50.00: 90.00 short, a line on item B2. Net 50.00 + 90.00 = 140.00.
    mar = lines_of(engine, MAR_1)
    assert ("min:1:2027-02-01", FEB_1, MAR_1, D("20.00")) in mar
    assert ("min:2:2027-02-01", date(2027, 2, 15), MAR_1, D("90.00")) in mar
    assert totals(engine)[1:] == [
        (MAR_1, D("100.00"), D("20.00"), D("120.00")),
        (MAR_1, D("140.00"), D("28.00"), D("168.00")),
    ]
    with unit_of_work(engine) as s:
        shortfall = s.scalars(select(Charge).where(Charge.charge_key == "min:2:2027-02-01")).one()
        assert (shortfall.kind.value, shortfall.contract_item_id, shortfall.tax_category) == (
            "commitment",
            3,
            "standard",
        )
        assert shortfall.description == "SMS pack"
    assert run_rules_directly(engine, MAR_1).success

    before = snapshot(engine)
    run_bill_day(engine, MAR_1, "mar-again")
    after = snapshot(engine)
    assert after["charges"] == before["charges"] and after["bills"] == before["bills"]
