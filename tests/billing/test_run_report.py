"""billing.ops.run_report: the one format of every figure a run reports, the totals of the bills
a run made (SQLite and PostgreSQL), the change against the previous run, and progress."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from billing.jobs.bill_day import run_bill_day
from billing.ops.run_report import (
    CurrencyTotals,
    ProgressPlan,
    StepCount,
    compare,
    count,
    money,
    run_totals,
    share,
    shown,
    signed_money,
    summary_markdown,
)
from billing.store.db import unit_of_work
from tests.billing.test_billday import population  # noqa: F401  (the hand-checked population)

D = Decimal


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (D("1234.5"), "EUR", "1,234.50 EUR"),
        (D("1234567.891"), "EUR", "1,234,567.891 EUR"),  # more decimals than cents: all shown
        (D("199.200000"), "EUR", "199.20 EUR"),  # six stored decimals: the currency's two
        (D("-15"), "EUR", "-15.00 EUR"),
        (D("-0.000000"), "GBP", "0.00 GBP"),
        (D("1000"), "JPY", "1,000 JPY"),
    ],
)
def test_money(amount, currency, text):
    assert money(amount, currency) == text


def test_money_refuses_floats_and_signs_changes():
    with pytest.raises(TypeError):
        money(1.5, "EUR")  # type: ignore[arg-type]
    assert [signed_money(D(v), "EUR") for v in ("22.26", "-199.20", "0")] == [
        "+22.26 EUR",
        "-199.20 EUR",
        "0.00 EUR",
    ]


def test_shown_never_gives_a_repr():
    assert [
        shown(None),
        shown(True),
        shown(12345),
        shown(D("3.500000")),
        shown(date(2027, 2, 1)),
        shown(datetime(2027, 2, 1, 9, 30)),
        shown(datetime(2027, 2, 1, 9, 30, 5)),
        shown(["A", 2]),
        shown({"B": D("1.5"), "A": 3}),
        shown([]),
    ] == [
        "—",
        "yes",
        "12,345",
        "3.5",
        "2027-02-01",
        "2027-02-01 09:30",
        "2027-02-01 09:30:05",
        "A, 2",
        "B: 1.5; A: 3",
        "—",
    ]
    assert count(1_000_000) == "1,000,000"
    with pytest.raises(TypeError):
        shown(0.1)


def test_run_totals_and_the_change_against_the_previous_run(population):  # noqa: F811
    engine = population
    run_bill_day(engine, date(2027, 2, 1), "run-1")
    run_bill_day(engine, date(2027, 2, 15), "run-2")
    run_bill_day(engine, date(2027, 2, 28), "run-3")
    run_bill_day(engine, date(2027, 3, 1), "run-4")
    with unit_of_work(engine) as s:
        first = run_totals(s, ["run-1"])
        nothing = run_totals(s, ["run-2"])
        third, fourth = run_totals(s, ["run-3"]), run_totals(s, ["run-4"])
        both = run_totals(s, ["run-3", "run-4"])
    # tests/billing/test_billday.py: A 166.00 + 33.20 = 199.20 EUR, B 14.45 + 2.89 = 17.34 GBP
    assert first == {
        "EUR": CurrencyTotals(1, D("166.00"), D("33.20"), D("199.20")),
        "GBP": CurrencyTotals(1, D("14.45"), D("2.89"), D("17.34")),
    }
    assert nothing == {}
    assert third == {"GBP": CurrencyTotals(1, D("33.00"), D("6.60"), D("39.60"))}
    assert fourth == {"EUR": CurrencyTotals(1, D("89.95"), D("17.99"), D("107.94"))}
    assert both == {**third, **fourth}
    changes = {c.currency: (c.bills_change, c.gross_change) for c in compare(fourth, third)}
    assert changes == {"EUR": (1, D("107.94")), "GBP": (-1, D("-39.60"))}
    text = summary_markdown(
        "Bill day 2027-03-01",
        fourth,
        [StepCount("billing", "bills", 1)],
        previous_name="bill-day 2027-02-28",
        previous=third,
    )
    assert "| EUR | 1 | 89.95 EUR | 17.99 EUR | 107.94 EUR |" in text
    assert "| billing | bills | 1 |" in text
    assert "| EUR | 1 | 0 | +1 | 107.94 EUR | 0.00 EUR | +107.94 EUR |" in text
    assert "| GBP | 0 | 1 | -1 | 0.00 GBP | 39.60 GBP | -39.60 GBP |" in text


def test_summary_without_a_previous_run_says_so():
    text = summary_markdown("Bill day 2027-02-01", {}, [])
    assert "No bills." in text and "No previous run to compare with." in text


def test_progress_only_goes_up_and_ends_at_100():
    plan = ProgressPlan([("find", 1), ("work", 8), ("report", 1)])
    seen = [
        plan.at("find"),
        plan.at("work", share(1, 4)),
        plan.at("work", share(1, 8)),  # a catch-up pass found more: not backwards
        plan.at("work", share(8, 8)),
        plan.at("find"),  # out of order: not backwards
        plan.at("report"),
    ]
    assert seen == [10.0, 30.0, 30.0, 90.0, 90.0, 100.0]
    assert share(0, 0) == 1
    with pytest.raises(ValueError):
        ProgressPlan([("nothing", 0)])
