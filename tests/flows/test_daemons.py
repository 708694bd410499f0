"""The Cn285 daemons as real Prefect flows, on SQLite and PostgreSQL (prefect_test_harness).

The seed's manual mode end to end: UTI usage is collected by the UTI Schedule Generator with
a Process Now later than the usage, then the Billing daemon invoices the calculated lines.
Each daemon rerun with the same Process Now changes nothing.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import (
    Bill,
    ChangeRequest,
    Charge,
    ChargeStatus,
    Contract,
    ContractStatus,
    RequestStatus,
    UsageStatus,
)
from billing.store.usage import usage_marks
from flows.billing_daemon import billing
from flows.cli import app
from flows.contract_change_process import contract_change_process
from flows.contract_item_renewal import contract_item_renewal
from flows.runtime import DaemonFailed
from flows.uti_schedule_generator import uti_schedule_generator
from tests import builders as b
from tests.billing.test_changes import snapshot
from tests.flows.conftest import artifacts

D = Decimal
PROCESS_NOW = datetime(2027, 1, 12, 12, 0)


@pytest.fixture
def daemon_db(engine, monkeypatch):
    """Account A: a UTI item with usage before and after Process Now, and a PRO fee item."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        sms = b.plan(s, "UTI-SMS", "per_unit", price="0.50")
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        a = b.account(s, "A", created=date(2027, 1, 1))
        ca = b.contract(s, a, "CA", date(2027, 1, 1))
        uti = b.item(s, ca, "A-UTI", sms, "uti", date(2027, 1, 1))
        b.item(s, ca, "A-PRO", pro, "recurring", date(2027, 1, 1))
        b.usage(s, uti, "u1", "10", datetime(2027, 1, 10, 8, 0))
        b.usage(s, uti, "u2", "4", datetime(2027, 1, 12, 11, 59))
        b.usage(s, uti, "u3", "6", datetime(2027, 1, 12, 18, 0))  # after Process Now
    monkeypatch.setenv("BILLING_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    from flows.runtime import engine_for

    engine_for.cache_clear()
    yield engine
    engine_for.cache_clear()


def _artifact(key: str) -> list[dict]:
    """The rows of the newest table artifact of ``key``."""
    return json.loads(artifacts(key)[0]["data"])


def test_seed_manual_mode_uti_then_billing_daemon(daemon_db):
    engine = daemon_db
    summary = uti_schedule_generator(process_now=PROCESS_NOW, database_block="")
    assert (summary["usage collected"], summary["IS lines calculated"]) == (2, 1)
    assert {"measure": "usage collected", "value": "2"} in _artifact(
        "uti-schedule-generator-summary"
    )
    with unit_of_work(engine) as s:
        states = {k: mark[0] for k, mark in usage_marks(s).items()}
        line = s.scalars(select(Charge)).one()
    assert states == {
        "u1": UsageStatus.COLLECTED,
        "u2": UsageStatus.COLLECTED,
        "u3": UsageStatus.PENDING,
    }
    # 14 units x 0.50 = 7.00, calculated and immediate: the Billing daemon need not wait.
    assert (line.status, line.immediate, line.amount) == (ChargeStatus.CALCULATED, True, D("7.00"))

    invoiced = billing(process_now=PROCESS_NOW, database_block="")
    assert (invoiced["bills"], invoiced["numbers INV"]) == (1, "1..1")
    with unit_of_work(engine) as s:
        bill = s.scalars(select(Bill)).one()
        lines = s.scalars(select(Charge.id).where(Charge.bill_id == bill.id)).all()
        status = s.scalar(select(Charge.status).where(Charge.id == line.id))
    assert (bill.bill_no, bill.gross) == ("INV-00000001", D("8.40"))  # 7.00 + 20% VAT
    assert lines == [line.id] and status == ChargeStatus.OPEN
    assert {"measure": "bills", "value": "1"} in _artifact("billing-daemon-summary")


def test_usage_past_its_threshold_is_billed_early_by_the_uti_flow_then_invoiced(daemon_db):
    """A also has a usage item on CALLS at 0.50 a call and a usage threshold of 10.00: 25 calls
    before Process Now cost 12.50, past it. The UTI flow bills them early beside the UTI line
    (14 x 0.50 = 7.00); the Billing daemon invoices both: 19.50 + 20 % VAT = 23.40."""
    engine = daemon_db
    with unit_of_work(engine) as s:
        calls = b.plan(s, "CALLS", "per_unit", price="0.50")
        contract = s.get(Contract, 1)
        contract.account.usage_threshold = D("10.00")
        item = b.item(s, contract, "A-CALLS", calls, "usage", date(2027, 1, 1))
        b.usage(s, item, "c1", "25", datetime(2027, 1, 11, 9, 0))
        item_id = item.id
    summary = uti_schedule_generator(process_now=PROCESS_NOW, database_block="")
    assert (summary["accounts"], summary["usage collected"]) == (1, 2)
    assert summary["accounts over usage threshold"] == 1
    assert summary["threshold IS lines calculated"] == 1
    assert summary["threshold usage EUR"] == D("12.50")
    table = _artifact("uti-schedule-generator-summary")
    assert {"measure": "threshold usage EUR", "value": "12.50 EUR"} in table
    with unit_of_work(engine) as s:
        early = s.scalars(select(Charge).where(Charge.charge_key.like("thr:%"))).one()
    assert early.charge_key == f"thr:{item_id}:2027-02-01:2027-01-12T12:00:00"
    assert (early.status, early.immediate, early.amount) == (
        ChargeStatus.CALCULATED,
        True,
        D("12.50"),
    )

    invoiced = billing(process_now=PROCESS_NOW, database_block="")
    assert invoiced["bills"] == 1
    with unit_of_work(engine) as s:
        bill = s.scalars(select(Bill)).one()
    assert (bill.net, bill.gross) == (D("19.50"), D("23.40"))
    # A rerun of the same Process Now adds nothing.
    before = snapshot(engine)
    uti_schedule_generator(process_now=PROCESS_NOW, database_block="")
    assert snapshot(engine) == before


def test_every_daemon_rerun_with_the_same_process_now_changes_nothing(daemon_db):
    engine = daemon_db
    run_bill_day(engine, date(2027, 2, 1), "feb")
    with unit_of_work(engine) as s:
        s.add(
            ChangeRequest(
                ref="CR1",
                contract_item_id=2,
                kind="quantity",
                effective_date=date(2027, 2, 15),
                new_quantity=D("3"),
            )
        )
    now = datetime(2027, 2, 15, 9, 0)
    daemons = [uti_schedule_generator, contract_change_process, contract_item_renewal, billing]
    for daemon in daemons:
        daemon(process_now=now, database_block="")
    before = snapshot(engine)
    for daemon in daemons:
        daemon(process_now=now, database_block="")
    assert snapshot(engine) == before
    with unit_of_work(engine) as s:
        assert s.scalar(select(ChangeRequest.status)) == RequestStatus.APPLIED
        # February's 30.00 re-priced for Feb 15..Mar 1 at 3 units: 45.00 - 15.00 = 30.00.
        assert s.scalar(select(Charge.amount).where(Charge.charge_key == "chg:1:2027-02-01")) == D(
            "30.00"
        )


def test_change_process_reports_applied_and_rejected(daemon_db):
    engine = daemon_db
    with unit_of_work(engine) as s:
        for ref, quantity in (("CR1", "2"), ("CR2", "-1")):
            s.add(
                ChangeRequest(
                    ref=ref,
                    contract_item_id=2,
                    kind="quantity",
                    effective_date=date(2027, 1, 20),
                    new_quantity=D(quantity),
                )
            )
    summary = contract_change_process(process_now=datetime(2027, 1, 20), database_block="")
    assert (summary["applied quantity"], summary["rejected"]) == (1, 1)
    assert summary["rejected CR2"] == "new_quantity: must not be negative, got -1"
    table = _artifact("contract-change-process-summary")
    assert {"measure": "rejected", "value": "1"} in table


def test_renewal_flow_renews_and_ends(daemon_db):
    engine = daemon_db
    with unit_of_work(engine) as s:
        other = b.contract(s, s.get(Contract, 1).account, "CB", date(2027, 1, 1))
        other.auto_renew = False
    summary = contract_item_renewal(process_now=datetime(2028, 1, 1, 3, 0), database_block="")
    assert (summary["renewed"], summary["ended"], summary["planned IS lines"]) == (1, 1, 12)
    assert summary["renewed CA"] == "until 2029-01-01"
    with unit_of_work(engine) as s:
        states = dict(s.execute(select(Contract.ref, Contract.status)).all())
    assert states == {"CA": ContractStatus.ACTIVE, "CB": ContractStatus.ENDED}


def test_uti_failure_fails_the_run_and_names_the_account(daemon_db):
    with unit_of_work(daemon_db) as s:
        fee = b.plan(s, "FEE", "recurring", price="5.00", timing="advance")
        other = b.account(s, "B", created=date(2027, 1, 1))
        bad = b.item(
            s, b.contract(s, other, "CB", date(2027, 1, 1)), "B-UTI", fee, "uti", date(2027, 1, 1)
        )
        b.usage(s, bad, "b1", "3", datetime(2027, 1, 11))
    with pytest.raises(DaemonFailed, match="1 account\\(s\\) failed: 2"):
        uti_schedule_generator(process_now=PROCESS_NOW, database_block="")
    with unit_of_work(daemon_db) as s:
        assert usage_marks(s)["u1"][0] == UsageStatus.COLLECTED


def test_cli_runs_a_daemon_for_a_process_now(daemon_db):
    result = CliRunner().invoke(
        app, ["run", "uti-schedule-generator", "--process-now", "2027-01-12T12:00"]
    )
    assert result.exit_code == 0, result.output
    assert "usage collected" in result.output
    with unit_of_work(daemon_db) as s:
        pending = [k for k, mark in usage_marks(s).items() if mark[0] == UsageStatus.PENDING]
    assert pending == ["u3"]


def test_cli_run_help_lists_every_daemon():
    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    for command in (
        "bill-day",
        "contract-change-process",
        "contract-item-renewal",
        "uti-schedule-generator",
        "billing",
    ):
        assert command in result.output


def test_cli_refuses_a_bad_process_now():
    result = CliRunner().invoke(app, ["run", "billing", "--process-now", "12/01/2027"])
    assert result.exit_code != 0


def _pending(engine) -> list[str]:
    with unit_of_work(engine) as s:
        return sorted(k for k, mark in usage_marks(s).items() if mark[0] == UsageStatus.PENDING)


def test_a_flow_uses_the_database_given_over_the_environment(daemon_db, monkeypatch, tmp_path):
    """``database_given`` (what ``billing run --database`` and the demo use) chooses the
    database of an in-process flow run; BILLING_DATABASE_URL is only the last fallback."""
    from flows.runtime import database_given, engine_for

    elsewhere = f"sqlite:///{tmp_path / 'not-this-one.db'}"
    monkeypatch.setenv("BILLING_DATABASE_URL", elsewhere)
    engine_for.cache_clear()
    url = daemon_db.url.render_as_string(hide_password=False)
    with database_given(url):
        summary = uti_schedule_generator(process_now=PROCESS_NOW, database_block="")
    assert summary["usage collected"] == 2
    assert _pending(daemon_db) == ["u3"]
    assert not (tmp_path / "not-this-one.db").exists()


def test_cli_database_option_leaves_the_environment_alone(daemon_db, monkeypatch):
    import os

    monkeypatch.delenv("BILLING_DATABASE_URL")
    url = daemon_db.url.render_as_string(hide_password=False)
    args = ["run", "uti-schedule-generator", "--process-now", "2027-01-12T12:00", "-d", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _pending(daemon_db) == ["u3"]
    assert "BILLING_DATABASE_URL" not in os.environ


def test_the_daemon_jobs_run_in_process_without_prefect(daemon_db):
    """The jobs the flows run, with the in-process runner: the same work, no server."""
    from billing.jobs.contract_item_renewal import run_contract_item_renewal
    from billing.jobs.uti_schedule_generator import run_uti_schedule_generator

    collected = run_uti_schedule_generator(daemon_db, PROCESS_NOW, "in-process", per_batch=1)
    assert (collected.accounts, collected.collected, collected.failed) == (1, 2, {})
    assert _pending(daemon_db) == ["u3"]
    assert run_uti_schedule_generator(daemon_db, PROCESS_NOW, "again").collected == 0
    renewal = run_contract_item_renewal(daemon_db, datetime(2028, 1, 1, 3, 0))
    assert (renewal.due, sorted(renewal.result.renewed)) == (1, ["CA"])
