"""``billing export journal``: a month's RevRec summary journal as CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from billing.cli.app import export_app
from billing.cli.common import DatabaseOption, engine_for, err_console, fail
from billing.domain.errors import BillingError
from billing.store.db import unit_of_work


@export_app.command("journal")
def export_journal(
    year: int = typer.Option(..., "--year", help="Year of the month."),
    month: int = typer.Option(..., "--month", help="Month, 1..12."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
    database: str | None = DatabaseOption,
) -> None:
    """The month's summary journal entries (account, product, currency, debit, credit)."""
    from billing.ops.revrec import write_journal_csv  # numpy: loaded only when exporting

    try:
        with unit_of_work(engine_for(database, read_only=True)) as session:
            if output is None:
                count = write_journal_csv(session, year, month, sys.stdout)
            else:
                with output.open("w", encoding="utf-8", newline="") as out:
                    count = write_journal_csv(session, year, month, out)
    except BillingError as error:
        fail(str(error))
        return
    err_console.print(f"exported {count} journal entries for {year:04d}-{month:02d}")
