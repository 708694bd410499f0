"""``billing shadow``: the shadow bill run of a date, in this process, without Prefect.

Bill day's billing as a dry run over every due account (nothing is written), compared with
each account's previous cycle (``billing.jobs.shadow_bill_run``, ``docs/operations.md``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from billing.cli.app import app
from billing.cli.common import DatabaseOption, console, engine_for, err_console, fail, parse_date
from billing.domain.errors import BillingError
from billing.domain.shadow import GateLimits, ShadowReport, Thresholds, amount, gate_problem
from billing.ops.run_report import money

SHOWN = 50
"""Flagged accounts printed; the CSV holds them all."""


def _decimal(value: str, option: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a decimal number", param_hint=option) from None


@app.command("shadow")
def shadow_command(
    as_of: str = typer.Option(None, "--as-of", help="Bill date to shadow (default today)."),
    threshold_amount: str = typer.Option(
        "1.00",
        "--threshold-amount",
        help="An account has changed when its gross moved by more than this (in its "
        "currency) and by more than --threshold-percent. 0: by percent only.",
    ),
    threshold_percent: str = typer.Option(
        "5",
        "--threshold-percent",
        help="...and by more than this percentage of the previous gross. 0: by amount only.",
    ),
    accounts: list[str] = typer.Option(
        None, "--account", help="Only this account (repeat for more). Default: every due one."
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write every flagged account and the totals to this CSV."
    ),
    gate: bool = typer.Option(
        False,
        "--gate",
        help="Exit 1 when bill day's gate would stop the run (any missing or changed account).",
    ),
    seller_country: str = typer.Option(
        None,
        "--seller-country",
        help="Country of the seller whose VAT rules bill (default: the demo seller's, as "
        "bill day without a Seller Identity block).",
    ),
    per_batch: int = typer.Option(20_000, "--per-batch", min=1, help="Bill units per batch."),
    database: str | None = DatabaseOption,
) -> None:
    """Dry-run bill day for every due account and compare with its previous cycle: new,
    missing and changed accounts, totals per currency. Writes nothing to the database."""
    # Bill day's module loads the document renderer and the payment steps: only when run.
    from billing.jobs.shadow_bill_run import outcome, run_shadow_bill_run

    day = parse_date(as_of)
    assert day is not None
    try:
        thresholds = Thresholds(
            _decimal(threshold_amount, "--threshold-amount"),
            _decimal(threshold_percent, "--threshold-percent"),
        )
    except BillingError as error:
        fail(escape(str(error)))
        return
    engine = engine_for(database)
    result = run_shadow_bill_run(
        engine,
        day,
        f"cli-{day.isoformat()}",
        per_batch=per_batch,
        account_refs=accounts or None,
        seller_country=seller_country,
        thresholds=thresholds,
        csv_path=output,
    )
    report = result.report
    _print(report)
    err_console.print(f"shadow bill run as of {day}: {outcome(report)}", highlight=False)
    if output is not None:
        err_console.print(f"written: {escape(str(output))}", highlight=False)
    if gate:
        problem = gate_problem(report, GateLimits())
        if problem is not None:
            fail(escape(problem))


def _print(report: ShadowReport) -> None:
    totals = Table(title=f"Totals per currency: previous cycle and {report.as_of}")
    for column in ("currency", "previous bills", "previous gross", "bills", "gross", "change"):
        totals.add_column(column, justify="left" if column == "currency" else "right")
    for t in report.totals:
        totals.add_row(
            t.currency,
            str(t.previous_bills),
            money(t.previous_gross, t.currency),
            str(t.now_bills),
            money(t.now_gross, t.currency),
            _change(t.change, t.percent, t.currency),
        )
    console.print(totals)
    if not report.changes:
        console.print("No account is new, missing, changed or failed.")
        return
    flagged = Table(title="Accounts flagged")
    for column in ("kind", "account", "previous gross", "gross", "change", "reason"):
        flagged.add_column(column, justify="right" if "gross" in column else "left")
    for c in report.changes[:SHOWN]:
        flagged.add_row(
            str(c.kind),
            escape(c.account),
            money(c.previous_gross, c.currency) if c.currency else "",
            money(c.now_gross, c.currency) if c.currency else "",
            _change(c.change, c.percent, c.currency) if c.currency else "",
            escape(c.reason),
        )
    console.print(flagged)
    if len(report.changes) > SHOWN:
        console.print(f"... and {len(report.changes) - SHOWN} more (see the CSV, -o FILE).")


def _change(change: Decimal, percent: Decimal | None, currency: str) -> str:
    sign = "+" if change > 0 else ""
    text = f"{sign}{amount(change, currency)}"
    return text if percent is None else f"{text} ({sign}{percent} %)"
