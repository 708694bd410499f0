"""``billing check``: run the post-billing accuracy checks and build their Data Docs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from billing.cli.app import app
from billing.cli.common import DatabaseOption, console, engine_for, parse_date

if TYPE_CHECKING:
    from expectations.runner import CheckReport


def check_command(
    as_of: str = typer.Option(None, "--as-of", help="The run's date, YYYY-MM-DD (default today)."),
    database: str | None = DatabaseOption,
    output: Path = typer.Option(
        None, "--output", "-o", help="Directory for the Data Docs (default: a new temp dir)."
    ),
) -> None:
    """Check the billed data (BRM post-billing queries); exit 1 when a check fails."""
    from expectations.runner import run_post_billing_checks  # GE takes seconds to import

    run_date = parse_date(as_of)
    assert run_date is not None  # parse_date falls back to today
    output_dir = output or Path(tempfile.mkdtemp(prefix=f"billing-check-{run_date}-"))
    engine = engine_for(database)
    try:
        report = run_post_billing_checks(engine, run_date, output_dir)
    finally:
        engine.dispose()
    print_report(report)
    if not report.success:
        raise typer.Exit(1)


def print_report(report: CheckReport) -> None:
    title = f"post-billing checks as of {report.as_of}"
    table = Table("expectation", "success", "unexpected", title=title)
    for result in report.results:
        count = "error" if result.unexpected_count is None else str(result.unexpected_count)
        mark = "[green]yes[/green]" if result.success else "[red]no[/red]"
        table.add_row(result.name, mark, count)
    console.print(table)
    for result in report.failed:
        if result.error:
            console.print(f"[red]{result.name}[/red]: {result.error}", soft_wrap=True)
    console.print(f"Data Docs: {report.data_docs}", soft_wrap=True, highlight=False)


def register(target: typer.Typer = app) -> None:
    """Add ``check`` to the ``billing`` app (once, however often this is called)."""
    if not any(command.name == "check" for command in target.registered_commands):
        target.command("check")(check_command)


register()
