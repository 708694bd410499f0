"""The bill-day flow end to end on SQLite and PostgreSQL, through Prefect."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.store.db import unit_of_work
from billing.store.models import Bill, BillingIssue
from billing.store.usage import usage_marks
from expectations.suites import RULES
from flows.bill_day import BillDayFailed, PostBillingChecksFailed, bill_day
from tests.billing.test_billday import (  # noqa: F401  (the hand-checked population)
    population,
    seed_population,
)
from tests.flows.conftest import artifacts, task_runs


@pytest.fixture
def billing_db(population, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # the run's reports go to ./var/output
    monkeypatch.setenv("BILLING_DATABASE_URL", population.url.render_as_string(hide_password=False))
    from flows.runtime import engine_for

    engine_for.cache_clear()
    return population


def _bills(engine):
    with unit_of_work(engine) as s:
        return s.execute(
            select(Bill.bill_no, Bill.currency, Bill.gross).order_by(Bill.number)
        ).all()


def test_flow_bills_numbers_and_reports(billing_db):
    summary = bill_day(as_of=date(2027, 2, 1), database_block="", documents=False)
    assert summary["bills"] == 2
    assert summary["total EUR"] == Decimal("199.20")
    assert summary["total GBP"] == Decimal("17.34")
    assert [tuple(r) for r in _bills(billing_db)] == [
        ("INV-00000001", "GBP", Decimal("17.34")),
        ("INV-00000002", "EUR", Decimal("199.20")),
    ]
    # The same date again adds nothing.
    again = bill_day(as_of=date(2027, 2, 1), database_block="", documents=False)
    assert again["bills"] == 0
    assert len(_bills(billing_db)) == 2


def test_numbering_ends_before_the_steps_that_write_payments_start(billing_db):
    # Side by side, numbering's row locks and a payment's key-share lock on its bill deadlocked.
    state = bill_day(as_of=date(2027, 2, 1), database_block="", return_state=True, documents=False)
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    runs = {run["name"].rsplit("-", 1)[0]: run for run in task_runs(flow_run_id)}
    numbered = runs["number_invoices"]["end_time"]
    after = ("apply_cycle_fees", "collect_payments", "refund_payments")
    assert all(runs[name]["start_time"] >= numbered for name in after), {
        name: (runs[name]["start_time"], numbered) for name in after
    }


def test_flow_dry_run_writes_nothing(billing_db):
    summary = bill_day(as_of=date(2027, 2, 1), dry_run=True, database_block="")
    assert summary["bills"] == 2
    assert _bills(billing_db) == []


def test_account_filter_bills_only_that_account(billing_db):
    # Only B is billed; the gate then reports that A is due and still not billed.
    with pytest.raises(PostBillingChecksFailed, match="due_accounts_billed \\(1\\)"):
        bill_day(as_of=date(2027, 2, 1), accounts=["B"], database_block="")
    assert [r.currency for r in _bills(billing_db)] == ["GBP"]


def test_failed_account_fails_the_run_and_is_named(billing_db):
    with unit_of_work(billing_db) as s:
        from sqlalchemy import text

        s.execute(text("update tax_rates set country = 'XX' where country = 'GB'"))
    with pytest.raises(BillDayFailed, match="1 account\\(s\\) failed: B"):
        bill_day(as_of=date(2027, 2, 1), database_block="")
    assert [r.currency for r in _bills(billing_db)] == ["EUR"]
    with unit_of_work(billing_db) as s:
        assert s.scalars(select(BillingIssue.step)).all() == ["bill_accounts"]


def test_flow_writes_progress_and_summaryartifacts(billing_db):
    import json

    bill_day(as_of=date(2027, 2, 1), database_block="", documents=False)
    progress, summary = artifacts("bill-day-progress")[0], artifacts("bill-day-summary")[0]
    assert float(progress["data"]) == 100.0
    table = json.loads(summary["data"])
    assert {"measure": "bills", "value": "2"} in table
    assert {"measure": "total EUR", "value": "199.20 EUR"} in table


def test_checks_pass_on_a_clean_run_and_write_data_docs(billing_db, tmp_path):
    import json

    bill_day(as_of=date(2027, 2, 1), database_block="", documents=False)
    table = json.loads(artifacts("post-billing-checks")[0]["data"])
    assert len(table) == len(RULES)  # one row per post-billing check
    assert [row["passed"] for row in table] == ["yes"] * len(RULES)
    docs = list((tmp_path / "var" / "output" / "2027-02-01").glob("*/data_docs/index.html"))
    assert len(docs) == 1


def test_corrupted_data_stops_the_run_and_says_why(billing_db):
    from sqlalchemy import update

    from billing.store.models import Charge

    bill_day(as_of=date(2027, 2, 1), database_block="", documents=False)
    with unit_of_work(billing_db) as s:  # someone edits an issued bill's line by hand
        s.execute(update(Charge).where(Charge.line_no == 1).values(amount=Decimal("1.00")))
    with pytest.raises(PostBillingChecksFailed, match="bill_totals_match_lines \\(2\\)"):
        bill_day(as_of=date(2027, 2, 28), database_block="")


def _everything_billed(engine):
    """Bills with their numbers and lines, charges, units and usage: what billing wrote."""
    from billing.store.models import BillUnit, Charge

    with unit_of_work(engine) as s:
        return {
            "bills": s.execute(
                select(
                    Bill.bill_key, Bill.bill_no, Bill.currency, Bill.net, Bill.tax, Bill.gross
                ).order_by(Bill.bill_key)
            ).all(),
            "lines": s.execute(
                select(Bill.bill_key, Charge.line_no, Charge.description, Charge.amount)
                .join(Bill)
                .order_by(Bill.bill_key, Charge.line_no)
            ).all(),
            "charges": s.execute(
                select(Charge.charge_key, Charge.status, Charge.amount).order_by(Charge.charge_key)
            ).all(),
            "units": s.execute(
                select(BillUnit.id, BillUnit.last_bill_date, BillUnit.next_bill_date).order_by(
                    BillUnit.id
                )
            ).all(),  # in id order: updated rows come back in any order on PostgreSQL
            "usage": sorted((k, mark[0]) for k, mark in usage_marks(s).items()),
        }


@pytest.fixture
def second_store(billing_db, request, tmp_path):
    """An empty migrated store on the same backend as ``billing_db`` (a copy of the process's
    template, as ``engine`` is)."""
    from billing.store.db import make_engine
    from tests.conftest import copy_sqlite_template, migrated_schema, pg_schema_url

    if billing_db.dialect.name == "sqlite":
        url = f"sqlite:///{tmp_path / 'second.db'}"
        copy_sqlite_template(request.getfixturevalue("sqlite_template"), url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
        return
    with migrated_schema(request.getfixturevalue("pg_template")) as schema:
        engine = make_engine(pg_schema_url(schema))
        yield engine
        engine.dispose()


def test_flow_and_in_process_runner_make_the_same_bills(billing_db, second_store):
    """One job, two runners: the flow (PrefectRunner) and run_bill_day (InProcessRunner) bill
    the same population into the same bills, numbers, charges and bill units, day after day
    (the hand-checked days: a cancellation with its credit, B's and A's next cycles). The
    in-process job renders no documents, so neither does the flow: the same steps on both."""
    from billing.jobs.bill_day import BillDayJob
    from billing.jobs.bill_day import bill_day as bill_day_job
    from billing.jobs.runner import InProcessRunner

    seed_population(second_store)
    for as_of in (date(2027, 2, 1), date(2027, 2, 15), date(2027, 2, 28), date(2027, 3, 1)):
        bill_day(as_of=as_of, database_block="", documents=False)
        bill_day_job(InProcessRunner(), BillDayJob(second_store, as_of, f"in-process {as_of}"))
    flow_made, in_process_made = _everything_billed(billing_db), _everything_billed(second_store)
    assert len(flow_made["bills"]) == 4
    assert flow_made == in_process_made


def test_the_flow_bills_in_worker_processes_on_postgresql_only(billing_db):
    """The flow's default settings: on PostgreSQL its batches go to worker processes
    (billing.jobs.batch_workers; threads on one core before), on SQLite they stay in threads.
    test_flow_and_in_process_runner_make_the_same_bills above compares the flow's bills, so
    billed by the workers on PostgreSQL, with the in-process runner's, billed in threads."""
    import os

    summary = bill_day(as_of=date(2027, 2, 1), database_block="", documents=False)
    expected = min(5, os.cpu_count() or 1) if billing_db.dialect.name == "postgresql" else 0
    assert summary["batch worker processes"] == expected
    assert summary["bills"] == 2
