"""``billing status`` counts every state exactly, on both databases."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import text, update
from typer.testing import CliRunner

from billing.cli import app
from billing.cli.status_cmd import count_states
from billing.ingest.synthetic import seed
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillingIssue,
    BillUnit,
    Charge,
    RejectedUsage,
    UsageRecord,
)

START = date(2026, 3, 1)

EXPECTED = {
    "Accounts": {"active": 27, "inactive": 1, "closed": 2},
    "Bill units": {"ready": 27, "in_progress": 1, "failed": 2, "billed": 0},
    "Charges": {"planned": 1, "calculated": 2, "open": 1, "closed": 0, "cancelled": 0},
    "Usage": {"pending": 110, "collected": 40, "held": 0},
    "Bills": {"billed": 1, "invoiced": 0},
    "Rejected usage": {"rows": 2},
    "Billing issues": {"open": 2, "retried": 0, "resolved": 1},
}


def _charge(key: str, status: str) -> Charge:
    return Charge(
        charge_key=key, account_id=1, bill_unit_id=1, kind="recurring", description=key,
        period_start=START, period_end=date(2026, 3, 31), bill_on=date(2026, 4, 1),
        quantity=Decimal(1), unit_price=Decimal("9.99"), amount=Decimal("9.99"),
        currency="EUR", tax_category="standard", status=status, created_on=START,
    )  # fmt: skip


@pytest.fixture
def known_states(engine):
    """30 seeded accounts, then rows put in known states (seeded states are overwritten)."""
    seed(engine, accounts=30, usage_per_account=5, start=START)
    with unit_of_work(engine) as s:
        s.execute(update(Account).values(status="active"))
        s.execute(update(Account).where(Account.id.in_([1, 2])).values(status="closed"))
        s.execute(update(Account).where(Account.id == 3).values(status="inactive"))
        s.execute(update(BillUnit).where(BillUnit.id.in_([4, 5])).values(
            billing_state="failed", failure_reason="no tax rate"))  # fmt: skip
        s.execute(update(BillUnit).where(BillUnit.id == 6).values(billing_state="in_progress"))
        s.execute(update(UsageRecord).where(UsageRecord.id <= 40).values(status="collected"))
        s.add_all([_charge("c1", "planned"), _charge("c2", "calculated"),
                   _charge("c3", "calculated"), _charge("c4", "open")])  # fmt: skip
        s.add(Bill(
            bill_key="b1", account_id=1, bill_unit_id=1, series_code="INV", bill_date=START,
            due_date=START, period_start=date(2026, 2, 1), period_end=START, currency="EUR",
            net=Decimal(0), tax=Decimal(0), gross=Decimal(0),
        ))  # fmt: skip
        s.add_all([
            RejectedUsage(source="u.csv", row_number=n, raw="x", reason="bad") for n in (1, 2)
        ])  # fmt: skip
        s.add_all([
            BillingIssue(run_id="r1", step="bill", account_id=n, as_of=START, reason="r",
                         resolved=n == 3)
            for n in (1, 2, 3)
        ])  # fmt: skip
    return engine


def parse_tables(output: str) -> dict[str, dict[str, int]]:
    """Rich tables back into {title: {state: count}}: a title line, then │ state │ count │."""
    tables: dict[str, dict[str, int]] = {}
    title = None
    for line in output.splitlines():
        stripped = line.strip()
        if stripped in EXPECTED:
            title = stripped
            tables[title] = {}
        elif stripped.startswith("│") and title is not None:
            state, value = (cell.strip() for cell in stripped.strip("│").split("│"))
            if state != "state":
                tables[title][state] = int(value)
    return tables


def test_count_states_counts_every_state(known_states):
    with known_states.connect() as conn:
        assert count_states(conn) == EXPECTED


def test_count_states_on_an_empty_database_lists_zeros(engine):
    with engine.connect() as conn:
        counts = count_states(conn)
    assert counts["Accounts"] == {"active": 0, "inactive": 0, "closed": 0}
    assert counts["Billing issues"] == {"open": 0, "retried": 0, "resolved": 0}
    assert sum(n for states in counts.values() for n in states.values()) == 0


def test_status_command_prints_the_counts(known_states, db_url):
    result = CliRunner().invoke(app, ["status", "--database", db_url])

    assert result.exit_code == 0, result.output
    assert parse_tables(result.output) == EXPECTED


def test_status_command_reads_the_database_from_the_environment(known_states, db_url):
    with known_states.begin() as conn:
        conn.execute(text("UPDATE usage_records SET status = 'collected'"))

    result = CliRunner().invoke(app, ["status"], env={"BILLING_DATABASE_URL": db_url})

    assert result.exit_code == 0, result.output
    assert parse_tables(result.output)["Usage"] == {"pending": 0, "collected": 150, "held": 0}
