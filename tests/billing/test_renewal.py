"""Contract renewal and non-renewal, on SQLite and PostgreSQL, with hand-checked dates.

Contracts start on Jan 1, 2027 for 12 months with 30 days' notice: the term ends on
Jan 1, 2028 (exclusive) and the notice deadline is Dec 2, 2027. PRO is 30.00 a month in
advance; bill units bill on the 1st.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.domain.terms import Term, notice_deadline, renewal_due, term_end
from billing.jobs.bill_day import run_bill_day
from billing.jobs.contract_item_renewal import run_contract_item_renewal as run_renewal_job
from billing.ops.renewal import retire_forecasts
from billing.store.db import unit_of_work
from billing.store.models import (
    Charge,
    ChargeStatus,
    Contract,
    ContractItem,
    ContractStatus,
    ItemStatus,
)
from tests import builders as b
from tests.billing.test_changes import snapshot

D = Decimal


def run_contract_item_renewal(engine, on):
    """The daemon in process (billing.jobs.contract_item_renewal) on ``on``: its RenewalResult."""
    return run_renewal_job(engine, datetime.combine(on, time())).result


@pytest.mark.parametrize(
    ("term", "end", "deadline"),
    [
        (Term(date(2027, 1, 1), None, 12, True, 30), date(2028, 1, 1), date(2027, 12, 2)),
        (Term(date(2027, 1, 31), None, 1, True, 0), date(2027, 2, 28), date(2027, 2, 28)),
        (
            Term(date(2027, 1, 31), date(2027, 2, 28), 1, True, 5),
            date(2027, 2, 28),
            date(2027, 2, 23),
        ),
    ],
)
def test_term_end_and_notice_deadline(term, end, deadline):
    assert (term_end(term), notice_deadline(term)) == (end, deadline)
    assert not renewal_due(term, date.fromordinal(deadline.toordinal() - 1))
    assert renewal_due(term, deadline)


@pytest.fixture
def contracts(engine):
    """CA renews automatically; CB has given notice (auto_renew off)."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        a = b.account(s, "A", created=date(2027, 12, 1))
        ca = b.contract(s, a, "CA", date(2027, 1, 1))
        b.item(s, ca, "A1", pro, "recurring", date(2027, 1, 1))
        bb = b.account(s, "B", created=date(2027, 12, 1))
        cb = b.contract(s, bb, "CB", date(2027, 1, 1))
        cb.auto_renew = False
        b.item(s, cb, "B1", pro, "recurring", date(2027, 1, 1))
    return engine


def contract_state(engine, ref):
    with unit_of_work(engine) as s:
        row = s.scalars(select(Contract).where(Contract.ref == ref)).one()
        return row.status, row.end_date


def test_renewal_extends_the_term_and_forecasts_the_new_term(contracts):
    engine = contracts
    assert run_contract_item_renewal(engine, date(2027, 12, 1)).renewed == {}
    result = run_contract_item_renewal(engine, date(2027, 12, 2))
    assert result.renewed == {"CA": date(2029, 1, 1)}
    assert contract_state(engine, "CA") == (ContractStatus.ACTIVE, date(2029, 1, 1))
    with unit_of_work(engine) as s:
        planned = s.execute(
            select(Charge.charge_key, Charge.bill_on, Charge.amount, Charge.status)
            .where(Charge.charge_key.like("ren:%"))
            .order_by(Charge.period_start)
        ).all()
    # One planned line per month of 2028, 30.00 each, billed on the 1st.
    assert len(planned) == 12 == result.planned_lines
    assert tuple(planned[0]) == (
        "ren:1:2028-01-01",
        date(2028, 1, 1),
        D("30.00"),
        ChargeStatus.PLANNED,
    )
    assert tuple(planned[-1])[:2] == ("ren:1:2028-12-01", date(2028, 12, 1))


def test_planned_lines_are_never_billed_and_retire_when_materialized(contracts):
    engine = contracts
    run_contract_item_renewal(engine, date(2027, 12, 2))
    run_bill_day(engine, date(2028, 1, 1), "jan")
    assert retire_forecasts(engine) == 1
    with unit_of_work(engine) as s:
        billed_keys = s.scalars(select(Charge.charge_key).where(Charge.bill_id.is_not(None))).all()
        states = dict(
            s.execute(
                select(Charge.charge_key, Charge.status).where(Charge.charge_key.like("ren:%"))
            ).all()
        )
    assert not [k for k in billed_keys if k.startswith("ren:")]
    assert "rec:1:2028-01-01" in billed_keys  # the real January 2028 fee of the renewed term
    assert states["ren:1:2028-01-01"] == ChargeStatus.CANCELLED
    assert list(states.values()).count(ChargeStatus.PLANNED) == 11


def test_a_contract_with_notice_ends_at_its_term_end(contracts):
    engine = contracts
    run_contract_item_renewal(engine, date(2027, 12, 31))
    assert contract_state(engine, "CB") == (ContractStatus.ACTIVE, None)
    result = run_contract_item_renewal(engine, date(2028, 1, 1))
    assert result.ended == {"CB": date(2028, 1, 1)}
    assert contract_state(engine, "CB") == (ContractStatus.ENDED, date(2028, 1, 1))
    with unit_of_work(engine) as s:
        item = s.scalars(select(ContractItem).where(ContractItem.ref == "B1")).one()
        assert (item.status, item.end_date) == (ItemStatus.ENDED, date(2028, 1, 1))
    # The ended contract is billed up to its end only: nothing of January 2028.
    run_bill_day(engine, date(2028, 1, 1), "jan")
    with unit_of_work(engine) as s:
        keys = s.scalars(select(Charge.charge_key).where(Charge.contract_item_id == 2)).all()
    assert "rec:2:2028-01-01" not in keys and "rec:2:2027-12-01" in keys


def test_a_cycle_charged_short_at_the_old_term_end_is_topped_up(engine):
    """The term ends Jan 15 inside January's cycle; bill day charged January up to Jan 15."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        pro = b.plan(s, "PRO", "recurring", price="31.00", timing="advance")
        a = b.account(s, "A", created=date(2027, 12, 20))
        ca = b.contract(s, a, "CA", date(2027, 1, 15))
        ca.end_date, ca.notice_days = date(2028, 1, 15), 0
        b.item(s, ca, "A1", pro, "recurring", date(2027, 12, 20))
    run_bill_day(engine, date(2028, 1, 1), "jan")
    with unit_of_work(engine) as s:
        jan = s.scalar(select(Charge.amount).where(Charge.charge_key == "rec:1:2028-01-01"))
    assert jan == D("14.00")  # 31.00 x 14/31 days (Jan 1..15)
    run_contract_item_renewal(engine, date(2028, 1, 15))
    with unit_of_work(engine) as s:
        top_up = s.execute(
            select(Charge.period_start, Charge.period_end, Charge.amount).where(
                Charge.charge_key == "ext:1:2028-01-01"
            )
        ).one()
    # The rest of January, Jan 15..Feb 1: 31.00 - 14.00 = 17.00.
    assert tuple(top_up) == (date(2028, 1, 15), date(2028, 2, 1), D("17.00"))


def test_rerun_with_the_same_date_changes_nothing(contracts):
    engine = contracts
    run_contract_item_renewal(engine, date(2028, 1, 1))
    before = snapshot(engine)
    again = run_contract_item_renewal(engine, date(2028, 1, 1))
    assert (again.renewed, again.ended, again.planned_lines) == ({}, {}, 0)
    assert snapshot(engine) == before
