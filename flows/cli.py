"""The ``billing`` command: the engine's CLI plus ``billing run``, which starts flows.

It lives in flows/ because running a job means running its Prefect flow; billing/ stays
free of Prefect.
"""

from __future__ import annotations

import os
from datetime import datetime

import typer
from rich.table import Table

from billing.cli import app
from billing.cli.app import run_app
from billing.cli.common import console, fail, parse_date

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import expectations.cli  # noqa: F401,E402  (registers billing check)


def _database_block_fallback(database: str | None) -> None:
    """``--database`` wins over any block: the flows fall back to BILLING_DATABASE_URL."""
    if database:
        os.environ["BILLING_DATABASE_URL"] = database


@run_app.command("bill-day")
def run_bill_day(
    as_of: str = typer.Option(None, "--as-of", help="The run's date, YYYY-MM-DD (default today)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be billed."),
    account: list[str] = typer.Option(None, "--account", help="Only this account ref (repeat)."),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """BRM pin_bill_day: bill due accounts, number invoices, cycle fees."""
    from flows.bill_day import BillDayFailed, bill_day

    _database_block_fallback(database)
    try:
        summary = bill_day(
            as_of=parse_date(as_of),
            dry_run=dry_run,
            accounts=account or None,
            database_block="" if database else "default",
        )
    except BillDayFailed as error:
        fail(str(error))
        return
    table = Table("measure", "value", title="bill day")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)


PROCESS_NOW_HELP = (
    'Cn285 "Process Now": when the daemon runs, YYYY-MM-DD[THH:MM[:SS]] in UTC (default now).'
)


def parse_process_now(value: str | None) -> datetime | None:
    """A date or date-time; None stays None (the flow turns it into now)."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date or date-time (YYYY-MM-DDTHH:MM)"
        ) from exc


def _run_daemon(module: str, name: str, process_now: str | None, database: str | None) -> None:
    """Run a daemon flow once, for a chosen Process Now, and print its summary."""
    from importlib import import_module

    from flows.runtime import DaemonFailed

    moment = parse_process_now(process_now)
    daemon = getattr(import_module(module), name)
    _database_block_fallback(database)
    try:
        summary = daemon(process_now=moment, database_block="" if database else "default")
    except DaemonFailed as error:
        fail(str(error))
        return
    table = Table("measure", "value", title=name.replace("_", " "))
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)


@run_app.command("contract-change-process")
def run_contract_change_process(
    process_now: str = typer.Option(None, "--process-now", help=PROCESS_NOW_HELP),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """Cn285 Contract Change Process: apply the change requests due (quantity, price, swap, end)."""
    _run_daemon("flows.contract_change_process", "contract_change_process", process_now, database)


@run_app.command("contract-item-renewal")
def run_contract_item_renewal(
    process_now: str = typer.Option(None, "--process-now", help=PROCESS_NOW_HELP),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """Cn285 Contract Item Renewal: renew or end contracts, forecast the new term's IS."""
    _run_daemon("flows.contract_item_renewal", "contract_item_renewal", process_now, database)


@run_app.command("uti-schedule-generator")
def run_uti_schedule_generator(
    process_now: str = typer.Option(None, "--process-now", help=PROCESS_NOW_HELP),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """Cn285 UTI Schedule Generator: collect UTI usage into calculated IS lines."""
    _run_daemon("flows.uti_schedule_generator", "uti_schedule_generator", process_now, database)


@run_app.command("billing")
def run_billing_daemon(
    process_now: str = typer.Option(None, "--process-now", help=PROCESS_NOW_HELP),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """Cn285 Billing daemon: invoice the Invoicing Schedules due (bill day's billing + numbers)."""
    _run_daemon("flows.billing_daemon", "billing", process_now, database)


@run_app.command("revrec")
def run_revrec(
    year: int = typer.Option(None, "--year", help="Year (default: last month's)."),
    month: int = typer.Option(None, "--month", help="Month 1..12 (default: last month)."),
    post: bool = typer.Option(False, "--post", help="Post (lock) the month after writing it."),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """Cn285 RevRec Summary Journal: recognize revenue by day, write (and post) a month."""
    from billing.errors import BillingError
    from flows.revrec_summary_journal import revrec_summary_journal
    from flows.runtime import DaemonFailed

    _database_block_fallback(database)
    try:
        summary = revrec_summary_journal(
            year=year, month=month, post=post, database_block="" if database else "default"
        )
    except (BillingError, DaemonFailed) as error:
        fail(str(error))
        return
    table = Table("measure", "value", title="revrec summary journal")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)


@run_app.command("invoice-email-sender")
def run_invoice_email_sender(
    process_now: str = typer.Option(None, "--process-now", help=PROCESS_NOW_HELP),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """Cn285 Invoice Email Sender: e-mail the queued invoices with their Factur-X PDF."""
    _run_daemon("flows.invoice_email_sender", "invoice_email_sender", process_now, database)


@run_app.command("render-invoices")
def run_render_invoices(
    bill_no: list[str] = typer.Option(None, "--bill-no", help="Only this bill number (repeat)."),
    date_from: str = typer.Option(None, "--from", help="First bill date, YYYY-MM-DD."),
    date_to: str = typer.Option(None, "--to", help="Last bill date, YYYY-MM-DD."),
    processes: int = typer.Option(None, "--processes", help="Worker processes (default: CPUs)."),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """Render invoice documents (XML, Factur-X PDF) again, by bill numbers or bill dates."""
    from flows.document_steps import DocumentsFailed
    from flows.render_invoices import render_invoices

    if not bill_no and date_from is None and date_to is None:
        fail("name the invoices: --bill-no, or --from / --to")
        return
    _database_block_fallback(database)
    try:
        summary = render_invoices(
            bill_nos=bill_no or None,
            date_from=parse_date(date_from, default_today=False),
            date_to=parse_date(date_to, default_today=False),
            processes=processes,
            database_block="" if database else "default",
        )
    except DocumentsFailed as error:
        fail(str(error))
        return
    table = Table("measure", "value", title="render invoices")
    for key, value in summary.items():
        table.add_row(key, str(value if key != "failed" else len(value)))
    console.print(table)


__all__ = ["app"]
