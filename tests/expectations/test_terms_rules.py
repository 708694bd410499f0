"""The post-billing rules of the commercial terms (issue #21), each catching a hand-broken row.

The billed population is tests/expectations/test_suites.py's (the hand-checked one of
tests/billing/test_billday.py, billed on 2027-02-01): bill 1 is A's, with A1's fees of January
and February in advance (30.00 each, item 1).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select, update

from billing.store.db import unit_of_work
from billing.store.models import Charge, ChargeKind, ChargeStatus, ContractItem
from tests.expectations import test_suites as suites
from tests.expectations.test_suites import AS_OF, BILL_A, check, failures

billed = suites.billed
population = suites.population

D = Decimal
JAN_1, FEB_1, MAR_1 = date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)


def fees_of_a1(engine) -> list[Charge]:
    with unit_of_work(engine) as s:
        rows = s.scalars(
            select(Charge)
            .join(ContractItem, ContractItem.id == Charge.contract_item_id)
            .where(ContractItem.ref == "A1", Charge.kind == ChargeKind.RECURRING)
            .order_by(Charge.period_start)
        ).all()
        s.expunge_all()
        return list(rows)


def shortfall(key: str, amount: str, **values) -> Charge:
    return Charge(
        charge_key=key, account_id=1, bill_unit_id=1, kind=ChargeKind.COMMITMENT,
        description="Minimum commitment shortfall", period_start=FEB_1, period_end=MAR_1,
        bill_on=MAR_1, quantity=D(1), unit_price=D(amount), amount=D(amount), currency="EUR",
        tax_category="standard", status=ChargeStatus.CALCULATED, created_on=AS_OF, **values,
    )  # fmt: skip


def test_a_negative_shortfall(billed, tmp_path):
    with unit_of_work(billed) as s:
        s.add(shortfall("min:9:2027-02-01", "-5.00"))
        s.add(shortfall("min:8:2027-02-01", "5.00"))  # positive: fine
    report = check(billed, tmp_path)
    assert failures(report) == {"commitment_shortfalls_positive_once": 1}
    (row,) = report.result("commitment_shortfalls_positive_once").sample
    assert (row["charge_key"], row["amount"], row["problem"]) == (
        "min:9:2027-02-01",
        D("-5.00"),
        "negative",
    )


def test_two_shortfalls_of_one_commitment_on_a_cycle_bill(billed, tmp_path):
    # A1's two fees on bill 1 made into shortfalls of commitment 9, for two cycles: the bill's
    # totals stay right, but one commitment has two lines on one cycle bill.
    january, february = fees_of_a1(billed)
    with unit_of_work(billed) as s:
        for fee, key in ((january, "min:9:2027-01-01"), (february, "min:9:2026-12-01")):
            s.execute(
                update(Charge)
                .where(Charge.id == fee.id)
                .values(kind=ChargeKind.COMMITMENT, charge_key=key)
            )
    report = check(billed, tmp_path)
    assert failures(report) == {"commitment_shortfalls_positive_once": 1}
    (row,) = report.result("commitment_shortfalls_positive_once").sample
    assert (row["bill_id"], row["amount"], row["problem"]) == (
        BILL_A,
        D("60.00"),
        "more than one on a cycle bill",
    )
    # One line of each of two commitments on the same bill is fine.
    with unit_of_work(billed) as s:
        s.execute(
            update(Charge).where(Charge.id == february.id).values(charge_key="min:10:2027-01-01")
        )
    assert failures(check(billed, tmp_path)) == {}


def test_a_fee_charged_for_a_period_before_the_trial_end(billed, tmp_path):
    january, february = fees_of_a1(billed)
    assert (january.period_start, january.period_end, january.amount) == (JAN_1, FEB_1, D("30"))
    # A trial until Feb 15 set on A1 by hand: January's fee lies before it (February's does
    # not: it runs to Mar 1).
    with unit_of_work(billed) as s:
        s.execute(
            update(ContractItem)
            .where(ContractItem.ref == "A1")
            .values(trial_end_date=date(2027, 2, 15))
        )
    report = check(billed, tmp_path)
    assert failures(report) == {"no_fee_during_trial": 1}
    (row,) = report.result("no_fee_during_trial").sample
    assert (row["charge_id"], row["amount"], row["corrected"]) == (january.id, D("30"), 0)
    # A correction naming the fee that takes it to zero (as extending a trial writes) settles it.
    with unit_of_work(billed) as s:
        s.add(
            Charge(
                charge_key="trl:1:2027-01-01:1",
                account_id=1,
                bill_unit_id=1,
                contract_item_id=january.contract_item_id,
                kind=ChargeKind.ADJUSTMENT,
                description="trial",
                period_start=JAN_1,
                period_end=FEB_1,
                bill_on=MAR_1,
                quantity=D(1),
                unit_price=D("-30.00"),
                amount=D("-30.00"),
                currency="EUR",
                tax_category="standard",
                status=ChargeStatus.CALCULATED,
                created_on=AS_OF,
                corrects_charge_id=january.id,
            )  # fmt: skip
        )
    assert failures(check(billed, tmp_path)) == {}
