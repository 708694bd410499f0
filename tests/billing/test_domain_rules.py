"""The pure rules that left the database modules, without a database, figures worked by hand.

PRO is 30.00 a month in advance, prorated by day; the bill unit bills monthly on the 1st.
February 2027 has 28 days, so a day of February costs 30.00 / 28.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from billing.domain.adjustments import change_adjustments
from billing.domain.charge_keys import KeyKind
from billing.domain.pricing import PricePlan, Tier
from billing.domain.schedule import ChargeSpec, CycleGrid, ItemTerms, scheduled_charges
from billing.domain.terms import Term, add_months, extension_fees, forecast_horizon, next_term_end
from billing.domain.usage import RatingScope, as_date, midnight, uti_scope, with_price_override

D = Decimal
PRO = PricePlan(
    code="PRO", model="recurring", currency="EUR", unit_price=D("30.00"), timing="advance"
)
SMS = PricePlan(code="SMS", model="per_unit", currency="EUR", unit_price=D("0.05"))
GRID = CycleGrid(date(2027, 2, 1), 1, "monthly")


def terms(quantity: str = "1", end: date | None = None) -> ItemTerms:
    return ItemTerms(
        item_id=7,
        item_type="recurring",
        description="Pro",
        plan=PRO,
        tax_category="standard",
        quantity=D(quantity),
        price_override=None,
        start=date(2027, 1, 1),
        end=end,
    )


def fee(start: date, end: date, amount: str) -> ChargeSpec:
    return ChargeSpec(
        "rec:7:" + start.replace(day=1).isoformat(),
        "recurring",
        7,
        "Pro",
        start,
        end,
        start,
        D(1),
        D(amount),
        D(amount),
        "standard",
    )


def test_a_quantity_change_charges_the_rest_of_a_charged_cycle():
    # Charged Feb [1, Mar 1) for 30.00; 2 from Feb 15: the rest is 14 of 28 days,
    # 2 x 30.00 x 14/28 = 30.00 at the new terms, 15.00 at the old: +15.00.
    charged = [fee(date(2027, 2, 1), date(2027, 3, 1), "30.00")]
    (spec,) = change_adjustments(terms("1"), terms("2"), GRID, charged, date(2027, 2, 15), 31, None)
    assert spec.charge_key == "chg:31:2027-02-01"
    assert (spec.kind, spec.amount, spec.bill_on) == ("adjustment", D("15.00"), date(2027, 2, 15))
    assert (spec.period_start, spec.period_end) == (date(2027, 2, 15), date(2027, 3, 1))
    assert spec.description == "Pro (changed 2027-02-15)"


def test_a_change_in_a_cycle_not_yet_charged_corrects_its_head():
    # Nothing charged for Feb: the schedule will charge Feb whole at 2 x 30.00; the head
    # [Feb 1, Feb 15) is 14 days: old 15.00 minus new 30.00 = -15.00.
    (spec,) = change_adjustments(terms("1"), terms("2"), GRID, [], date(2027, 2, 15), 31, None)
    assert (spec.charge_key, spec.amount) == ("chg:31:2027-02-01", D("-15.00"))
    assert (spec.period_start, spec.period_end) == (date(2027, 2, 1), date(2027, 2, 15))
    # ... unless the unit was already billed past that cycle: nothing is charged again.
    assert (
        change_adjustments(
            terms("1"), terms("2"), GRID, [], date(2027, 2, 15), 31, date(2027, 3, 1)
        )
        == []
    )


def test_no_change_no_adjustment():
    charged = [fee(date(2027, 2, 1), date(2027, 3, 1), "30.00")]
    assert change_adjustments(terms(), terms(), GRID, charged, date(2027, 2, 15), 31, None) == []


def test_a_cycle_charged_short_at_the_old_term_end_is_topped_up():
    # The term ended Feb 15: Feb was charged for [1, 15), 15.00. Renewed, Feb costs 30.00:
    # the top-up is 15.00 for [Feb 15, Mar 1), billed on the old end.
    charged = [fee(date(2027, 2, 1), date(2027, 2, 15), "15.00")]
    (spec,) = extension_fees(terms(end=date(2028, 2, 15)), GRID, charged, date(2027, 2, 15))
    assert spec.charge_key == "ext:7:2027-02-01"
    assert (spec.amount, spec.period_start, spec.period_end) == (
        D("15.00"),
        date(2027, 2, 15),
        date(2027, 3, 1),
    )
    # A fee that ends with its cycle needs nothing.
    full = [fee(date(2027, 2, 1), date(2027, 3, 1), "30.00")]
    assert extension_fees(terms(), GRID, full, date(2027, 3, 1)) == []


def test_term_dates_keep_the_start_day_of_month():
    term = Term(date(2027, 1, 31), None, 1, True, 30)
    assert next_term_end(term) == date(2027, 3, 31)
    assert add_months(date(2027, 1, 31), 1, 31) == date(2027, 2, 28)
    assert forecast_horizon(date(2028, 1, 1)) == date(2029, 2, 1)


def test_the_schedule_keys_are_the_grammar_s():
    specs = scheduled_charges(terms(), GRID, date(2027, 3, 1), None)
    assert [s.charge_key for s in specs][:2] == ["rec:7:2027-01-01", "rec:7:2027-02-01"]


def test_a_rating_scope_keys_its_charges():
    scope = RatingScope([1], midnight(date(2027, 2, 1)), "use", date(2027, 2, 1), ())
    assert scope.key_kind is KeyKind.USAGE
    assert scope.key_for(7) == "use:7:2027-02-01"
    assert scope.key_parts == ("use:", ":2027-02-01")
    assert scope.key_suffix == "2027-02-01"
    uti = uti_scope([1], datetime(2027, 1, 12, 12, 0))
    assert (uti.key_for(7), uti.key_pattern) == (
        "uti:7:2027-01-12T12:00:00",
        "uti:%:2027-01-12T12:00:00",
    )
    assert (uti.bill_on, uti.immediate) == (date(2027, 1, 12), True)


def test_a_price_override_replaces_a_unit_price_only():
    assert with_price_override(SMS, D("0.04")).unit_price == D("0.04")
    assert with_price_override(SMS, None) is SMS
    graduated = PricePlan(
        code="G", model="graduated", currency="EUR", unit_price=None, tiers=(Tier(None, D("0.05")),)
    )
    assert with_price_override(graduated, D("0.04")) is graduated


def test_database_timestamps_become_days():
    assert as_date("2027-01-12 10:00:00") == date(2027, 1, 12)
    assert as_date(datetime(2027, 1, 12, 23, 59)) == date(2027, 1, 12)
    assert as_date(date(2027, 1, 12)) == date(2027, 1, 12)
