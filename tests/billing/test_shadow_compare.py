"""The shadow bill run's comparison (pure), on hand-computed cases."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.domain.errors import BillingError
from billing.domain.shadow import (
    CSV_HEADER,
    AccountChange,
    Billed,
    CurrencyTotal,
    GateLimits,
    Kind,
    Thresholds,
    compare,
    csv_rows,
    gate_problem,
    percent_of,
)

D = Decimal
AS_OF = date(2027, 3, 1)


def test_thresholds_need_both_the_amount_and_the_percentage():
    t = Thresholds(absolute=D("1.00"), percent=D("5"))
    # 100.00 -> 106.00: +6.00 > 1.00 and 6 % > 5 %: changed.
    assert t.exceeded(D("100.00"), D("106.00"))
    # 100.00 -> 105.00: exactly 5 %: not more than 5 %.
    assert not t.exceeded(D("100.00"), D("105.00"))
    # 10.00 -> 10.90: 9 % but only 0.90: under the amount.
    assert not t.exceeded(D("10.00"), D("10.90"))
    # 10.00 -> 11.01: 1.01 and 10.1 %: changed.
    assert t.exceeded(D("10.00"), D("11.01"))
    # 1,000.00 -> 1,040.00: 40.00 but 4 %: not changed.
    assert not t.exceeded(D("1000.00"), D("1040.00"))
    # Downwards the same: 100.00 -> 93.00 is -7.00, 7 %.
    assert t.exceeded(D("100.00"), D("93.00"))
    # From 0 (a zero bill): any amount over 1.00 is more than 5 % of nothing.
    assert t.exceeded(D("0"), D("1.01"))


def test_a_zero_threshold_compares_by_the_other_one_alone():
    by_percent = Thresholds(absolute=D("0"), percent=D("5"))
    assert by_percent.exceeded(D("10.00"), D("10.90"))  # 0.90 is 9 %
    by_amount = Thresholds(absolute=D("1.00"), percent=D("0"))
    assert by_amount.exceeded(D("1000.00"), D("1001.01"))
    every = Thresholds(absolute=D("0"), percent=D("0"))
    assert every.exceeded(D("10.00"), D("10.01"))
    assert not every.exceeded(D("10.00"), D("10.00"))


@pytest.mark.parametrize("bad", [D("-1"), D("NaN"), 1.5, "5"])
def test_thresholds_are_non_negative_decimals(bad):
    with pytest.raises(BillingError):
        Thresholds(absolute=bad)


def test_percent_is_rounded_half_up_to_hundredths():
    assert percent_of(D("1"), D("3")) == D("33.33")
    assert percent_of(D("2"), D("3")) == D("66.67")
    assert percent_of(D("-2"), D("3")) == D("-66.67")
    assert percent_of(D("1"), D("0")) is None


def test_new_missing_changed_failed_and_unchanged():
    previous = [
        Billed("SAME", "EUR", 1, D("36.00")),
        Billed("SMALL", "EUR", 1, D("36.00")),
        Billed("PRICE", "EUR", 1, D("36.00")),
        Billed("GONE", "EUR", 1, D("24.00")),
        Billed("BROKEN", "GBP", 1, D("12.00")),
    ]
    now = [
        Billed("SAME", "EUR", 1, D("36.00")),
        Billed("SMALL", "EUR", 1, D("36.90")),  # +0.90 (2.5 %): under 1.00
        Billed("PRICE", "EUR", 1, D("48.00")),  # +12.00, +33.33 %
        Billed("FRESH", "EUR", 1, D("60.00")),
    ]
    report = compare(AS_OF, previous, now, {"BROKEN": "no VAT rate", "NOBODY": "boom"})
    assert report.changes == (
        AccountChange("BROKEN", "GBP", Kind.FAILED, 1, D("12.00"), 0, D("0"), "no VAT rate"),
        AccountChange("NOBODY", "", Kind.FAILED, 0, D("0"), 0, D("0"), "boom"),
        AccountChange("GONE", "EUR", Kind.MISSING, 1, D("24.00"), 0, D("0")),
        AccountChange("PRICE", "EUR", Kind.CHANGED, 1, D("36.00"), 1, D("48.00")),
        AccountChange("FRESH", "EUR", Kind.NEW, 0, D("0"), 1, D("60.00")),
    )
    assert report.of(Kind.CHANGED)[0].change == D("12.00")
    assert report.of(Kind.CHANGED)[0].percent == D("33.33")
    assert report.of(Kind.MISSING)[0].percent == D("-100.00")
    assert report.of(Kind.NEW)[0].percent is None
    # SAME, SMALL, PRICE, GONE, BROKEN, FRESH and NOBODY; SAME and SMALL are unflagged.
    assert (report.compared, report.unchanged) == (7, 2)
    assert report.counts == {Kind.FAILED: 2, Kind.MISSING: 1, Kind.CHANGED: 1, Kind.NEW: 1}
    # EUR before 36 + 36 + 36 + 24 = 132.00 over 4 bills; now 36 + 36.90 + 48 + 60 = 180.90.
    assert report.totals == (
        CurrencyTotal("EUR", 4, D("132.00"), 4, D("180.90")),
        CurrencyTotal("GBP", 1, D("12.00"), 0, D("0")),
    )
    assert report.totals[0].change == D("48.90")
    assert report.totals[0].percent == D("37.05")  # 48.90 / 132.00 = 37.045..., half up


def test_an_accounts_bill_units_add_up_and_a_catch_up_counts_every_bill():
    previous = [Billed("A", "EUR", 1, D("10.00")), Billed("A", "EUR", 1, D("5.00"))]
    now = [Billed("A", "EUR", 3, D("45.00"))]  # three cycles behind: three bills
    (change,) = compare(AS_OF, previous, now).changes
    assert (change.kind, change.previous_bills, change.previous_gross) == (
        Kind.CHANGED,
        2,
        D("15.00"),
    )
    assert (change.now_bills, change.change, change.percent) == (3, D("30.00"), D("200.00"))


def test_a_currency_change_is_missing_in_one_and_new_in_the_other():
    report = compare(AS_OF, [Billed("A", "EUR", 1, D("10.00"))], [Billed("A", "GBP", 1, D("9.00"))])
    assert [(c.kind, c.currency) for c in report.changes] == [
        (Kind.MISSING, "EUR"),
        (Kind.NEW, "GBP"),
    ]


def test_nothing_on_either_side():
    report = compare(AS_OF, [], [])
    assert (report.changes, report.totals, report.compared, report.unchanged) == ((), (), 0, 0)
    assert gate_problem(report, GateLimits()) is None


def _report():
    previous = [Billed(f"M{i}", "EUR", 1, D("10.00")) for i in range(25)]
    previous += [Billed("P", "EUR", 1, D("36.00"))]
    now = [Billed("P", "EUR", 1, D("48.00")), Billed("N", "EUR", 1, D("5.00"))]
    return compare(AS_OF, previous, now, {"F": "boom"})


def test_the_gate_names_the_kinds_over_their_limit_and_their_accounts():
    problem = gate_problem(_report(), GateLimits())
    assert problem is not None
    assert problem.startswith("shadow bill run as of 2027-03-01 against the previous cycle: ")
    # 25 missing: the first 20 by name, then how many more; new and failed do not stop it.
    names = ", ".join(sorted(f"M{i}" for i in range(25))[:20])
    assert f"25 missing (at most 0): {names} and 5 more" in problem
    assert "1 changed (at most 0): P (36.00 -> 48.00 EUR)" in problem
    assert "new" not in problem and "failed" not in problem
    assert problem.endswith("Nothing was billed.")


def test_limits_let_some_through_and_none_does_not_gate_a_kind():
    report = _report()
    assert gate_problem(report, GateLimits(max_missing=25, max_changed=1)) is None
    assert gate_problem(report, GateLimits(max_missing=None, max_changed=None)) is None
    only_new = gate_problem(report, GateLimits(max_missing=None, max_changed=None, max_new=0))
    assert only_new is not None and "1 new (at most 0): N" in only_new
    failed = gate_problem(report, GateLimits(max_missing=None, max_changed=None, max_failed=0))
    assert failed is not None and "1 failed (at most 0): F" in failed


def test_csv_rows_list_the_flagged_accounts_then_a_total_per_currency():
    previous = [Billed("P", "EUR", 1, D("36.000000")), Billed("J", "JPY", 1, D("1000"))]
    now = [Billed("P", "EUR", 1, D("48.000000")), Billed("J", "JPY", 1, D("1200"))]
    rows = csv_rows(compare(AS_OF, previous, now, {"F": "no VAT rate"}))
    assert CSV_HEADER[0] == "kind" and len(CSV_HEADER) == 10
    assert rows == [
        ("failed", "F", "", "0", "0", "0", "0", "0", "", "no VAT rate"),
        ("changed", "J", "JPY", "1", "1000", "1", "1200", "200", "20.00", ""),
        ("changed", "P", "EUR", "1", "36.00", "1", "48.00", "12.00", "33.33", ""),
        ("total", "", "EUR", "1", "36.00", "1", "48.00", "12.00", "33.33", ""),
        ("total", "", "JPY", "1", "1000", "1", "1200", "200", "20.00", ""),
    ]
