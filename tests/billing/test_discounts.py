"""Discounts on a cycle bill, pure (``billing.domain.discounts.discount_specs``).

Every expected amount is worked out by hand in the comments. The bill closes the monthly cycle
[2027-01-01, 2027-02-01) of a unit billed on the 1st; targets are ``Billable`` rows as the plan
hands them over.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from billing.domain.billplan import Billable
from billing.domain.commercial import DiscountTerm, TermItem, UnitTerms, term_specs
from billing.domain.discounts import active, discount_specs
from billing.domain.errors import BillingError
from billing.domain.periods import Period
from billing.domain.schedule import CycleGrid

D = Decimal
JAN, FEB, MAR = date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)
CYCLE = Period(JAN, FEB)
GRID = CycleGrid(FEB, 1, "monthly")
ITEMS = {
    10: TermItem(10, "ITM-10", 500, 1, date(2026, 6, 1), None),
    11: TermItem(11, "ITM-11", 500, 1, date(2026, 6, 1), None),
    12: TermItem(12, "ITM-12", 600, 1, date(2026, 6, 1), None),
}


def charge(
    cid: int,
    amount: str,
    item: int | None = 10,
    kind: str = "recurring",
    category: str = "standard",
    description: str = "Fibre",
) -> Billable:
    return Billable(
        id=cid,
        bill_unit_id=1,
        charge_key=f"rec:{cid}:2027-01-01",
        description=description,
        period_start=JAN,
        period_end=FEB,
        bill_on=JAN,
        quantity=D(1),
        unit_price=D(amount),
        amount=D(amount),
        currency="EUR",
        tax_category=category,
        immediate=False,
        kind=kind,
        contract_item_id=item,
    )


def discount(did: int, scope: str, kind: str, value: str, **kw: object) -> DiscountTerm:
    values: dict = {
        "id": did,
        "ref": f"DSC-{did}",
        "scope": scope,
        "kind": kind,
        "value": D(value),
        "description": f"Discount {did}",
        "reason_code": "95",
        "start": date(2026, 12, 1),
        "cycles": None,
        "end": None,
        "priority": 0,
        "stackable": True,
    }
    values.update(kw)
    return DiscountTerm(**values)


def specs(discounts: list[DiscountTerm], targets: list[Billable], cycle: Period = CYCLE):
    terms = UnitTerms(discounts=tuple(discounts), items=ITEMS)
    return discount_specs(terms, GRID, cycle, targets, "EUR")


def amounts(found) -> list[tuple[str, Decimal, int | None, str]]:
    return [(s.charge_key, s.amount, s.contract_item_id, s.tax_category) for s in found]


def test_percent_on_an_item() -> None:
    # 15 % of 29.99 = 4.4985 -> 4.50; the other item (ITM-11) is not reduced.
    found = specs(
        [discount(1, "item", "percent", "15", item_id=10)],
        [charge(1, "29.99"), charge(2, "10.00", item=11)],
    )
    assert amounts(found) == [("dsc:1:2027-01-01:1", D("-4.50"), 10, "standard")]
    line = found[0]
    assert (line.kind, line.quantity, line.unit_price) == ("discount", 1, D("-4.50"))
    assert (line.period_start, line.period_end, line.bill_on) == (JAN, FEB, FEB)
    assert line.description == "Discount 1"


def test_fixed_plan_discount_allocated_over_two_items() -> None:
    # plan 500 holds ITM-10 (30.00) and ITM-11 (10.00); ITM-12 (plan 600) is not reduced.
    # 5.00 split 30:10 -> 3.75 and 1.25 (they sum to 5.00).
    found = specs(
        [discount(2, "plan", "fixed", "5", plan_id=500)],
        [charge(1, "30.00"), charge(2, "10.00", item=11, description="TV"),
         charge(3, "50.00", item=12)],
    )  # fmt: skip
    assert amounts(found) == [
        ("dsc:2:2027-01-01:1", D("-3.75"), 10, "standard"),
        ("dsc:2:2027-01-01:2", D("-1.25"), 11, "standard"),
    ]
    assert [s.description for s in found] == ["Discount 2 - Fibre", "Discount 2 - TV"]


def test_fixed_split_with_a_remainder_sums_exactly() -> None:
    # 10.00 over three equal lines: 3.34 + 3.33 + 3.33 (largest remainder, first wins).
    found = specs(
        [discount(2, "plan", "fixed", "10", plan_id=500)],
        [charge(1, "7.00"), charge(2, "7.00", item=11), charge(3, "7.00")],
    )
    assert [s.amount for s in found] == [D("-3.34"), D("-3.33"), D("-3.33")]


def test_bill_discount_over_two_tax_categories() -> None:
    # standard 100.00 + 20.00 = 120.00, reduced 30.00: 10 % -> 12.00 and 3.00, one line
    # per category, no contract item, the cycle's period.
    found = specs(
        [discount(3, "bill", "percent", "10")],
        [charge(1, "100.00"), charge(2, "20.00", item=11),
         charge(3, "30.00", item=12, category="reduced")],
    )  # fmt: skip
    assert amounts(found) == [
        ("dsc:3:2027-01-01:1", D("-3.00"), None, "reduced"),
        ("dsc:3:2027-01-01:2", D("-12.00"), None, "standard"),
    ]
    assert all((s.period_start, s.period_end) == (JAN, FEB) for s in found)


def test_fixed_bill_discount_split_by_category_net() -> None:
    # 9.00 over standard 60.00 and reduced 30.00 (2:1) -> 3.00 reduced, 6.00 standard.
    found = specs(
        [discount(3, "bill", "fixed", "9")],
        [charge(1, "60.00"), charge(3, "30.00", item=12, category="reduced")],
    )
    assert [(s.tax_category, s.amount) for s in found] == [
        ("reduced", D("-3.00")),
        ("standard", D("-6.00")),
    ]


def test_bill_discount_on_what_item_discounts_left() -> None:
    # item 20 % of 50.00 = 10.00 leaves 40.00; with ITM-11's 10.00 the bill has 50.00 left;
    # a bill discount of 10 % takes 5.00 (not 6.00, 10 % of the 60.00 billed).
    found = specs(
        [discount(3, "bill", "percent", "10"), discount(1, "item", "percent", "20", item_id=10)],
        [charge(1, "50.00"), charge(2, "10.00", item=11)],
    )
    assert [(s.charge_key, s.amount) for s in found] == [
        ("dsc:1:2027-01-01:1", D("-10.00")),
        ("dsc:3:2027-01-01:1", D("-5.00")),
    ]


def test_stacking_percent_then_fixed_capped_at_zero() -> None:
    # 40.00: 25 % (priority 0) -> 10.00, 30.00 left; fixed 50 (priority 1) -> capped at
    # 30.00; a third (priority 2) finds nothing left and adds no line.
    found = specs(
        [
            discount(7, "item", "fixed", "50", item_id=10, priority=1),
            discount(5, "item", "percent", "25", item_id=10, priority=0),
            discount(9, "item", "percent", "10", item_id=10, priority=2),
        ],
        [charge(1, "40.00")],
    )
    assert [(s.charge_key, s.amount) for s in found] == [
        ("dsc:5:2027-01-01:1", D("-10.00")),
        ("dsc:7:2027-01-01:1", D("-30.00")),
    ]
    assert sum(s.amount for s in found) == D("-40.00")  # the target nets 0, never below


def test_same_priority_applies_in_id_order() -> None:
    # ids 4 then 6: 10 % of 100.00 = 10.00, then 10 % of 90.00 = 9.00.
    found = specs(
        [discount(6, "item", "percent", "10", item_id=10),
         discount(4, "item", "percent", "10", item_id=10)],
        [charge(1, "100.00")],
    )  # fmt: skip
    assert [(s.charge_key[:5], s.amount) for s in found] == [
        ("dsc:4", D("-10.00")),
        ("dsc:6", D("-9.00")),
    ]


def test_non_stackable_skips_a_reduced_target_and_blocks_later_ones() -> None:
    # ITM-10 100.00: 10 % (prio 0) -> 10.00. The non-stackable 50 % (prio 1) skips ITM-10
    # (already reduced) but takes ITM-11 20.00 -> 10.00, and then the stackable 5 % (prio 2)
    # reduces ITM-10 (90.00 -> 4.50) but not ITM-11 (closed by the non-stackable one).
    found = specs(
        [
            discount(1, "item", "percent", "10", item_id=10, priority=0),
            discount(2, "plan", "percent", "50", plan_id=500, priority=1, stackable=False),
            discount(3, "plan", "percent", "5", plan_id=500, priority=2),
        ],
        [charge(1, "100.00"), charge(2, "20.00", item=11)],
    )
    assert [(s.charge_key, s.amount, s.contract_item_id) for s in found] == [
        ("dsc:1:2027-01-01:1", D("-10.00"), 10),
        ("dsc:2:2027-01-01:1", D("-10.00"), 11),
        ("dsc:3:2027-01-01:1", D("-4.50"), 10),
    ]


def test_non_stackable_first_blocks_every_later_discount() -> None:
    # 30 % of 100.00 = 30.00, non-stackable: the bill discount finds nothing it may reduce.
    found = specs(
        [
            discount(1, "item", "percent", "30", item_id=10, stackable=False),
            discount(2, "bill", "percent", "10", priority=-5),
        ],
        [charge(1, "100.00")],
    )
    assert [(s.charge_key, s.amount) for s in found] == [("dsc:1:2027-01-01:1", D("-30.00"))]


def test_negative_correction_and_other_kinds_are_not_discounted() -> None:
    # A credit (-15.00) is not a target, nor a commitment shortfall or a prepayment: the bill
    # discount's base is the fee 40.00 and the positive adjustment 10.00 -> 10 % = 5.00.
    found = specs(
        [discount(3, "bill", "percent", "10")],
        [
            charge(1, "40.00"),
            charge(2, "-15.00", kind="adjustment"),
            charge(3, "10.00", kind="adjustment"),
            charge(4, "25.00", item=None, kind="commitment"),
            charge(5, "50.00", item=None, kind="prepayment"),
        ],
    )
    assert [s.amount for s in found] == [D("-5.00")]


def test_an_item_with_only_a_credit_gets_no_line() -> None:
    found = specs([discount(1, "item", "percent", "10", item_id=10)], [charge(1, "-30.00")])
    assert found == []


def test_n_cycles_window() -> None:
    # Starts 2026-12-15, 2 cycles: the cycles of Dec 1 and Jan 1; not Feb 1, not Nov 1.
    d = discount(1, "bill", "percent", "10", start=date(2026, 12, 15), cycles=2)
    assert not active(d, GRID, Period(date(2026, 11, 1), date(2026, 12, 1)))
    assert active(d, GRID, Period(date(2026, 12, 1), JAN))
    assert active(d, GRID, CYCLE)
    assert not active(d, GRID, Period(FEB, MAR))
    assert specs([d], [charge(1, "10.00")], Period(FEB, MAR)) == []
    assert [s.amount for s in specs([d], [charge(1, "10.00")])] == [D("-1.00")]


def test_one_cycle_starting_on_a_bill_date() -> None:
    # Starts on Jan 1, one cycle: only the bill that closes [Jan 1, Feb 1).
    d = discount(1, "bill", "percent", "10", start=JAN, cycles=1)
    assert not active(d, GRID, Period(date(2026, 12, 1), JAN))  # ends on its start
    assert active(d, GRID, CYCLE)
    assert not active(d, GRID, Period(FEB, MAR))


def test_end_date() -> None:
    # Ends 2027-02-01: the cycle starting Jan 1 is the last (Feb 1 is not before its end).
    d = discount(1, "bill", "percent", "10", end=FEB)
    assert active(d, GRID, CYCLE)
    assert not active(d, GRID, Period(FEB, MAR))
    # an end inside a cycle still gives that cycle (it starts before the end)
    assert active(replace(d, end=date(2027, 1, 2)), GRID, CYCLE)


def test_not_yet_started() -> None:
    d = discount(1, "bill", "percent", "10", start=FEB)
    assert not active(d, GRID, CYCLE)
    assert active(d, GRID, Period(FEB, MAR))


def test_yen_has_no_minor_unit() -> None:
    # 15 % of 999 JPY = 149.85 -> 150
    terms = UnitTerms(discounts=(discount(1, "item", "percent", "15", item_id=10),), items=ITEMS)
    target = charge(1, "999")._replace(currency="JPY")
    found = discount_specs(terms, GRID, CYCLE, [target], "JPY")
    assert [s.amount for s in found] == [D("-150")]


def test_hundred_percent_and_bad_terms() -> None:
    assert [s.amount for s in specs([discount(1, "bill", "percent", "100")],
                                    [charge(1, "12.34")])] == [D("-12.34")]  # fmt: skip
    with pytest.raises(BillingError, match="DSC-1: 150 % is not in 0..100"):
        specs([discount(1, "bill", "percent", "150")], [charge(1, "12.34")])
    with pytest.raises(BillingError, match="DSC-1: an item discount names no item"):
        specs([discount(1, "item", "percent", "10")], [charge(1, "12.34")])


def test_term_specs_skips_lines_already_stored() -> None:
    # A rerun after a crash: the discount line is among the bill's charges already.
    terms = UnitTerms(discounts=(discount(1, "item", "percent", "10", item_id=10),), items=ITEMS)
    stored = charge(9, "-3.00", kind="discount")._replace(charge_key="dsc:1:2027-01-01:1")
    assert term_specs(terms, GRID, CYCLE, [charge(1, "30.00")], "EUR") != []
    assert term_specs(terms, GRID, CYCLE, [charge(1, "30.00"), stored], "EUR") == []
