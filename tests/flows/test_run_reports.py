"""What an operator sees of a run in the UI: its name, one progress bar, artifacts that read
as figures (never Python reprs), and bill day's run summary against the previous bill day.

On SQLite and PostgreSQL, through a real Prefect server (prefect_test_harness).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from prefect import get_client
from prefect.flow_engine import run_flow_sync
from prefect.states import Scheduled

from expectations.suites import RULES
from flows.bill_day import bill_day
from flows.billing_daemon import billing
from flows.contract_change_process import contract_change_process
from flows.contract_item_renewal import contract_item_renewal
from flows.invoice_email_sender import invoice_email_sender
from flows.render_invoices import render_invoices
from flows.revrec_summary_journal import revrec_summary_journal
from flows.uti_schedule_generator import uti_schedule_generator
from tests.billing.test_billday import population  # noqa: F401  (the hand-checked population)
from tests.flows.conftest import flow_run, run_artifacts
from tests.flows.test_daemons import PROCESS_NOW, daemon_db  # noqa: F401

# A Python repr that leaked into an artifact: Decimal('1.00'), datetime.date(2027, 2, 1),
# None, True/False, a list ['A'] or [1], a dict {'EUR': ...}, a tuple ('a', ...), file:// links.
REPR = re.compile(
    r"Decimal\(|datetime\.|\bdate\(|\bNone\b|\bTrue\b|\bFalse\b|\[\s*['\"\d]|\{\s*'|\(\s*'"
    r"|file://"
)


def _texts(artifact: dict) -> list[str]:
    """Every text an artifact shows: its description, and its markdown or each table cell."""
    texts = [artifact.get("description") or ""]
    if artifact["type"] == "table":
        rows = json.loads(artifact["data"])
        texts += [cell for row in rows for cell in row.values()]
    elif artifact["type"] == "markdown":
        texts.append(artifact["data"])
    return texts


def _check_artifacts(flow_run_id) -> dict[str, list[dict]]:
    """The run's artifacts by type, after asserting none shows a repr or a non-text cell."""
    found = run_artifacts(flow_run_id)
    by_type: dict[str, list[dict]] = {}
    for artifact in found:
        by_type.setdefault(artifact["type"], []).append(artifact)
        for text in _texts(artifact):
            assert isinstance(text, str), (artifact["key"], text)
            assert not REPR.search(text), (artifact["key"], text)
    [progress] = by_type["progress"]  # one progress bar for the whole run
    assert float(progress["data"]) == 100.0
    return by_type


def _run(flow, **parameters):
    state = flow(**parameters, return_state=True)
    assert state.is_completed(), state
    return state.state_details.flow_run_id, state.result()


@pytest.fixture
def billing_db(population, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # reports and documents go to ./var
    monkeypatch.setenv("BILLING_DATABASE_URL", population.url.render_as_string(hide_password=False))
    from flows.runtime import engine_for

    engine_for.cache_clear()
    yield population
    engine_for.cache_clear()


def test_bill_day_artifacts_read_as_figures_and_one_progress_bar_reaches_100(billing_db):
    run_id, summary = _run(bill_day, as_of=date(2027, 2, 1), database_block="")
    assert summary["bills"] == 2
    by_type = _check_artifacts(run_id)
    keys = {a["key"] for kind in by_type.values() for a in kind}
    assert {
        "bill-day-progress",
        "bill-day-summary",
        "bill-day-run-summary",
        "bill-day-collect",
        "bill-day-refund",
        "post-billing-checks",
        "post-billing-data-docs",
        "invoice-documents",
    } <= keys
    table = {
        row["measure"]: row["value"]
        for a in by_type["table"]
        if a["key"] == "bill-day-summary"
        for row in json.loads(a["data"])
    }
    assert (table["total EUR"], table["total GBP"], table["dry run"]) == (
        "199.20 EUR",
        "17.34 GBP",
        "no",
    )
    assert flow_run(run_id)["name"] == "bill-day 2027-02-01"
    rendered_id, rendered = _run(
        render_invoices, bill_nos=["INV-00000001", "INV-00000002"], database_block=""
    )
    assert rendered["rendered"] == 2
    assert flow_run(rendered_id)["name"] == "render-invoices INV-00000001 (+1 more)"
    _check_artifacts(rendered_id)


def test_a_run_that_fails_leaves_its_bar_short_of_100_and_says_why(billing_db):
    from sqlalchemy import text

    from billing.store.db import unit_of_work
    from flows.bill_day import BillDayFailed

    with unit_of_work(billing_db) as s:  # B's country loses its VAT rate: B cannot be billed
        s.execute(text("update tax_rates set country = 'XX' where country = 'GB'"))
    state = bill_day(as_of=date(2027, 2, 1), database_block="", return_state=True)
    assert state.is_failed()
    with pytest.raises(BillDayFailed):
        state.result()
    found = run_artifacts(state.state_details.flow_run_id)
    [progress] = [a for a in found if a["type"] == "progress"]
    assert 0 < float(progress["data"]) < 100
    assert "stopped: 1 account(s) failed: B" in progress["description"]
    # The summary and the run summary are written all the same.
    assert {"bill-day-summary", "bill-day-run-summary"} <= {a["key"] for a in found}


def test_a_dry_run_is_named_so(billing_db):
    run_id, _ = _run(bill_day, as_of=date(2027, 2, 1), dry_run=True, database_block="")
    assert flow_run(run_id)["name"] == "bill-day 2027-02-01 (dry run)"
    _check_artifacts(run_id)


def test_run_summary_has_totals_counts_and_the_change_against_the_previous_bill_day(
    billing_db,
):
    _run(bill_day, as_of=date(2027, 2, 1), database_block="", documents=False)
    run_id, _ = _run(bill_day, as_of=date(2027, 2, 28), database_block="", documents=False)
    [summary] = [a for a in run_artifacts(run_id) if a["key"] == "bill-day-run-summary"]
    text = summary["data"]
    # Feb 28 bills only B: [Jan 31, Feb 28) 28.00 in arrears + usage 10 x 0.50 = 33.00,
    # VAT 20% 6.60, gross 39.60 (tests/billing/test_billday.py).
    assert "| GBP | 1 | 33.00 GBP | 6.60 GBP | 39.60 GBP |" in text
    assert "| EUR |" not in text.split("## Counts per step")[0]
    # The Feb 15 cancellation of A's PRO runs in this run (deferred action, then cycle fees).
    assert "| deferred actions | done | 1 |" in text
    assert "| billing | bills | 1 |" in text
    assert "| numbering | bills numbered | 1 |" in text
    assert "| cycle fees | items cancelled | 1 |" in text
    assert f"| checks | passed | {len(RULES)} |" in text
    # Against Feb 1 (EUR 1 bill 199.20; GBP 1 bill 17.34): EUR -1 and -199.20; GBP the same
    # count and 39.60 - 17.34 = +22.26.
    assert "Previous run: bill-day 2027-02-01." in text
    assert "| EUR | 0 | 1 | -1 | 0.00 EUR | 199.20 EUR | -199.20 EUR |" in text
    assert "| GBP | 1 | 1 | 0 | 39.60 GBP | 17.34 GBP | +22.26 GBP |" in text


def test_the_data_docs_link_uses_files_url_and_is_plain_text_without_it(billing_db):
    from blocks.bill_run_settings import BillRunSettings

    BillRunSettings(files_url="http://127.0.0.1:4201/").save("files-test", overwrite=True)
    run_id, _ = _run(
        bill_day,
        as_of=date(2027, 2, 1),
        database_block="",
        settings_block="files-test",
        documents=False,
    )
    docs = {a["key"]: a["data"] for a in run_artifacts(run_id)}["post-billing-data-docs"]
    link = re.search(r"\((http://[^)]+)\)", docs)
    assert link, docs
    assert re.fullmatch(
        rf"http://127\.0\.0\.1:4201/output/2027-02-01/{run_id}/data_docs/index\.html",
        link.group(1),
    )
    # The default settings have no files_url: the path as text, never a file:// link.
    plain_id, _ = _run(bill_day, as_of=date(2027, 2, 1), database_block="", documents=False)
    plain = {a["key"]: a["data"] for a in run_artifacts(plain_id)}["post-billing-data-docs"]
    assert "http" not in plain and "file://" not in plain
    assert f"var/output/2027-02-01/{plain_id}/data_docs/index.html" in plain


def test_daemon_artifacts_read_as_figures_and_runs_are_named_by_process_now(daemon_db):  # noqa: F811
    runs = [
        _run(uti_schedule_generator, process_now=PROCESS_NOW, database_block=""),
        _run(billing, process_now=PROCESS_NOW, database_block=""),
        _run(contract_change_process, process_now=PROCESS_NOW, database_block=""),
        _run(contract_item_renewal, process_now=PROCESS_NOW, database_block=""),
        _run(invoice_email_sender, process_now=PROCESS_NOW, database_block=""),
        _run(revrec_summary_journal, year=2027, month=1, database_block=""),
    ]
    names = [flow_run(run_id)["name"] for run_id, _ in runs]
    assert names == [
        "uti-schedule-generator 2027-01-12 12:00",
        "billing 2027-01-12 12:00",
        "contract-change-process 2027-01-12 12:00",
        "contract-item-renewal 2027-01-12 12:00",
        "invoice-email-sender 2027-01-12 12:00",
        "revrec-summary-journal 2027-01",
    ]
    for run_id, _ in runs:
        _check_artifacts(run_id)
    billed = {
        row["measure"]: row["value"]
        for a in run_artifacts(runs[1][0])
        if a["key"] == "billing-daemon-summary"
        for row in json.loads(a["data"])
    }
    # 14 UTI units x 0.50 = 7.00 + 20% VAT = 8.40 (test_daemons).
    assert (billed["total EUR"], billed["process_now"]) == ("8.40 EUR", "2027-01-12 12:00")


def _scheduled_run(flow, when: datetime, **parameters):
    """A flow run created as a schedule would (Scheduled at ``when``), then run here."""
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(
            flow, parameters=parameters, state=Scheduled(scheduled_time=when)
        )
    state = run_flow_sync(flow, flow_run=created, parameters=parameters, return_type="state")
    assert state.is_completed(), state
    return created.id, state.result()


def test_a_scheduled_bill_day_without_as_of_runs_as_of_its_scheduled_date(billing_db):
    # Scheduled for Nov 30, 01:00 UTC (and started later): as_of is Nov 30, not today.
    run_id, summary = _scheduled_run(
        bill_day, datetime(2026, 11, 30, 1, 0, tzinfo=UTC), database_block="", documents=False
    )
    assert summary["as_of"] == date(2026, 11, 30)
    assert summary["bills"] == 0
    assert flow_run(run_id)["name"] == "bill-day 2026-11-30"


def test_a_scheduled_daemon_without_process_now_runs_at_its_scheduled_moment(daemon_db):  # noqa: F811
    run_id, summary = _scheduled_run(
        contract_change_process, datetime(2026, 11, 30, 0, 5, tzinfo=UTC), database_block=""
    )
    assert summary["process_now"] == datetime(2026, 11, 30, 0, 5)
    assert flow_run(run_id)["name"] == "contract-change-process 2026-11-30 00:05"


def test_totals_are_decimal(billing_db):
    summary = bill_day(as_of=date(2027, 2, 1), dry_run=True, database_block="")
    assert summary["total EUR"] == Decimal("199.20")


def test_a_progress_update_the_server_refuses_is_a_warning_not_a_failed_run(caplog):
    """The bar is for the operator: the server refusing an update (here the artifact is gone,
    404) leaves a warning in the run's log, and the run goes on."""
    from uuid import uuid4

    from prefect import flow

    from flows.report import RunProgress

    @flow
    def reports_progress() -> str:
        progress = RunProgress("test-progress", "Test", [("only", 1)])
        progress.id = uuid4()  # an artifact the server does not have
        progress.step("only")
        progress.done()
        return "went on"

    assert reports_progress() == "went on"
    assert "progress bar not updated" in caplog.text
