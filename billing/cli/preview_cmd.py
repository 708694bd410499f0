"""``billing preview``: the next bill of one account, as bill day would make it, written nowhere.

The preview bills the account through the real bill-run path in a transaction it rolls back
(``billing.ops.preview``): what it prints is what bill day bills for the account on that date.
``--pdf`` writes the bill's PDF marked "PREVIEW — not an invoice" on every page, without a
number and without the Factur-X XML. The VAT rules and the seller printed are the demo
seller's (``billing.documents.seller.DEFAULT_SELLER``); the ``preview`` flow uses the blocks.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from billing.cli.app import app
from billing.cli.common import DatabaseOption, console, engine_for, err_console, fail, parse_date
from billing.ops.preview import (
    preview_account,
    preview_rows,
    preview_summary,
    preview_totals,
)

RIGHT = {"#", "quantity", "unit price", "net", "tax", "gross", "lines"}


def _table(title: str, rows: list[dict[str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in rows[0]:
        table.add_column(
            column,
            justify="right" if column in RIGHT else "left",
            no_wrap=column != "description",
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(escape(value) for value in row.values()))
    return table


@app.command("preview")
def preview_command(
    account: str = typer.Option(..., "--account", help="The account's ref."),
    as_of: str = typer.Option(
        None, "--as-of", help="The bill day to preview, YYYY-MM-DD (default today)."
    ),
    pdf: Path = typer.Option(
        None, "--pdf", help="Also write the bill's PDF, marked as a preview, to this file."
    ),
    database: str | None = DatabaseOption,
) -> None:
    """The lines and totals bill day would bill for one account on a date; writes nothing."""
    run_date = parse_date(as_of)
    assert run_date is not None  # parse_date falls back to today
    engine = engine_for(database)
    try:
        preview = preview_account(engine, account, run_date, documents=pdf is not None)
    finally:
        engine.dispose()
    if preview.bills:
        console.print(_table(f"Preview of account {escape(account)}: lines",
                             preview_rows(preview)), highlight=False)  # fmt: skip
        console.print(_table("Totals", preview_totals(preview)), highlight=False)
    if preview.failed:
        fail(escape(preview_summary(preview)))
    console.print(escape(preview_summary(preview)), highlight=False, soft_wrap=True)
    if pdf is not None and preview.invoices:
        from billing.documents.render import write_previews  # WeasyPrint: only when asked
        from billing.documents.seller import DEFAULT_SELLER

        try:
            paths = write_previews(preview.invoices, pdf, DEFAULT_SELLER)
        except OSError as error:
            fail(escape(f"{error.filename or pdf}: cannot write: {error.strerror or error}"))
            return
        for path in paths:
            err_console.print(f"wrote {escape(str(path))}", highlight=False)
