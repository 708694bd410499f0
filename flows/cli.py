"""The ``billing`` command: the engine's CLI plus ``billing run``, which starts flows.

It lives in flows/ because running a job means running its Prefect flow; billing/ stays
free of Prefect. Prefect and Great Expectations take seconds to import, so they load inside
the commands that need them (``run ...``, ``check``): ``billing status`` and the other reports
never import them.

Before a flow starts, ``billing run`` checks what would otherwise fail inside it: the Prefect
server named by ``PREFECT_API_URL`` answers, the database answers at the latest schema, and
every ``--account`` names an account. ``--database`` reaches the flow through
``flows.runtime.database_given`` (the flow runs in this process): nothing here writes
``os.environ``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from billing.cli import app
from billing.cli.app import Options, run_app
from billing.cli.common import DatabaseOption, console, engine_for, err_console, fail, parse_date
from billing.domain.errors import ConfigurationError


class PrefectServerDown(ConfigurationError):
    """PREFECT_API_URL names a server that does not answer, or refuses our credentials."""


def require_prefect_server() -> None:
    """Raise ``PrefectServerDown`` when PREFECT_API_URL is set and its server cannot be used.

    ``/health`` answers without credentials, so ``/hello`` (which needs them when the server
    has an auth string) checks PREFECT_API_AUTH_STRING too. Without PREFECT_API_URL a flow runs
    on a temporary in-process server: nothing to check.
    """
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
        if problem is None:
            try:
                client.hello()
            except httpx.HTTPStatusError as error:
                if error.response.status_code not in (401, 403):
                    raise
                raise PrefectServerDown(
                    f"Prefect server {url} (PREFECT_API_URL) refused the credentials "
                    f"(HTTP {error.response.status_code}): set PREFECT_API_AUTH_STRING to the "
                    "server's user:password"
                ) from None
            return
    reason = " ".join(str(problem).split()) or type(problem).__name__
    raise PrefectServerDown(
        f"Prefect server {url} (PREFECT_API_URL) does not answer: {reason}; "
        "start it (`make server`) or unset PREFECT_API_URL to run without a server"
    )


class _WithoutTraceback(logging.Filter):
    """Keeps a flow-run log record of an expected failure but drops its traceback."""

    def __init__(self, expected: tuple[type[BaseException], ...]):
        super().__init__()
        self.expected = expected

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.expected):
            record.exc_info = None
            record.exc_text = None
        return True


@contextmanager
def expected_failures(*expected: type[BaseException]) -> Iterator[None]:
    """While a flow runs, Prefect logs its exception with a traceback before the command
    prints it as one line; for the failures a run reports on purpose (accounts failed, checks
    failed) the traceback says nothing more, so it is left out unless --debug."""
    logger = logging.getLogger("prefect.flow_runs")
    quiet = _WithoutTraceback(expected)
    if not Options.debug:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _summary_table(title: str) -> Table:
    """A flow's summary: measures and values, values folded rather than cut (file paths)."""
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", overflow="fold")
    return table


def _prepare_run(database: str | None, accounts: list[str] | None = None) -> None:
    """Check the server, the database (schema) and the account refs before a flow starts."""
    from billing.ops.views import require_accounts
    from billing.store.db import unit_of_work
    from flows.runtime import resolve_database_url

    require_prefect_server()
    engine = engine_for(database or resolve_database_url("default"), read_only=True)
    try:
        if accounts:
            with unit_of_work(engine) as session:
                require_accounts(session, accounts)
    finally:
        engine.dispose()


@run_app.callback()
def run_on_the_local_stack(ctx: typer.Context) -> None:
    """Run a job (bill day or a daemon) once, for a chosen date.

    With ``make server`` running and no PREFECT_API_URL given, the run reports to that stack
    (its API and auth string, its blocks): it shows in the UI, on the stack's database.
    """
    from prefect.settings import PREFECT_API_URL

    from flows.stack import connected, local_prefect_settings, local_stack

    ctx.with_resource(local_prefect_settings())
    if PREFECT_API_URL.value():  # a server chosen already (environment, profile, test harness)
        return

    stack = local_stack()
    if stack is not None:
        ctx.with_resource(connected(stack))
        err_console.print(f"on the local stack: {stack.ui_url}", highlight=False)


@app.command("check")
def check_command(
    as_of: str = typer.Option(None, "--as-of", help="The run's date, YYYY-MM-DD (default today)."),
    database: str | None = DatabaseOption,
    output: Path = typer.Option(
        None, "--output", "-o", help="Directory for the Data Docs (default: a new temp dir)."
    ),
) -> None:
    """Check the billed data (BRM post-billing queries); exit 1 when a check fails."""
    from expectations.cli import print_report
    from expectations.runner import run_post_billing_checks

    run_date = parse_date(as_of)
    assert run_date is not None  # parse_date falls back to today
    engine = engine_for(database, read_only=True)
    output_dir = output or Path(tempfile.mkdtemp(prefix=f"billing-check-{run_date}-"))
    try:
        report = run_post_billing_checks(engine, run_date, output_dir)
    finally:
        engine.dispose()
    print_report(report)
    if not report.success:
        failed = ", ".join(
            f"{r.name} ({'error' if r.unexpected_count is None else r.unexpected_count})"
            for r in report.failed
        )
        err_console.print(
            escape(
                f"error: {len(report.failed)} of {len(report.results)} post-billing checks "
                f"failed as of {run_date}: {failed}; details: {report.data_docs}"
            ),
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


@run_app.command("bill-day")
def run_bill_day(
    as_of: str = typer.Option(None, "--as-of", help="The run's date, YYYY-MM-DD (default today)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be billed."),
    account: list[str] = typer.Option(None, "--account", help="Only this account ref (repeat)."),
    database: str = typer.Option(None, "--database", "-d", envvar="BILLING_DATABASE_URL"),
) -> None:
    """BRM pin_bill_day: bill due accounts, number invoices, cycle fees."""
    _prepare_run(database, account or None)
    from flows.bill_day import BillDayFailed, PostBillingChecksFailed, bill_day
    from flows.runtime import database_given

    try:
        with database_given(database), expected_failures(BillDayFailed, PostBillingChecksFailed):
            summary = bill_day(
                as_of=parse_date(as_of),
                dry_run=dry_run,
                accounts=account or None,
                database_block="" if database else "default",
            )
    except (BillDayFailed, PostBillingChecksFailed) as error:
        fail(escape(str(error)))
        return
    table = _summary_table("bill day")
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

    from flows.runtime import DaemonFailed, database_given

    moment = parse_process_now(process_now)
    _prepare_run(database)
    daemon = getattr(import_module(module), name)
    try:
        with database_given(database), expected_failures(DaemonFailed):
            summary = daemon(process_now=moment, database_block="" if database else "default")
    except DaemonFailed as error:
        fail(str(error))
        return
    table = _summary_table(name.replace("_", " "))
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
    from billing.domain.errors import BillingError
    from flows.revrec_summary_journal import revrec_summary_journal
    from flows.runtime import DaemonFailed, database_given

    _prepare_run(database)
    try:
        with database_given(database), expected_failures(BillingError, DaemonFailed):
            summary = revrec_summary_journal(
                year=year, month=month, post=post, database_block="" if database else "default"
            )
    except (BillingError, DaemonFailed) as error:
        fail(str(error))
        return
    table = _summary_table("revrec summary journal")
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
    from flows.runtime import database_given

    if not bill_no and date_from is None and date_to is None:
        fail("name the invoices: --bill-no, or --from / --to")
        return
    _prepare_run(database)
    try:
        with database_given(database), expected_failures(DocumentsFailed):
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
    table = _summary_table("render invoices")
    for key, value in summary.items():
        table.add_row(key, str(value if key != "failed" else len(value)))
    console.print(table)


__all__ = ["app"]
