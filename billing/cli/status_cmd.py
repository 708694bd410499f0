"""``billing status``: how many rows sit in each state, one table per kind of row.

Billing issues count as ``open`` exactly when ``billing issues`` lists them; ``retried`` are
unresolved bill issues of a unit billed since.
"""

from __future__ import annotations

import enum

from rich.table import Table
from sqlalchemy import Connection, case, func, select
from sqlalchemy.orm import InstrumentedAttribute

from billing.cli.app import app
from billing.cli.common import DatabaseOption, console, engine_for
from billing.ops.rating import uncovered
from billing.ops.views import issue_is_current
from billing.store.models import (
    Account,
    AccountStatus,
    Bill,
    BillingIssue,
    BillingState,
    BillStatus,
    BillUnit,
    Charge,
    ChargeStatus,
    RejectedUsage,
    UsageRecord,
    UsageStatus,
)

STATES: tuple[tuple[str, InstrumentedAttribute[enum.Enum], type[enum.Enum]], ...] = (
    ("Accounts", Account.status, AccountStatus),
    ("Bill units", BillUnit.billing_state, BillingState),
    ("Charges", Charge.status, ChargeStatus),
    ("Bills", Bill.status, BillStatus),
)


def count_states(conn: Connection) -> dict[str, dict[str, int]]:
    """Rows per state for each kind of row (every state listed, zeros included)."""
    counts: dict[str, dict[str, int]] = {}
    for title, column, states in STATES:
        found = dict(conn.execute(select(column, func.count()).group_by(column)).tuples().all())
        counts[title] = {state.value: found.get(state, 0) for state in states}
    counts["Usage"] = count_usage(conn)
    rejected = conn.execute(select(func.count()).select_from(RejectedUsage)).scalar_one()
    counts["Rejected usage"] = {"rows": rejected}
    state = case(
        (BillingIssue.resolved.is_(True), "resolved"),
        (issue_is_current(), "open"),
        else_="retried",
    )
    issues = dict(
        conn.execute(
            select(state, func.count())
            .select_from(BillingIssue)
            .outerjoin(BillUnit, BillUnit.id == BillingIssue.bill_unit_id)
            .group_by(state)
        )
        .tuples()
        .all()
    )
    counts["Billing issues"] = {k: issues.get(k, 0) for k in ("open", "retried", "resolved")}
    return counts


def count_usage(conn: Connection) -> dict[str, int]:
    """Usage records per state: ``collected`` (a charge prices it: by range, or by key for
    records rated before ranges), ``pending`` (none does yet) and ``held``
    (``billing.store.usage``)."""
    state = case(
        (UsageRecord.status != UsageStatus.PENDING, UsageRecord.status),
        (uncovered(), UsageStatus.PENDING.value),
        else_=UsageStatus.COLLECTED.value,
    )
    found = dict(conn.execute(select(state, func.count()).group_by(state)).tuples().all())
    return {s.value: found.get(s.value, 0) for s in UsageStatus}


@app.command("status")
def status_command(database: str | None = DatabaseOption) -> None:
    """Show row counts per state: accounts, bill units, charges, usage, bills and issues."""
    engine = engine_for(database, read_only=True)
    with engine.connect() as conn:
        counts = count_states(conn)
    for title, by_state in counts.items():
        table = Table(title=title, title_justify="left")
        table.add_column("state")
        table.add_column("count", justify="right")
        for state, count in by_state.items():
            table.add_row(state, str(count))
        console.print(table)
