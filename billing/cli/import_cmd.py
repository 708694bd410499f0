"""``billing import FILE``: load a JSON master-data file or a CSV usage file in one transaction."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from billing.cli.app import app
from billing.cli.common import DatabaseOption, console, engine_for, fail, readable_file
from billing.domain.errors import ImportFileError
from billing.store.db import unit_of_work

if TYPE_CHECKING:
    from billing.ingest.importer import ImportReport

TargetArgument = typer.Argument(
    ...,
    metavar="FILE | payments FILE",
    help="A .json or .csv file (docs/data-formats.md), or 'payments' and a bank statement CSV.",
)


@app.command("import")
def import_command(
    target: str = TargetArgument,
    statement: Path | None = typer.Argument(None, metavar="[FILE]", show_default=False),
    database: str | None = DatabaseOption,
) -> None:
    """Import FILE in one transaction, or nothing (exit code 2); or ``payments FILE``."""
    if target == "payments":
        if statement is None:
            fail("billing import payments FILE: name the bank statement CSV", code=2)
            return
        from billing.cli.payment_cmd import import_command as import_payments

        import_payments(file=readable_file(statement), database=database)
        return
    if statement is not None:
        fail(f"unexpected second argument {escape(str(statement))!r}", code=2)
    from billing.ingest.importer import import_file  # pandas: loaded only when importing
    from billing.ingest.importer_csv import source_label

    file = readable_file(Path(target))
    engine = engine_for(database, create=True)
    try:
        with unit_of_work(engine) as session:
            report = import_file(session, file)
    except ImportFileError as error:
        fail(f"[red]{escape(str(error))}[/red]\nnothing was imported", code=2)
    console.print(report_table(report))
    if report.rejected:
        console.print(
            f"{report.rejected} usage row(s) rejected, kept in table rejected_usage "
            f"with source {escape(source_label(file))!r}"
        )


def report_table(report: ImportReport) -> Table:
    """The import report as a table: one row per kind of record."""
    table = Table(title=f"import {escape(report.source)}")
    for column in ("kind", "inserted", "unchanged", "rejected"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, counts in report.ordered():
        table.add_row(kind, str(counts.inserted), str(counts.unchanged), str(counts.rejected))
    return table
