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

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select

from billing.jobs.bill_day import run_bill_day
from billing.jobs.database import engine_of
from billing.store.db import unit_of_work
from billing.store.models import Bill, BillLine, ContractItem
from tests import builders as b
from tests.expectations.direct import run_rules_directly

D = Decimal
DEC_1, JAN_1 = date(2026, 12, 1), date(2027, 1, 1)


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
                    BillLine.description,
                    BillLine.period_start,
                    BillLine.period_end,
                    BillLine.quantity,
                    BillLine.net,
                )
                .join(Bill, Bill.id == BillLine.bill_id)
                .where(Bill.bill_date == bill_date)
                .order_by(BillLine.position)
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
