"""``billing seed``: fill a database with a deterministic synthetic population."""

from __future__ import annotations

import time
from datetime import date, timedelta

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from billing.cli.app import app
from billing.cli.common import DatabaseOption, console, engine_for, err_console, parse_date


def first_of_previous_month(today: date) -> date:
    """The first day of the month before ``today``'s month."""
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


@app.command("seed")
def seed_command(
    accounts: int = typer.Option(..., "--accounts", min=0, help="Accounts to create."),
    usage_per_account: int = typer.Option(
        ..., "--usage-per-account", min=0, help="Usage records per account."
    ),
    start: str | None = typer.Option(
        None, "--start", help="Contract start, YYYY-MM-DD (default: first day of last month)."
    ),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed gives the same data."),
    discount_share: float = typer.Option(
        0.15,  # billing.ingest.synthetic_terms.DEFAULT_SHARE (numpy is loaded only when seeding)
        "--discount-share",
        min=0,
        max=1,
        help="Share of accounts given discounts (0 to 1).",
    ),
    terms: bool = typer.Option(
        True,
        "--terms/--no-terms",
        help="Give a share of the accounts minimum commitments and of the items free trials.",
    ),
    wallets: bool = typer.Option(
        True,
        "--wallets/--no-wallets",
        help="Give a share of the accounts prepaid credits (some expiring, some topping up).",
    ),
    database: str | None = DatabaseOption,
) -> None:
    """Seed a synthetic population: catalogue, accounts, bill units, contracts, usage and
    discounts."""
    from billing.ingest import synthetic  # Faker: loaded only when seeding

    start_date = parse_date(start, default_today=False) or first_of_previous_month(date.today())
    engine = engine_for(database, create=True)
    began = time.perf_counter()
    columns = (
        TextColumn("seeding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err_console) as bar:
        task = bar.add_task("seeding", total=accounts)
        report = synthetic.seed(
            engine,
            accounts=accounts,
            usage_per_account=usage_per_account,
            start=start_date,
            seed=seed,
            progress=lambda done: bar.advance(task, done),
            discount_share=discount_share,
            terms=terms,
            wallets=wallets,
        )
    elapsed = time.perf_counter() - began
    table = Table(title="Seeded")
    table.add_column("rows")
    table.add_column("count", justify="right")
    table.add_row("start", start_date.isoformat())
    table.add_row("seed", str(seed))
    for label, value in (
        ("accounts", report.accounts),
        ("bill units", report.bill_units),
        ("contracts", report.contracts),
        ("contract items", report.contract_items),
        ("usage records", report.usage_records),
        ("discounts", report.discounts),
        *(
            (("commitments", report.commitments), ("items in trial", report.trial_items))
            if terms
            else ()
        ),
        *(
            (("wallets", report.wallets), ("wallet grants", report.wallet_grants))
            if wallets
            else ()
        ),
    ):
        table.add_row(label, f"{value:,}")
    table.add_row("elapsed seconds", f"{elapsed:.1f}")
    console.print(table)
