"""The ``billing`` command: the engine's CLI plus ``billing run``, which starts flows.

It lives in flows/ because running a job means running its Prefect flow; billing/ stays
free of Prefect.
"""

from __future__ import annotations

import os

import typer
from rich.table import Table

from billing.cli import app
from billing.cli.app import run_app
from billing.cli.common import console, fail, parse_date

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import expectations.cli  # noqa: F401,E402  (registers billing check)


def _database_block_fallback(database: str | None) -> None:
    """``--database`` wins over any block: the flows fall back to BILLING_DATABASE_URL."""
    if database:
        os.environ["BILLING_DATABASE_URL"] = database


@run_app.command("bill-day")
def run_bill_day(
    as_of: str = typer.Option(None, "--as-of", help="The run's date, YYYY-MM-DD (default today)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be billed."),
    account: list[str] = typer.Option(None, "--account", help="Only this account ref (repeat)."),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """BRM pin_bill_day: bill due accounts, number invoices, cycle fees."""
    from flows.bill_day import BillDayFailed, bill_day

    _database_block_fallback(database)
    try:
        summary = bill_day(
            as_of=parse_date(as_of),
            dry_run=dry_run,
            accounts=account or None,
            database_block="" if database else "default",
        )
    except BillDayFailed as error:
        fail(str(error))
        return
    table = Table("measure", "value", title="bill day")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)


__all__ = ["app"]
