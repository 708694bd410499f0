"""``billing credit-note``: issue a credit note on an issued invoice, by hand."""

from __future__ import annotations

import typer
from rich.markup import escape

from billing.cli.app import app
from billing.cli.common import DatabaseOption, console, engine_for, fail, parse_date
from billing.domain.credit_notes import CreditNoteError, parse_lines
from billing.store.db import unit_of_work


@app.command("credit-note")
def credit_note_command(
    bill: str = typer.Option(..., "--bill", help="The invoice's number, e.g. INV-00000012."),
    lines: str | None = typer.Option(
        None,
        "--lines",
        help="The lines to credit: 1,3 (what remains of each) or 2=10.00 (a net amount).",
    ),
    all_: bool = typer.Option(
        False, "--all", help="Credit everything that remains of the invoice: void it."
    ),
    reason: str = typer.Option(..., "--reason", help="Why; printed on the credit note."),
    date_: str | None = typer.Option(
        None, "--date", help="The credit note's date, YYYY-MM-DD (default: today)."
    ),
    database: str | None = DatabaseOption,
) -> None:
    """Issue a credit note (CN series, type 381) on an invoice; the invoice is never edited.

    It is applied to the account's open bills, the invoice first; what is left is refunded by
    the next bill day. Refused, naming the invoice and the line, when it would credit more
    than remains un-credited: nothing is written then.
    """
    from billing.ops.credit_notes import issue_credit_note

    if all_ == (lines is not None):
        fail("give either --lines or --all", code=2)
    as_of = parse_date(date_)
    assert as_of is not None
    try:
        wanted = None if all_ else parse_lines(lines or "")
        with unit_of_work(engine_for(database)) as session:
            issued = issue_credit_note(
                session, invoice_no=bill, lines=wanted, reason=reason, as_of=as_of
            )
    except CreditNoteError as error:
        fail(f"{escape(str(error))}\nnothing was issued", code=2)
        return
    left = issued.gross - issued.applied
    console.print(
        f"credit note {escape(issued.bill_no)} on invoice {escape(issued.invoice_no)} "
        f"(account {escape(issued.account_ref)}): {issued.lines} line(s), "
        f"{issued.net} net + {issued.tax} VAT = {issued.gross} {issued.currency}",
        highlight=False,
    )
    console.print(
        f"applied to open bills: {issued.applied} {issued.currency}; "
        f"credit left for the refund step: {left} {issued.currency}",
        highlight=False,
    )
    console.print(
        "documents and e-mail: the next bill day, or now with "
        f"billing run render-invoices --bill-no {escape(issued.bill_no)}",
        highlight=False,
    )
