"""``billing export``: invoices as JSON or CSV."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from billing.cli.app import export_app
from billing.cli.common import DatabaseOption, engine_for, err_console
from billing.db import unit_of_work
from billing.export import write_csv, write_json


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


@export_app.command("invoices")
def export_invoices(
    format: Format = typer.Option(Format.JSON, "--format", "-f", help="json or csv."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
    database: str | None = DatabaseOption,
) -> None:
    """Numbered invoices with their lines (bill number, account, period, amounts)."""
    writer = write_json if format is Format.JSON else write_csv
    with unit_of_work(engine_for(database)) as session:
        if output is None:
            count = writer(session, sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                count = writer(session, out)
    err_console.print(f"exported {count} invoices")
