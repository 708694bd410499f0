"""``billing export``: invoices as JSON or CSV; commercial terms as JSON (the import format)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.markup import escape

from billing.cli.app import export_app
from billing.cli.common import DatabaseOption, engine_for, err_console, fail
from billing.ops.export import write_csv, write_json
from billing.ops.views import require_accounts
from billing.store.db import unit_of_work


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


@export_app.command("invoices")
def export_invoices(
    format: Format = typer.Option(Format.JSON, "--format", "-f", help="json or csv."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default stdout)."),
    account: list[str] = typer.Option(None, "--account", help="Only this account ref (repeat)."),
    database: str | None = DatabaseOption,
) -> None:
    """Numbered invoices with their lines (bill number, account, period, amounts)."""
    writer = write_json if format is Format.JSON else write_csv
    refs = account or None
    with unit_of_work(engine_for(database, read_only=True)) as session:
        require_accounts(session, refs or [])
        if output is None:
            count = writer(session, sys.stdout, accounts=refs)
        else:
            try:
                out = output.open("w", encoding="utf-8", newline="")
            except OSError as error:
                fail(escape(f"{output}: cannot write: {error.strerror}"))
                return
            with out:
                count = writer(session, out, accounts=refs)
    err_console.print(f"exported {count} invoices")


@export_app.command("terms")
def export_terms(
    out: Path = typer.Option(
        None, "--out", "--output", "-o", help="File to write (default stdout)."
    ),
    database: str | None = DatabaseOption,
) -> None:
    """Commercial terms (discounts, commitments, usage thresholds, trials) as JSON in the import
    format: `billing import` reads it."""
    from billing.ingest.export_terms import terms_document

    with unit_of_work(engine_for(database, read_only=True)) as session:
        document = terms_document(session)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as error:
            fail(escape(f"{out}: cannot write: {error.strerror}"))
            return
    counts = ", ".join(f"{len(records)} {name}" for name, records in document.items())
    err_console.print(f"exported {counts}")
