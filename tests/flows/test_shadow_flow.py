"""The shadow-bill-run flow and bill day's shadow gate, through Prefect, on the population of
tests/billing/test_shadow_bill_run.py (billed on 1 February, changed before 1 March)."""

from __future__ import annotations

import csv
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from billing.store.db import unit_of_work
from billing.store.models import Bill
from flows.bill_day import ShadowGateStopped, bill_day
from flows.shadow_bill_run import shadow_bill_run
from tests.billing.test_shadow_bill_run import dump, population  # noqa: F401
from tests.flows.conftest import run_artifacts

MAR = date(2027, 3, 1)


@pytest.fixture
def billing_db(population, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # the CSV goes to ./var/output
    monkeypatch.setenv("BILLING_DATABASE_URL", population.url.render_as_string(hide_password=False))
    from flows.runtime import engine_for

    engine_for.cache_clear()
    yield population
    engine_for.cache_clear()


def _tables(flow_run_id) -> dict[str, dict]:
    return {a["key"]: a for a in run_artifacts(flow_run_id) if a["key"]}


def test_the_flow_reports_the_accounts_and_totals_and_writes_the_csv(billing_db):
    before = dump(billing_db)
    state = shadow_bill_run(as_of=MAR, database_block="", return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    assert summary["accounts compared"] == 7
    assert (summary["accounts missing"], summary["accounts changed"]) == (1, 1)
    assert (summary["accounts new"], summary["accounts failed"]) == (1, 1)
    assert summary["gross EUR"] == Decimal("114.60")
    assert summary["previous gross EUR"] == Decimal("108.00")
    run_id = state.state_details.flow_run_id
    path = Path(summary["CSV"])
    assert path == Path("var/output/2027-03-01") / str(run_id) / "shadow-bill-run.csv"
    with path.open(newline="") as f:
        assert [r[:2] for r in csv.reader(f)][1:5] == [
            ["failed", "NOVAT"], ["missing", "GONE"], ["changed", "PRICED"], ["new", "NEW"],
        ]  # fmt: skip
    tables = _tables(run_id)
    accounts = json.loads(tables["shadow-bill-run-accounts"]["data"])
    assert [(r["kind"], r["account"], r["change"]) for r in accounts[1:]] == [
        ("missing", "GONE", "-36.00"),
        ("changed", "PRICED", "6.00"),
        ("new", "NEW", "36.00"),
    ]
    totals = json.loads(tables["shadow-bill-run-totals"]["data"])
    assert totals[0]["gross"] == "114.60 EUR" and totals[0]["change %"] == "6.11"
    assert float(tables["shadow-bill-run-progress"]["data"]) == 100.0
    assert dump(billing_db) == before


def test_bill_day_with_the_shadow_gate_stops_before_writing(billing_db):
    before = dump(billing_db)
    state = bill_day(
        as_of=MAR, database_block="", documents=False, shadow_gate=True, return_state=True
    )
    assert state.is_failed()
    with pytest.raises(ShadowGateStopped, match="1 changed \\(at most 0\\): PRICED"):
        state.result()
    assert dump(billing_db) == before
    tables = _tables(state.state_details.flow_run_id)
    assert "bill-day-shadow-accounts" in tables and "bill-day-summary" not in tables
    assert "stopped by the shadow gate" in tables["bill-day-progress"]["description"]


def test_bill_day_within_the_gates_limits_bills(billing_db):
    state = bill_day(
        as_of=MAR,
        database_block="",
        documents=False,
        shadow_gate=True,
        shadow_max_missing=1,
        shadow_threshold_percent="30",  # PRICED moved by 25 %
        return_state=True,
    )
    assert state.is_failed()  # NOVAT fails to bill (no VAT rate), as without the gate
    with unit_of_work(billing_db) as s:
        march = s.scalars(select(Bill.gross).where(Bill.bill_date == MAR)).all()
    assert len(march) == 5
    with pytest.raises(Exception, match="NOVAT"):
        state.result()
