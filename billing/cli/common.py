"""Helpers shared by the CLI commands: the engine, dates, and error reporting."""

from __future__ import annotations

from datetime import date

import typer
from rich.console import Console
from sqlalchemy import Engine

from billing.db import make_engine

console = Console()
err_console = Console(stderr=True)

DatabaseOption = typer.Option(
    None, "--database", "-d", envvar="BILLING_DATABASE_URL", help="Database URL."
)


def engine_for(url: str | None) -> Engine:
    return make_engine(url)


def parse_date(value: str | None, *, default_today: bool = True) -> date | None:
    """A YYYY-MM-DD date; the CLI is the edge where 'not given' may become today."""
    if value is None:
        return date.today() if default_today else None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)
