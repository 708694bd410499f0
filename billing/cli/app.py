"""The ``billing`` command-line application and its sub-command groups."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="openbill: bill accounts, issue invoices, collect and close the books.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
export_app = typer.Typer(help="Export billing data.", no_args_is_help=True)
run_app = typer.Typer(
    help="Run a job (bill day or a daemon) once, for a chosen date.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(export_app, name="export")
app.add_typer(run_app, name="run")
