"""Helpers shared by the CLI commands: the engine, dates, and error reporting."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine

from billing.store.db import check_schema, is_empty, open_database

console = Console()
if not console.is_terminal and "COLUMNS" not in os.environ:
    console = Console(width=160)  # a report piped to a file or a pager is not cut at 80
err_console = Console(stderr=True)

DatabaseOption = typer.Option(
    None, "--database", "-d", envvar="BILLING_DATABASE_URL", help="Database URL."
)


def engine_for(url: str | None, *, create: bool = False, read_only: bool = False) -> Engine:
    """An engine on a database at the latest schema, or one line on stderr and exit 1.

    ``create`` is for the commands that may start a database (``billing import``, ``seed``):
    a missing SQLite file or an empty database gets the schema; a database with an older
    schema still asks for ``billing db upgrade``. ``read_only`` is for reports: their SQLite
    transactions never take (or wait for) the write lock a bill run holds.
    """
    engine = open_database(url, create=create, read_only=read_only)
    if create and is_empty(engine):
        from billing.store.migrate import upgrade

        upgrade(engine)
    check_schema(engine)
    return engine


def parse_date(value: str | None, *, default_today: bool = True) -> date | None:
    """A YYYY-MM-DD date; the CLI is the edge where 'not given' may become today."""
    if value is None:
        return date.today() if default_today else None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def readable_file(path: Path) -> Path:
    """``path`` if it is a file; else one line on stderr and exit code 2."""
    if not path.is_file():
        fail(f"{escape(str(path))}: no such file", code=2)
    return path
