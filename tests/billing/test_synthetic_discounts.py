"""Synthetic discounts (``billing.ingest.synthetic_terms``), on SQLite and PostgreSQL: every
shape is seeded, the other rows are the same with or without them, the same seed gives the
same discounts, and the population bills, passes its checks and renders valid CII."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from billing.documents.cii import cii_bytes
from billing.documents.model import load_invoices
from billing.documents.seller import DEFAULT_SELLER
from billing.documents.validation import validate_cii_schematron, validate_cii_xsd
from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.ops.billrun import SLICE_UNITS, bill_batch, due_unit_ids
from billing.store.db import unit_of_work
from billing.store.models import Bill, Charge
from billing.store.models_terms import Discount
from tests.billing.test_synthetic import dump, other_engine  # noqa: F401
from tests.expectations.direct import run_rules_directly

START = date(2027, 1, 1)


def test_every_shape_is_seeded_and_nothing_else_changes(engine, other_engine):  # noqa: F811
    report = seed(engine, accounts=300, usage_per_account=1, start=START, discount_share=0.4)
    seed(other_engine, accounts=300, usage_per_account=1, start=START)
    with_discounts, without = dump(engine), dump(other_engine)
    assert report.discounts == len(with_discounts["discounts"]) > 100
    assert without["discounts"] == []
    for table in with_discounts:
        if table != "discounts":
            assert with_discounts[table] == without[table], table
    with unit_of_work(engine) as s:
        rows = s.scalars(select(Discount)).all()
    shapes = {(str(d.scope), str(d.kind)) for d in rows}
    assert shapes == {("item", "percent"), ("item", "fixed"), ("plan", "fixed"),
                      ("bill", "percent")}  # fmt: skip
    assert any(d.cycles for d in rows) and any(d.end_date for d in rows)
    assert any(d.coupon_code for d in rows) and any(not d.stackable for d in rows)
    assert {d.reason_code for d in rows} == {"95", "102", "103"}


def test_the_same_seed_gives_the_same_discounts(engine, other_engine):  # noqa: F811
    for db in (engine, other_engine):
        seed(db, accounts=50, usage_per_account=1, start=START, seed=3, discount_share=0.5)
    assert dump(engine)["discounts"] == dump(other_engine)["discounts"]


def test_a_seeded_population_with_discounts_bills_checks_and_renders(engine):
    seed(engine, accounts=60, usage_per_account=3, start=START, seed=5, discount_share=0.5)
    as_of = date(2027, 3, 1)
    run_bill_day(engine, as_of, "run")
    assert run_rules_directly(engine, as_of).failed == ()
    with unit_of_work(engine) as s:
        discounted = s.scalars(
            select(Bill.id)
            .join(Charge, Charge.bill_id == Bill.id)
            .where(Charge.kind == "discount", Bill.bill_no.is_not(None))
            .distinct()
            .order_by(Bill.id)
        ).all()
        assert len(discounted) > 10
        for invoice in load_invoices(s, discounted[:4]):
            assert any(line.is_allowance for line in invoice.lines)
            xml = cii_bytes(invoice, DEFAULT_SELLER)
            validate_cii_xsd(xml)
            assert validate_cii_schematron(xml) == []


def test_billed_in_small_slices_the_discounts_are_the_same(engine, other_engine):  # noqa: F811
    """Provisional ids and slices do not change a discount line: same keys, same amounts."""
    as_of = date(2027, 2, 1)
    found = []
    for db, slice_units in ((engine, SLICE_UNITS), (other_engine, 3)):
        seed(db, accounts=40, usage_per_account=2, start=START, seed=9, discount_share=0.6)
        with unit_of_work(db) as s:
            due = due_unit_ids(s, as_of)
        bill_batch(db, due, as_of, "run", slice_units=slice_units)
        with unit_of_work(db) as s:
            found.append(
                s.execute(
                    select(Charge.charge_key, Charge.amount, Charge.tax, Charge.line_no)
                    .where(Charge.kind == "discount")
                    .order_by(Charge.charge_key)
                ).all()
            )
    assert len(found[0]) > 10
    assert found[0] == found[1]
