"""A credit of a discounted fee gives the discount back, on SQLite and PostgreSQL.

A credit (a cancellation, a change or a trial moved after the fact) is priced at list price:
the schedule re-prices the fee for the days kept. On a fee a discount reduced, that credits
more than the customer paid. The bill that takes the credit also takes a ``dsr:`` line giving
back the discount's share of it (``billing.domain.discounts.reversal_specs``).

Account R (FR, EUR, billed on the 1st) has item R1 on plan FULL: 100.00 a month in advance,
prorated by day, from 2027-01-01, with D-TEN, 10 % off the item. Worked by hand:

- 2027-02-01: the first bill, in advance: January's fee and February's, each 100.00 - 10.00.
  Paid for February: 90.00.
- R1 is then cancelled from 2027-02-15. The bill day of 2027-03-01 credits February's days
  15 to 28: the fee for 1 to 14 February is 100.00 x 14 / 28 = 50.00, so the credit is
  -50.00 (list price). The discount took 10 % of February's fee: 5.00 of the credit was never
  paid, and is given back: +5.00. The bill: -50.00 + 5.00 = -45.00 net, VAT 20 %: -10.00 +
  1.00 = -9.00, gross -54.00, a credit note. 45.00 net is what February's 14 days not served
  cost the customer: 90.00 x 14 / 28.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from sqlalchemy import Engine, select, update

from billing.domain.billplan import Billable
from billing.domain.commercial import Reversal, UnitTerms
from billing.domain.discounts import discounted_share, reversal_specs
from billing.domain.periods import Period
from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import Bill, Charge, ContractItem
from billing.store.models_terms import Discount
from tests import builders as b
from tests.billing.test_discounts_billing import RAM, allowances, cii_of, counts, header_totals
from tests.expectations.direct import run_rules_directly

D = Decimal
JAN, FEB, MAR = date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)


def seed(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        full = b.plan(s, "FULL", "recurring", price="100.00", timing="advance")
        acc = b.account(s, "R", created=JAN)
        item = b.item(s, b.contract(s, acc, "CR", JAN), "R1", full, "recurring", JAN)
        s.add(
            Discount(ref="D-TEN", account_id=acc.id, scope="item", contract_item_id=item.id,
                     kind="percent", value=D(10), description="Ten off", start_date=JAN)
        )  # fmt: skip


def cancel_from_feb_15_and_bill_march(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        s.execute(
            update(ContractItem)
            .where(ContractItem.ref == "R1")
            .values(pending_cancel_date=date(2027, 2, 15))
        )
    run_bill_day(engine, MAR, "mar")


def bill_lines(engine: Engine, bill_date: date) -> list[tuple]:
    with unit_of_work(engine) as s:
        return [
            (row.charge_key.split(":")[0], row.amount, row.tax)
            for row in s.execute(
                select(Charge.charge_key, Charge.amount, Charge.tax)
                .join(Bill, Bill.id == Charge.bill_id)
                .where(Bill.bill_date == bill_date)
                .order_by(Charge.line_no)
            )
        ]


def test_a_credit_of_a_discounted_fee_gives_the_discount_back(engine):
    seed(engine)
    run_bill_day(engine, FEB, "feb")
    assert bill_lines(engine, FEB) == [  # January's and February's fees, each 10 % off
        ("rec", D("100.00"), D("20.00")),
        ("dsc", D("-10.00"), D("-2.00")),
        ("rec", D("100.00"), D("20.00")),
        ("dsc", D("-10.00"), D("-2.00")),
    ]
    cancel_from_feb_15_and_bill_march(engine)
    assert bill_lines(engine, MAR) == [
        ("cxl", D("-50.00"), D("-10.00")),
        ("dsr", D("5.00"), D("1.00")),
    ]
    with unit_of_work(engine) as s:
        bill = s.scalars(select(Bill).where(Bill.bill_date == MAR)).one()
        assert (bill.net, bill.tax, bill.gross, bill.type_code) == (
            D("-45.00"), D("-9.00"), D("-54.00"), "381",
        )  # fmt: skip
    # Its CII (validated: XSD and Schematron): two invoice lines, no allowance; a credit note
    # states its amounts positive, so the credit is 50.00 and the discount given back -5.00.
    tree = cii_of(engine, bill.bill_no)
    assert len(tree.findall(".//ram:IncludedSupplyChainTradeLineItem", RAM)) == 2
    assert allowances(tree) == []
    assert header_totals(tree)[0] == ("LineTotalAmount", "45.00")
    assert header_totals(tree)[-1] == ("DuePayableAmount", "54.00")
    report = run_rules_directly(engine, MAR)
    assert report.success, [(r.name, r.sample) for r in report.failed]
    before = counts(engine)
    run_bill_day(engine, MAR, "mar-again")
    assert counts(engine) == before


def test_no_discount_no_reversal(engine):
    """The same credit without the discount: -50.00 alone (the reversal is the discount's)."""
    seed(engine)
    with unit_of_work(engine) as s:
        s.query(Discount).delete()
    run_bill_day(engine, FEB, "feb")
    cancel_from_feb_15_and_bill_march(engine)
    assert bill_lines(engine, MAR) == [("cxl", D("-50.00"), D("-10.00"))]


class _Line(NamedTuple):
    kind: str
    charge_key: str
    contract_item_id: int | None
    period_start: date
    tax_category: str
    amount: Decimal


def test_the_share_counts_item_and_bill_discounts():
    """Bill B: item 1's fee 30.00 with 10 % off it (-3.00), item 2's fee 70.00, and a bill
    discount of 10 % of what the standard category kept: (30.00 - 3.00 + 70.00) x 10 % = 9.70.
    Item 1's fee lost 3.00 to its discount and 9.70 x 27 / 97 = 2.70 to the bill's: 5.70 of
    30.00, a share of 19 %. A credit of half the fee, -15.00, gives back 15.00 x 19 % = 2.85."""
    fee = _Line("recurring", "rec:1:2027-02-01", 1, FEB, "standard", D("30.00"))
    lines = [
        fee,
        _Line("discount", "dsc:7:2027-02-01:1", 1, FEB, "standard", D("-3.00")),
        _Line("recurring", "rec:2:2027-02-01", 2, FEB, "standard", D("70.00")),
        _Line("discount", "dsc:8:2027-02-01:1", None, FEB, "standard", D("-9.70")),
        _Line("recurring", "rec:3:2027-02-01", 3, FEB, "reduced", D("20.00")),  # not its
    ]
    share = discounted_share(fee, lines)
    assert share == Fraction(19, 100)
    credit = Billable(
        41, 1, "cxl:1:2027-02-01", "Fee (cancelled)", date(2027, 2, 15), MAR, MAR, D(1),
        D("-15.00"), D("-15.00"), "EUR", "standard", False, "adjustment", 1,
    )  # fmt: skip
    terms = UnitTerms(reversals={credit.charge_key: Reversal(1, share)})
    (spec,) = reversal_specs(terms, Period(MAR, date(2027, 4, 1)), [credit], "EUR")
    assert (spec.charge_key, spec.kind, spec.amount) == ("dsr:41", "discount", D("2.85"))
    assert (spec.period_start, spec.period_end, spec.tax_category) == (
        date(2027, 2, 15), MAR, "standard",
    )  # fmt: skip
    # a positive line, or a credit with no share, gives nothing back
    assert reversal_specs(terms, Period(MAR, date(2027, 4, 1)), [fee], "EUR") == []
    assert discounted_share(lines[2], lines[2:3]) == 0
