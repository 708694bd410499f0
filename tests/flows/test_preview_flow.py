"""The ``preview`` flow on SQLite and PostgreSQL: the account's next bill as artifacts (and a
PDF marked as a preview), nothing written to the billing database; the same as bill day."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from billing.jobs.bill_day import run_bill_day
from billing.ops.views import UnknownAccounts
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill
from flows.preview import preview
from tests.billing.test_preview import FEB, dump, population  # noqa: F401
from tests.flows.conftest import artifacts


@pytest.fixture
def database(population, monkeypatch, tmp_path):  # noqa: F811
    """The population as BILLING_DATABASE_URL, reports under a scratch working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BILLING_DATABASE_URL", population.url.render_as_string(hide_password=False))
    from flows.runtime import engine_for

    engine_for.cache_clear()
    yield population
    engine_for.cache_clear()


def test_the_flow_publishes_the_preview_and_writes_nothing(database, tmp_path):
    before = dump(database)

    summary = preview(account="A", as_of=FEB, pdf=True, database_block="")

    assert dump(database) == before
    assert (summary["bills"], summary["lines"]) == (1, 7)
    net, tax, gross = summary["totals"]["EUR"]
    pdf = tmp_path / "var/output/previews/A-2027-02-01.pdf"
    assert summary["pdf"] == ["var/output/previews/A-2027-02-01.pdf"] and pdf.is_file()
    lines = json.loads(artifacts("preview-lines")[0]["data"])
    assert [row["description"] for row in lines][:2] == ["Product PRO", "Product SUPPORT"]
    assert "S 20 %" in lines[0]["VAT"]
    assert "gross 206.40 EUR; nothing was written" in artifacts("preview-summary")[0]["data"]

    run_bill_day(database, FEB, "run-feb")
    with unit_of_work(database) as session:
        billed = session.execute(
            select(Bill.net, Bill.tax, Bill.gross)
            .join(Account)
            .where(Account.ref == "A", Bill.run_id == "run-feb")
        ).one()
    assert tuple(billed) == (net, tax, gross)


def test_an_unknown_account_fails_the_flow(database):
    before = dump(database)

    with pytest.raises(UnknownAccounts, match="unknown account 'NOPE'"):
        preview(account="NOPE", as_of=FEB, database_block="")

    assert dump(database) == before
