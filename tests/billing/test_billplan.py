"""The bill run as plan, then write.

The plan (``billing.domain.billplan.plan_bills``) is pure: a snapshot in, a plan out, the
same plan for the same snapshot, no database; a unit whose computation raises is a failure in
the plan. The write isolates a unit the database refuses by bisection with savepoints: one
poisoned unit among 32 costs 11 writes (1 + 2 per halving), not 32 re-runs, and the 31 others
are billed.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, func, select

from billing import failpoints
from billing.domain.billplan import (
    Billable,
    Item,
    Snapshot,
    Unit,
    plan_bills,
)
from billing.domain.errors import BillingError
from billing.domain.pricing import PricePlan
from billing.domain.schedule import ItemTerms
from billing.domain.vat import LineTax, VatCategory
from billing.ops.billrun import bill_batch
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillingIssue,
    BillingState,
    BillStatus,
    BillUnit,
    Charge,
    UsageStatus,
)
from billing.store.usage import usage_marks
from tests import builders as b

D = Decimal
FEB_1 = date(2027, 2, 1)
ROOT = Path(__file__).resolve().parents[2]


# -- the plan: pure and deterministic ---------------------------------------------------


def _unit(unit_id: int, currency: str = "EUR", next_bill: date = FEB_1) -> Unit:
    return Unit(
        id=unit_id,
        account_id=100 + unit_id,
        account_ref=f"A{unit_id}",
        currency=currency,
        country="FR",
        terms=14,
        billing_day=1,
        cycle="monthly",
        next_bill_date=next_bill,
        last_bill_date=None,
        series_code="INV",
    )


def _item(item_id: int, currency: str = "EUR", price: str = "30.00") -> Item:
    plan = PricePlan(
        code=f"PRO-{currency}",
        model="recurring",
        currency=currency,
        unit_price=D(price),
        timing="advance",
    )
    terms = ItemTerms(
        item_id=item_id,
        item_type="recurring",
        description="Pro",
        plan=plan,
        tax_category="standard",
        quantity=D(1),
        price_override=None,
        start=date(2027, 1, 1),
        end=None,
    )
    return Item(f"I{item_id}", terms)


def _snapshot() -> Snapshot:
    """Four units: a cycle with a fee, usage and a stored charge; an immediate charge; a unit
    whose plan is in another currency; a unit with no VAT rate."""
    usage = {
        "charge_key": "use:9:2027-02-01",
        "account_id": 101,
        "bill_unit_id": 1,
        "contract_item_id": 9,
        "kind": "usage",
        "description": "Calls",
        "period_start": date(2027, 1, 5),
        "period_end": date(2027, 1, 21),
        "bill_on": FEB_1,
        "quantity": D(30),
        "unit_price": D("0.10"),
        "amount": D("3.00"),
        "currency": "EUR",
        "tax_category": "standard",
        "immediate": False,
        "created_on": FEB_1,
    }
    stored = Billable(
        7, 1, "otc:7", "Setup", date(2027, 1, 1), date(2027, 1, 1), date(2027, 1, 1),
        D(1), D("50.00"), D("50.00"), "EUR", "standard", False,
    )  # fmt: skip
    immediate = Billable(
        8, 2, "uti:8", "Roaming", date(2027, 1, 10), date(2027, 1, 11), date(2027, 1, 11),
        D(1), D("4.00"), D("4.00"), "EUR", "standard", True,
    )  # fmt: skip
    units = (_unit(1), _unit(2, next_bill=date(2027, 3, 1)), _unit(3), _unit(4))
    rates: dict[str, LineTax | str] = {"standard": LineTax(VatCategory.STANDARD, D("0.20"))}
    return Snapshot(
        as_of=FEB_1,
        units=units,
        items={1: (_item(1),), 3: (_item(3, currency="USD"),), 4: (_item(4),)},
        usage=(usage,),
        stored={1: (stored,), 2: (immediate,)},
        existing_keys=frozenset({"otc:7", "uti:8"}),
        taxes={1: rates, 2: rates, 3: rates, 4: {}},
    )


def test_the_plan_is_the_same_for_the_same_snapshot_and_leaves_it_as_it_was() -> None:
    snapshot = _snapshot()
    before = copy.deepcopy(snapshot)
    plan = plan_bills(snapshot)
    assert plan == plan_bills(snapshot) == plan_bills(copy.deepcopy(snapshot))
    assert snapshot == before

    one, two, three, four = plan.units
    assert one.failure is None and one.bill is not None
    # Stored charge first (id 7), then the new fee and usage on provisional ids above it.
    # New charges on provisional ids above every stored one (8), in insertion order: every
    # unit's fees (unit 4's are 11 and 12), then usage.
    assert [(row["id"], row["charge_key"]) for row in one.new_charges] == [
        (9, "rec:1:2027-01-01"), (10, "rec:1:2027-02-01"), (13, "use:9:2027-02-01"),
    ]  # fmt: skip
    # Lines in (period start, charge id) order: the stored charge, then the new ones.
    assert [(line.charge_id, line.net) for line in one.bill.draft.lines] == [
        (7, D("50.00")), (9, D("30.00")), (13, D("3.00")), (10, D("30.00")),
    ]  # fmt: skip
    assert one.bill.draft.gross == one.bill.draft.net + one.bill.draft.tax
    assert (one.bill.period_start, one.bill.period_end) == (date(2027, 1, 1), FEB_1)
    # Not cycle-due: only the immediate charge, dated as of.
    assert two.failure is None and two.bill is not None
    assert [line.charge_id for line in two.bill.draft.lines] == [8]
    assert two.bill.draft.bill_date == FEB_1
    assert plan.provisional_ids == sorted(row["id"] for p in plan.units for row in p.new_charges)


def test_a_unit_whose_computation_raises_is_a_failure_in_the_plan() -> None:
    plan = plan_bills(_snapshot())
    _, _, three, four = plan.units
    assert three.bill is None and three.failure == (
        "item I3: price plan PRO-USD is in USD, the account bills in EUR"
    )
    assert four.bill is None and four.failure is not None and "standard" in four.failure
    assert four.new_charges  # its new charges are still written, calculated
    assert plan.failures == {3: three.failure, 4: four.failure}
    # Any error, not only a billing one, becomes data: the stored charge is not a Decimal.
    broken = _snapshot()
    bad = broken.stored[1][0]._replace(amount="fifty")
    broken = Snapshot(**{**broken.__dict__, "stored": {**broken.stored, 1: (bad,)}})
    first = plan_bills(broken).units[0]
    assert first.bill is None and first.failure is not None


def test_the_plan_module_imports_no_database() -> None:
    code = (
        "import sys, billing.domain.billplan; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'psycopg2') "
        "or m.startswith('billing.store') or m.startswith('billing.ops')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_failpoint_the_code_calls_is_listed() -> None:
    called = set()
    for folder in ("billing", "expectations", "flows"):
        for path in (ROOT / folder).rglob("*.py"):
            called.update(re.findall(r'failpoint\("([a-z_.]+)"\)', path.read_text()))
    assert called == set(failpoints.POINTS)
    assert "billrun.write" in called


# -- the write: a poisoned unit isolated by bisection -------------------------------------


def _population(engine: Engine, accounts: int) -> None:
    """``accounts`` accounts billed on Feb 1: a 30.00 fee in advance and some usage each."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        fee = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        calls = b.plan(s, "CALLS", "per_unit", price="0.10")
        for n in range(1, accounts + 1):
            acc = b.account(s, f"A{n:02}", created=date(2027, 1, 1), billing_day=1)
            ctr = b.contract(s, acc, f"C{n:02}", date(2027, 1, 1))
            b.item(s, ctr, f"F{n:02}", fee, "recurring", date(2027, 1, 1))
            use = b.item(s, ctr, f"U{n:02}", calls, "usage", date(2027, 1, 1))
            b.usage(s, use, f"u-{n}", "10", datetime(2027, 1, 5))


def _poison(engine: Engine, unit_id: int) -> None:
    """A bill that already has the key the unit's next bill will have: its insert is refused."""
    with unit_of_work(engine) as s:
        unit = s.get(BillUnit, unit_id)
        assert unit is not None
        s.add(Bill(
            bill_key=f"cyc:{unit_id}:{FEB_1.isoformat()}", account_id=unit.account_id,
            bill_unit_id=unit_id, series_code=unit.series_code, status=BillStatus.BILLED,
            bill_date=FEB_1, due_date=FEB_1, period_start=date(2027, 1, 1), period_end=FEB_1,
            currency="EUR", net=D(0), tax=D(0), gross=D(0), run_id="elsewhere",
        ))  # fmt: skip


class _Writes:
    """Counts the savepoint writes of the bill run (hits of ``billrun.write``)."""

    def __init__(self) -> None:
        self.count = 0

    def hit(self) -> None:
        self.count += 1


def test_one_poisoned_unit_among_32_is_isolated_in_a_logarithmic_number_of_writes(
    engine: Engine,
) -> None:
    _population(engine, 32)
    with unit_of_work(engine) as s:
        ids = list(s.scalars(select(BillUnit.id).order_by(BillUnit.id)))
    assert len(ids) == 32
    poisoned = ids[16]
    _poison(engine, poisoned)

    writes = _Writes()
    with failpoints.on("billrun.write", writes.hit):
        result = bill_batch(engine, ids, FEB_1, "run")
    # The whole plan, then two halves at each of 5 levels: 1 + 2 * log2(32).
    assert writes.count == 11 < len(ids)
    assert (result.units, result.billed, result.bills) == (32, 31, 31)
    assert result.failed_units == {poisoned}
    assert list(result.failed) == ["A17"]
    assert result.failed["A17"].startswith("IntegrityError: ")
    assert result.usage_collected == 31
    assert result.totals == {"EUR": D("31") * (D("60.00") + D("1.00")) * D("1.20")}

    with unit_of_work(engine) as s:
        units = {u.id: u for u in s.scalars(select(BillUnit))}
        for unit_id, unit in units.items():
            if unit_id == poisoned:
                assert unit.billing_state == BillingState.FAILED
                assert unit.next_bill_date == FEB_1 and unit.last_bill_date is None
            else:
                assert unit.billing_state == BillingState.BILLED
                assert unit.next_bill_date == date(2027, 3, 1)
        issues = s.execute(select(BillingIssue.bill_unit_id, BillingIssue.step)).all()
        assert issues == [(poisoned, "bill_accounts")]
        run_bills = s.scalars(select(Bill.bill_unit_id).where(Bill.run_id == "run")).all()
        assert sorted(run_bills) == [i for i in ids if i != poisoned]
        # Nothing of the poisoned unit was written: no charge, its usage still pending.
        account_id = units[poisoned].account_id
        assert s.scalar(select(func.count()).where(Charge.bill_unit_id == poisoned)) == 0
        assert s.get(Account, account_id).balance == 0  # type: ignore[union-attr]
        marks = usage_marks(s)
        assert marks["u-17"] == (UsageStatus.PENDING, None)
        assert all(
            status == UsageStatus.COLLECTED and key is not None
            for external_id, (status, key) in marks.items()
            if external_id != "u-17"
        )

    # Once the obstacle is gone, the rerun bills it (and only it).
    with unit_of_work(engine) as s:
        s.execute(Bill.__table__.delete().where(Bill.run_id == "elsewhere"))
    again = bill_batch(engine, ids, FEB_1, "rerun")
    assert (again.units, again.billed, again.bills, again.failed) == (1, 1, 1, {})


def test_a_plan_failure_needs_no_bisection(engine: Engine) -> None:
    _population(engine, 8)
    with unit_of_work(engine) as s:  # account A03 bills in USD, its plans are in EUR
        s.execute(Account.__table__.update().where(Account.ref == "A03").values(currency="USD"))
        ids = list(s.scalars(select(BillUnit.id).order_by(BillUnit.id)))
    writes = _Writes()
    with failpoints.on("billrun.write", writes.hit):
        result = bill_batch(engine, ids, FEB_1, "run")
    assert writes.count == 1
    assert (result.units, result.billed, result.bills) == (8, 7, 7)
    assert result.failed == {"A03": "item F03: price plan PRO is in EUR, the account bills in USD"}


def test_a_batch_that_breaks_outside_a_write_is_bisected_over_transactions(
    engine: Engine,
) -> None:
    """An error after the writes (here at the commit's doorstep, once) retries the batch by
    halves, each in its own transaction, not unit by unit."""
    _population(engine, 8)
    with unit_of_work(engine) as s:
        ids = list(s.scalars(select(BillUnit.id).order_by(BillUnit.id)))
    commits = _Writes()

    def break_the_first() -> None:
        commits.hit()
        if commits.count == 1:
            raise BillingError("the batch broke before its commit")

    with failpoints.on("billrun.before_commit", break_the_first):
        result = bill_batch(engine, ids, FEB_1, "run")
    assert commits.count == 3  # the whole batch, then its two halves (not 1 + 8)
    assert (result.units, result.billed, result.bills, result.failed) == (8, 8, 8, {})
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Bill)) == 8
