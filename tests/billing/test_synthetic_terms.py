"""The synthetic population with commercial terms (``seed(..., terms=True)``): commitments and
trials, deterministic by seed, leaving every other row as it is without terms, and billed with
every post-billing check passing, on both databases."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import Charge, ChargeKind, ContractItem, ItemType
from billing.store.models_terms import Commitment
from tests.billing import test_synthetic
from tests.billing.test_synthetic import dump
from tests.expectations.direct import run_rules_directly

other_engine = test_synthetic.other_engine
START = date(2027, 1, 1)


def test_terms_are_deterministic_and_change_no_other_row(engine, other_engine):
    with_terms = seed(engine, accounts=300, usage_per_account=2, start=START, seed=5, terms=True)
    without = seed(other_engine, accounts=300, usage_per_account=2, start=START, seed=5)
    first, second = dump(engine), dump(other_engine)
    for table in first:
        if table not in ("commitments", "contract_items"):
            assert first[table] == second[table], table
    trial_column = list(ContractItem.__table__.columns).index(
        ContractItem.__table__.c.trial_end_date
    )
    strip = [r[:trial_column] + r[trial_column + 1 :] for r in first["contract_items"]]
    assert strip == [r[:trial_column] + r[trial_column + 1 :] for r in second["contract_items"]]
    assert second["commitments"] == [] and without.commitments == 0
    assert with_terms.commitments == len(first["commitments"]) > 20
    assert with_terms.trial_items > 10

    with unit_of_work(engine) as s:
        on_contract = s.scalar(select(func.count()).where(Commitment.contract_id.is_not(None)))
        on_item = s.scalar(select(func.count()).where(Commitment.contract_item_id.is_not(None)))
        mid_cycle = s.scalar(select(func.count()).where(Commitment.start_date > START))
        trials = s.execute(
            select(
                ContractItem.item_type, ContractItem.start_date, ContractItem.trial_end_date
            ).where(ContractItem.trial_end_date.is_not(None))
        ).all()
    assert on_contract and on_item and mid_cycle
    assert {t for t, _, _ in trials} == {ItemType.RECURRING}
    assert {(end - start).days for _, start, end in trials} == {14, 30, 45}


def test_the_same_seed_gives_the_same_terms(engine, other_engine):
    for target in (engine, other_engine):
        seed(target, accounts=200, usage_per_account=1, start=START, seed=3, terms=True)
    first, second = dump(engine), dump(other_engine)
    assert first["commitments"] and first["commitments"] == second["commitments"]
    assert first["contract_items"] == second["contract_items"]


def test_a_population_with_terms_bills_and_passes_every_check(engine):
    seed(engine, accounts=300, usage_per_account=3, start=START, seed=9, terms=True)
    as_of = date(2027, 3, 1)
    run_bill_day(engine, as_of, "terms")
    report = run_rules_directly(engine, as_of)
    assert report.success, [(r.name, r.sample) for r in report.failed]
    with unit_of_work(engine) as s:
        shortfalls = s.scalar(
            select(func.count()).where(
                Charge.kind == ChargeKind.COMMITMENT, Charge.bill_id.is_not(None)
            )
        )
        charges = s.scalar(select(func.count()).select_from(Charge))
    assert shortfalls > 0
    run_bill_day(engine, as_of, "terms-again")
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Charge)) == charges
