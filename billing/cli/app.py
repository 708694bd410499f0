"""The ``billing`` command-line application and its sub-command groups.

An operator never sees a traceback: a ``BillingError`` (bad database URL, no schema, server
down, unknown account) or a database error ends the command with one line on stderr and exit
code 1; any other exception ends it the same way, with its type. ``billing --debug ...`` (or
``BILLING_DEBUG=1``) lets the exception through, traceback and all.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import Abort, Exit, TyperException

from billing.domain.errors import BillingError

ERROR_EXIT = 1


class Options:
    """The root options a command may need to know about (set by the root callback)."""

    debug = False


def one_line(error: BaseException) -> str:
    """An exception as one line: its message (or type), whitespace runs folded.

    A database error says what the driver said, without SQLAlchemy's statement and link.
    """
    from sqlalchemy.exc import DBAPIError

    if isinstance(error, DBAPIError):
        return "database error: " + " ".join(str(error.orig).split())
    text = " ".join(str(error).split())
    if isinstance(error, BillingError):
        return text
    name = type(error).__name__
    return f"{name}: {text}" if text else name


class OperatorGroup(TyperGroup):
    """The root group: turns an uncaught exception into one line on stderr unless --debug."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (TyperException, Exit, Abort):
            raise
        except Exception as error:
            if ctx.params.get("debug"):
                raise
            from rich.markup import escape

            from billing.cli.common import err_console

            hint = "" if isinstance(error, BillingError) else " (--debug shows where)"
            err_console.print(
                f"[red]error:[/red] {escape(one_line(error))}{hint}",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )
            raise Exit(ERROR_EXIT) from None


app = typer.Typer(
    cls=OperatorGroup,
    help="openbill: bill accounts, issue invoices, collect and close the books.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    debug: bool = typer.Option(
        False,
        "--debug",
        envvar="BILLING_DEBUG",
        help="Show the traceback of an error instead of one line.",
    ),
) -> None:
    """openbill: bill accounts, issue invoices, collect and close the books."""
    Options.debug = debug


db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
export_app = typer.Typer(help="Export billing data.", no_args_is_help=True)
show_app = typer.Typer(help="Look at one record and everything about it.", no_args_is_help=True)
run_app = typer.Typer(
    help="Run a job (bill day or a daemon) once, for a chosen date.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(export_app, name="export")
app.add_typer(show_app, name="show")
app.add_typer(run_app, name="run")
