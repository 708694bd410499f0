"""The RevRec Summary Journal daemon as a real Prefect flow, on SQLite and PostgreSQL.

The population is ``tests/billing/test_revrec.py``'s shop, billed through Mar 15, 2027:
January's revenue is YEARLY 84.93 + PRO15 16.45 + PRO 30.00 = 131.38 (hand-checked there).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from billing.ops.revrec import MonthOpenError, previous_month
from flows.cli import app
from flows.revrec_summary_journal import revrec_summary_journal
from tests.billing.test_revrec import ALL_BILL_DAYS, bill_through, build_shop, snapshot
from tests.flows.conftest import artifacts


@pytest.fixture
def revrec_db(engine, monkeypatch):
    build_shop(engine)
    bill_through(engine, *ALL_BILL_DAYS)
    monkeypatch.setenv("BILLING_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    from flows.runtime import engine_for

    engine_for.cache_clear()
    yield engine
    engine_for.cache_clear()


def _artifact(key: str) -> list[dict]:
    """The rows of the newest table artifact of ``key``."""
    return json.loads(artifacts(key)[0]["data"])


def test_flow_writes_the_draft_then_posts_then_is_locked(revrec_db):
    engine = revrec_db
    draft = revrec_summary_journal(year=2027, month=1, database_block="")
    assert (draft["month"], draft["status"], draft["locked"]) == ("2027-01", "draft", False)
    assert (draft["lines scheduled"], draft["journal entries"]) == (7, 6)
    assert draft["recognized EUR"] == Decimal("131.38")
    # deferred after January: YEARLY 915.07 + PRO15 13.55 + 15.00 + 15.00 + 16.45 + 13.55
    # + PRO 30.00 - 15.00 = 1003.62
    assert draft["deferred after 2027-01 EUR"] == Decimal("1003.62")
    assert {"measure": "recognized EUR", "value": "131.38 EUR"} in _artifact(
        "revrec-summary-journal-summary"
    )
    entries = _artifact("revrec-summary-journal-entries")
    assert entries[0] == {
        "gl_account": "487000",
        "product": "P-PRO",
        "currency": "EUR",
        "debit": "30.00 EUR",
        "credit": "0.00 EUR",
        "description": "RevRec 2027-01 P-PRO: deferred revenue released",
    }

    posted = revrec_summary_journal(year=2027, month=1, post=True, database_block="")
    assert (posted["status"], posted["lines scheduled"]) == ("posted", 0)
    before = snapshot(engine)
    again = revrec_summary_journal(year=2027, month=1, database_block="")
    assert (again["status"], again["locked"]) == ("posted", True)
    assert snapshot(engine) == before


def test_flow_refuses_to_post_while_an_earlier_month_is_open(revrec_db):
    revrec_summary_journal(year=2027, month=1, database_block="")
    with pytest.raises(MonthOpenError, match="still open: 2027-01"):
        revrec_summary_journal(year=2027, month=2, post=True, database_block="")


def test_flow_defaults_to_the_previous_month(revrec_db):
    year, month = previous_month(date.today())
    summary = revrec_summary_journal(database_block="")
    assert summary["month"] == f"{year:04d}-{month:02d}"
    with pytest.raises(ValueError, match="both year and month"):
        revrec_summary_journal(year=2027, database_block="")


def test_cli_run_revrec(revrec_db):
    url = revrec_db.url.render_as_string(hide_password=False)
    runner = CliRunner()
    args = ["run", "revrec", "--year", "2027", "--database", url]
    posted = runner.invoke(app, [*args, "--month", "1", "--post"])
    assert posted.exit_code == 0, posted.output
    assert "posted" in posted.stdout and "131.38" in posted.stdout
    refused = runner.invoke(app, [*args, "--month", "3", "--post"])
    assert refused.exit_code == 1
    assert "still open: 2027-02" in refused.output
