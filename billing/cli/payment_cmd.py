"""``billing payment``: record payments received, import bank statements, settle debits."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from billing.cli.app import app
from billing.cli.common import (
    DatabaseOption,
    console,
    engine_for,
    fail,
    parse_date,
    readable_file,
)
from billing.payments.errors import PaymentRecordError
from billing.store.db import unit_of_work

payment_app = typer.Typer(
    help="Payments: record, import a bank statement, settle or return debits.",
    no_args_is_help=True,
)
app.add_typer(payment_app, name="payment")

DateOption = typer.Option(..., "--date", help="When the bank booked it, YYYY-MM-DD.")
ReferenceOption = typer.Option(..., "--reference", help="The bank's or the debit's reference.")


@payment_app.command("record")
def record_command(
    account: str = typer.Option(..., "--account", help="The paying account's ref."),
    amount: str = typer.Option(..., "--amount", help="The amount received, e.g. 120.50."),
    currency: str = typer.Option(..., "--currency", help="ISO 4217 code; the account's."),
    date_: str = DateOption,
    reference: str = ReferenceOption,
    bill: str = typer.Option(None, "--bill", help="Apply to this bill number first."),
    database: str | None = DatabaseOption,
) -> None:
    """Record a payment received; a reference already recorded changes nothing."""
    from billing.payments.statement import parse_amount, record_bank_payment

    received_on = parse_date(date_)
    assert received_on is not None
    try:
        with unit_of_work(engine_for(database)) as session:
            outcome = record_bank_payment(
                session,
                reference=reference,
                account_ref=account,
                amount=parse_amount(amount, currency.upper()),
                currency=currency.upper(),
                received_on=received_on,
                bill_no=bill,
            )
    except PaymentRecordError as error:
        fail(escape(str(error)), code=2)
        return
    console.print(f"payment {escape(reference)}: {outcome}")


@payment_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="The bank statement CSV."),
    database: str | None = DatabaseOption,
) -> None:
    """Import a bank-statement CSV: reference, account_ref, amount, currency, date[, bill_no]."""
    from billing.payments.statement import import_payments_csv

    readable_file(file)
    try:
        with unit_of_work(engine_for(database)) as session:
            report = import_payments_csv(session, file)
    except PaymentRecordError as error:
        fail(f"{escape(str(error))}\nnothing was imported", code=2)
        return
    table = Table("outcome", "lines", title=f"payments from {escape(file.name)}")
    table.add_row("recorded", str(report.inserted))
    table.add_row("debits settled", str(report.settled))
    table.add_row("unchanged", str(report.unchanged))
    table.add_row("rejected", str(len(report.rejected)))
    console.print(table)
    for number, reason in report.rejected:
        console.print(f"line {number}: {escape(reason)}")


@payment_app.command("settle")
def settle_command(reference: str = ReferenceOption, database: str | None = DatabaseOption) -> None:
    """The bank confirmed a direct debit or a refund transfer: settle and apply it."""
    from billing.payments.statement import settle_reference

    try:
        with unit_of_work(engine_for(database)) as session:
            outcome = settle_reference(session, reference)
    except PaymentRecordError as error:
        fail(escape(str(error)), code=2)
        return
    console.print(f"{escape(reference)}: {outcome}")


@payment_app.command("return")
def return_command(
    reference: str = ReferenceOption,
    date_: str = DateOption,
    reason: str = typer.Option("returned", "--reason", help="The bank's reason code (AC04...)."),
    retry_days: str = typer.Option(
        None, "--retry-days", help="Days between retries, e.g. 3,7,14 (default: the policy's)."
    ),
    database: str | None = DatabaseOption,
) -> None:
    """The bank returned a direct debit: it failed and is retried on the schedule."""
    from billing.payments.config import DEFAULT_RETRY_DAYS, RetryPolicy
    from billing.payments.statement import return_debit

    returned_on = parse_date(date_)
    assert returned_on is not None
    days: tuple[int, ...] = DEFAULT_RETRY_DAYS
    if retry_days is not None:
        days = tuple(int(d) for d in retry_days.split(",") if d.strip())
    policy = RetryPolicy(days)
    try:
        with unit_of_work(engine_for(database)) as session:
            outcome = return_debit(
                session, reference, returned_on=returned_on, reason=reason, retry=policy
            )
    except PaymentRecordError as error:
        fail(escape(str(error)), code=2)
        return
    console.print(f"{escape(reference)}: {outcome}")
