"""Tests for billing.ops.billrun: a batch billed in slices bills exactly like one slice.

Two identical databases (SQLite files, or PostgreSQL schemas) are seeded with the same synthetic
population, bent so that every path runs: units several cycles behind (catch-up), immediate
(UTI) charges, cancelled and ended items, price overrides, minimum commitments and trials, and
an account that cannot be taxed.
One database bills the batch as one slice, the other in small slices; every row billing
writes must come out the same, compared by business keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import aliased

from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.jobs.uti_schedule_generator import run_uti_schedule_generator
from billing.ops import billrun
from billing.ops.billrun import BatchResult, bill_batch, due_unit_ids
from billing.store.db import make_engine, unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillingIssue,
    BillUnit,
    Charge,
    ChargeStatus,
    Contract,
    ContractItem,
    ItemType,
    PricePlan,
)
from billing.store.usage import usage_marks
from tests import builders as b
from tests.conftest import copy_sqlite_template, migrated_schema, pg_schema_url

START, AS_OF = date(2026, 9, 1), date(2026, 11, 20)
D = Decimal


def _population(engine: Engine) -> None:
    seed(engine, accounts=40, usage_per_account=4, start=START, seed=11, terms=True)
    item = ContractItem.__table__.c
    recurring = item.item_type == ItemType.RECURRING.value
    with unit_of_work(engine) as s:
        s.execute(update(ContractItem).where(recurring, item.id % 5 == 0).values(
            end_date=date(2026, 10, 12)))  # fmt: skip
        s.execute(update(ContractItem).where(recurring, item.id % 7 == 0).values(
            pending_cancel_date=date(2026, 9, 20)))  # fmt: skip
        s.execute(update(ContractItem).where(recurring, item.id % 9 == 0).values(
            start_date=date(2026, 9, 17)))  # fmt: skip
        s.execute(
            update(ContractItem).where(item.id % 4 == 0).values(price_override=Decimal("3.333333"))
        )
        s.execute(  # no VAT rates: a consumer there must pay the country's VAT (a business
            # there would be billed outside the scope of VAT, with no rate needed)
            update(Account).where(Account.id == 6).values(country="XX", customer_type="consumer")
        )
    run_uti_schedule_generator(engine, datetime(2026, 11, 10, 12), "uti")


@pytest.fixture(params=["sqlite", "postgresql"])
def twins(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Engine, Engine]]:
    """Two databases with the same population."""
    with ExitStack() as stack:
        if request.param == "sqlite":  # copies of the process's migrated template
            urls = [f"sqlite:///{tmp_path / name}.db" for name in ("one", "two")]
            for url in urls:
                copy_sqlite_template(request.getfixturevalue("sqlite_template"), url)
        else:
            template = request.getfixturevalue("pg_template")
            urls = [pg_schema_url(stack.enter_context(migrated_schema(template))) for _ in "12"]
        engines = [make_engine(url) for url in urls]
        for engine in engines:
            _population(engine)
        yield engines[0], engines[1]
        for engine in engines:
            engine.dispose()


def _due(engine: Engine) -> list[int]:
    with unit_of_work(engine) as s:
        return due_unit_ids(s, AS_OF)


def _state(engine: Engine) -> dict[str, Any]:
    """Everything billing writes, by business keys (ids of new rows may differ)."""
    billed_by, line_bill = aliased(Bill), aliased(Bill)
    with unit_of_work(engine) as s:
        return {
            "bills": s.execute(
                select(
                    Bill.bill_key, Bill.bill_unit_id, Bill.account_id, Bill.series_code,
                    Bill.status, Bill.bill_date, Bill.due_date, Bill.period_start,
                    Bill.period_end, Bill.currency, Bill.net, Bill.tax, Bill.gross,
                    Bill.amount_paid, Bill.run_id,
                ).order_by(Bill.bill_key)
            ).all(),
            "lines": s.execute(
                select(
                    line_bill.bill_key, Charge.line_no, Charge.charge_key,
                    Charge.description, Charge.period_start, Charge.period_end,
                    Charge.quantity, Charge.unit_price, Charge.amount, Charge.tax_category,
                    Charge.tax_rate, Charge.tax, (Charge.amount + Charge.tax),
                )
                .join(line_bill, line_bill.id == Charge.bill_id)
                .order_by(line_bill.bill_key, Charge.line_no)
            ).all(),
            "charges": s.execute(
                select(
                    Charge.charge_key, Charge.account_id, Charge.bill_unit_id,
                    Charge.contract_item_id, Charge.kind, Charge.description,
                    Charge.period_start, Charge.period_end, Charge.bill_on, Charge.quantity,
                    Charge.unit_price, Charge.amount, Charge.currency, Charge.tax_category,
                    Charge.status, billed_by.bill_key, Charge.immediate, Charge.created_on,
                )
                .outerjoin(billed_by, billed_by.id == Charge.bill_id)
                .order_by(Charge.charge_key)
            ).all(),
            "units": s.execute(select(
                BillUnit.id, BillUnit.next_bill_date, BillUnit.last_bill_date,
                BillUnit.billing_state, BillUnit.failure_reason,
            ).order_by(BillUnit.id)).all(),
            "balances": s.execute(select(Account.ref, Account.balance).order_by(Account.ref)).all(),
            "usage": sorted((k, *mark) for k, mark in usage_marks(s).items()),
            "issues": s.execute(select(
                BillingIssue.step, BillingIssue.bill_unit_id, BillingIssue.reason
            ).order_by(BillingIssue.bill_unit_id)).all(),
        }  # fmt: skip


def _same_result(one: BatchResult, other: BatchResult) -> None:
    assert (one.units, one.billed, one.bills, one.empty_cycles, one.usage_collected) == (
        other.units, other.billed, other.bills, other.empty_cycles, other.usage_collected
    )  # fmt: skip
    assert (one.failed, one.failed_units, one.totals) == (
        other.failed, other.failed_units, other.totals
    )  # fmt: skip


@pytest.mark.parametrize("slice_units", [1, 7])
def test_a_batch_billed_in_slices_bills_exactly_like_one_slice(
    twins: tuple[Engine, Engine], slice_units: int
) -> None:
    whole, sliced = twins
    ids = _due(whole)
    assert ids == _due(sliced) and len(ids) > 2 * slice_units

    dry_whole = bill_batch(whole, ids, AS_OF, "dry", dry_run=True, slice_units=len(ids))
    dry_sliced = bill_batch(sliced, ids, AS_OF, "dry", dry_run=True, slice_units=slice_units)
    _same_result(dry_whole, dry_sliced)
    assert _state(whole) == _state(sliced)  # a dry run writes nothing, in slices too

    one = bill_batch(whole, ids, AS_OF, "run", slice_units=len(ids))
    _same_result(one, bill_batch(sliced, ids, AS_OF, "run", slice_units=slice_units))
    _same_result(one, dry_whole)
    state = _state(whole)
    assert state == _state(sliced)

    # Every path ran: catch-up over several cycles, immediate bills, a failed unit.
    assert one.bills > one.units
    assert any(key.startswith("imm:") for key, *_ in state["bills"])
    assert one.failed and state["issues"]
    assert any(key.startswith("min:") for key, *_ in state["charges"])  # commitment shortfalls


def test_a_rerun_in_slices_adds_nothing(twins: tuple[Engine, Engine]) -> None:
    engine, _ = twins
    ids = _due(engine)
    bill_batch(engine, ids, AS_OF, "run", slice_units=5)
    before = _state(engine)
    again = bill_batch(engine, ids, AS_OF, "run-again", slice_units=3)
    assert (again.bills, again.billed) == (0, 0)
    after = _state(engine)
    assert after["bills"] == before["bills"] and after["charges"] == before["charges"]


def test_slices_need_at_least_one_unit(twins: tuple[Engine, Engine]) -> None:
    engine, _ = twins
    with pytest.raises(ValueError, match="slice_units"):
        bill_batch(engine, _due(engine), AS_OF, "run", slice_units=0)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bills")).scalar_one() == 0


# New charges are written once, already on their bill; what an insert ON CONFLICT would have
# done with a key that exists is decided before billing. Hand-made accounts, both databases.


@pytest.fixture
def hand_made(engine: Engine) -> Engine:
    """Account A (FR, EUR, billing day 1) with a 30.00 fee in advance and a per-unit usage."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        advance = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        calls = b.plan(s, "CALLS", "per_unit", price="0.10")
        b.plan(s, "ADDON", "recurring", price="31.00", timing="advance")
        a = b.account(s, "A", created=date(2027, 1, 1), billing_day=1)
        ca = b.contract(s, a, "CA", date(2027, 1, 1))
        b.item(s, ca, "A1", advance, "recurring", date(2027, 1, 1))
        use = b.item(s, ca, "A2", calls, "usage", date(2027, 1, 1))
        b.usage(s, use, "u-1", "10", datetime(2027, 1, 5))
        b.usage(s, use, "u-2", "20", datetime(2027, 1, 20))
    return engine


def _charges(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """Each charge by key: (id, status, quantity, amount, key of its bill)."""
    billed_by = aliased(Bill)
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(Charge.charge_key, Charge.id, Charge.status, Charge.quantity, Charge.amount,
                   billed_by.bill_key)
            .outerjoin(billed_by, billed_by.id == Charge.bill_id)
        ).all()  # fmt: skip
    return {key: tuple(rest) for key, *rest in rows}


def _lines(engine: Engine, bill: str) -> list[tuple[str, Decimal]]:
    with unit_of_work(engine) as s:
        return [
            (key, net)
            for key, net in s.execute(
                select(Charge.charge_key, Charge.amount)
                .join(Bill, Bill.id == Charge.bill_id)
                .where(Bill.bill_key == bill)
                .order_by(Charge.line_no)
            )
        ]


def test_new_charges_are_inserted_open_on_their_bill(hand_made: Engine) -> None:
    run_bill_day(hand_made, date(2027, 2, 1), "run")
    charges = _charges(hand_made)
    bill = "cyc:1:2027-02-01"
    assert {key: (status, bill_key) for key, (_, status, *_, bill_key) in charges.items()} == {
        "rec:1:2027-01-01": (ChargeStatus.OPEN, bill),
        "rec:1:2027-02-01": (ChargeStatus.OPEN, bill),
        "use:2:2027-02-01": (ChargeStatus.OPEN, bill),
    }
    # Lines in (period start, charge id) order; ids were taken in insertion order.
    assert _lines(hand_made, bill) == [
        ("rec:1:2027-01-01", D("30.00")),
        ("use:2:2027-02-01", D("3.00")),  # 30 calls from Jan 5
        ("rec:1:2027-02-01", D("30.00")),
    ]
    ids = [charges[key][0] for key, _ in _lines(hand_made, bill)]
    assert ids[0] < ids[2] < ids[1]  # scheduled fees first, then usage


def test_a_fee_that_already_exists_is_billed_from_the_stored_charge_once(hand_made: Engine) -> None:
    run_bill_day(hand_made, date(2027, 2, 1), "run-1")
    with unit_of_work(hand_made) as s:  # bought on Feb 10: cycle fees charge Feb 10..Mar 1
        contract = s.scalars(select(Contract)).one()
        addon = s.scalars(select(PricePlan).where(PricePlan.code == "ADDON")).one()
        b.item(s, contract, "A3", addon, "recurring", date(2027, 2, 10))
    run_bill_day(hand_made, date(2027, 2, 15), "run-2")
    forward = _charges(hand_made)["rec:3:2027-02-01"]
    assert forward[1:] == (ChargeStatus.CALCULATED, D(1), D("21.04"), None)  # 31 x 19/28

    run_bill_day(hand_made, date(2027, 3, 1), "run-3")
    charges = _charges(hand_made)
    bill = "cyc:1:2027-03-01"
    # The schedule makes the same key: the stored charge (same id) is the one billed.
    assert charges["rec:3:2027-02-01"] == (forward[0], ChargeStatus.OPEN, D(1), D("21.04"), bill)
    assert charges["rec:3:2027-03-01"][1:] == (ChargeStatus.OPEN, D(1), D("31.00"), bill)
    assert [key for key, _ in _lines(hand_made, bill)] == [
        "rec:3:2027-02-01", "rec:1:2027-03-01", "rec:3:2027-03-01"
    ]  # fmt: skip
    # Already billed on Feb 1: not billed again although the schedule makes its key again.
    assert charges["rec:1:2027-02-01"][-1] == "cyc:1:2027-02-01"


def test_a_usage_charge_still_calculated_is_repriced_then_billed(hand_made: Engine) -> None:
    with unit_of_work(hand_made) as s:
        s.execute(text("update tax_rates set country = 'XX'"))
    run_bill_day(hand_made, date(2027, 2, 1), "run-1")  # rated, then failed: no VAT rate
    assert _charges(hand_made)["use:2:2027-02-01"][1:] == (
        ChargeStatus.CALCULATED, D(30), D("3.00"), None
    )  # fmt: skip
    with unit_of_work(hand_made) as s:
        s.execute(text("update tax_rates set country = 'FR'"))
        use = s.scalars(select(ContractItem).where(ContractItem.ref == "A2")).one()
        b.usage(s, use, "u-late", "5", datetime(2027, 1, 31, 23))  # arrived after the run
    run_bill_day(hand_made, date(2027, 2, 1), "run-2")
    charge = _charges(hand_made)["use:2:2027-02-01"]
    assert charge[1:] == (ChargeStatus.OPEN, D(35), D("3.50"), "cyc:1:2027-02-01")
    assert ("use:2:2027-02-01", D("3.50")) in _lines(hand_made, "cyc:1:2027-02-01")


def test_a_charge_that_appears_after_the_check_fails_the_unit_not_twice_billed(
    hand_made: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else inserted a key between the check and the insert: nothing is billed twice."""
    with unit_of_work(hand_made) as s:
        unit = s.scalars(select(BillUnit)).one()
        s.add(Charge(
            charge_key="rec:1:2027-01-01", account_id=unit.account_id, bill_unit_id=unit.id,
            contract_item_id=1, kind="recurring", description="by someone else",
            period_start=date(2027, 1, 1), period_end=date(2027, 2, 1),
            bill_on=date(2027, 1, 1), quantity=D(1), unit_price=D("30.00"), amount=D("30.00"),
            currency="EUR", tax_category="standard", status=ChargeStatus.OPEN,
            created_on=date(2027, 1, 1),
        ))  # fmt: skip
    monkeypatch.setattr(billrun, "_existing_keys", lambda session, keys: set())
    result = bill_batch(hand_made, [1], date(2027, 2, 1), "run")
    assert result.bills == 0
    assert result.failed == {
        "A": "ConcurrentBillingError: expected to insert 3 charges, inserted 2"
    }
    charges = _charges(hand_made)
    assert list(charges) == ["rec:1:2027-01-01"]
    assert charges["rec:1:2027-01-01"][1] == ChargeStatus.OPEN
