"""``make demo``: the main job, on the database every other command uses.

It migrates the default database (``BILLING_DATABASE_URL``, else SQLite ``var/billing.db``:
``billing.store.db.database_url()``), imports the example file, seeds a synthetic population whose
contracts start on the first day of last month, runs the bill-day flow as of today, and prints
what it did, where the results are (documents in var/documents, reports in var/output) and
what to do next. ``make server`` then registers that same database, so the UI shows the
demo's data. Run again, it seeds nothing more (the population is there already) and bill day
adds nothing: every step is idempotent. ``make clean`` (or deleting var/) starts over.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import make_url

from billing.ingest.importer import import_file
from billing.ingest.synthetic import seed, seeded_accounts
from billing.ingest.synthetic_terms import DEFAULT_SHARE as DEMO_DISCOUNT_SHARE
from billing.store.db import database_url, make_engine, unit_of_work
from billing.store.migrate import upgrade
from blocks.register import absolute_sqlite

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "demo-import.json"
ACCOUNTS, USAGE_PER_ACCOUNT = 500, 20

console = Console()


def first_of_previous_month(today: date) -> date:
    return date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)


def default_database() -> str:
    """``billing.store.db.database_url()`` with a relative SQLite path made absolute (its folder
    created): the database ``billing`` and ``make server`` use by default."""
    url = absolute_sqlite(database_url())
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def table(title: str, rows: dict[str, object]) -> Table:
    shown = Table("what", "value", title=title, title_justify="left")
    for key, value in rows.items():
        shown.add_row(key, str(value))
    return shown


def main() -> None:
    today = date.today()
    from_environment = bool(os.environ.get("BILLING_DATABASE_URL"))
    url = default_database()
    engine = make_engine(url)
    upgrade(engine)

    with unit_of_work(engine) as session:
        imported = import_file(session, EXAMPLE)
    console.print(
        table(
            f"imported {EXAMPLE.name}",
            {kind: f"{c.inserted} new, {c.unchanged} unchanged" for kind, c in imported.ordered()},
        )
    )

    start = first_of_previous_month(today)
    already = seeded_accounts(engine)
    if already:
        console.print(f"{already} synthetic accounts are there already: nothing seeded")
    else:
        with Progress(console=console) as bar:
            task = bar.add_task(f"seeding {ACCOUNTS} accounts", total=ACCOUNTS)
            seeded = seed(
                engine,
                accounts=ACCOUNTS,
                usage_per_account=USAGE_PER_ACCOUNT,
                start=start,
                progress=lambda n: bar.advance(task, n),
                discount_share=DEMO_DISCOUNT_SHARE,
                terms=True,
                wallets=True,
            )
        console.print(table(f"seeded (contracts from {start})", seeded.__dict__))
    engine.dispose()

    from flows.bill_day import bill_day
    from flows.runtime import database_given
    from flows.stack import local_prefect_settings

    with local_prefect_settings(), database_given(url):  # the in-process flow run's database
        summary = bill_day(as_of=today, database_block="")
    console.print(table(f"bill day as of {today}", summary))
    output = Path("var/output") / today.isoformat()
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"\nDatabase:        {shown}")
    print(f"Invoices:        {Path('var/documents').resolve()}/ (PDF/A-3 Factur-X and XML)")
    for sepa in sorted(output.glob("sepa/*/*.xml")):
        print(f"SEPA file:       {sepa.resolve()}")
    for docs in sorted(output.glob("*/data_docs/index.html")):
        print(f"Checks (Data Docs): {docs.resolve()}")
    next_steps(from_environment)


def next_steps(from_environment: bool) -> None:
    """What to do with the result: the stack over the same database, the CLI, the mail."""
    same = (
        "  (keep BILLING_DATABASE_URL set for these, so they find the same database)\n"
        if from_environment
        else ""
    )
    print(
        "\nNext steps:\n"
        f"{same}"
        "  make server     Prefect's UI, a worker and every deployment over this same database,\n"
        "                  with a mail catcher and a files server (docs/operations.md)\n"
        "  UI              http://127.0.0.1:4200, log in with the contents of\n"
        "                  var/prefect/api-auth-string\n"
        "  .venv/bin/billing status\n"
        "  .venv/bin/billing export invoices --format csv\n"
        f"  .venv/bin/billing check --as-of {date.today()}\n"
        "  Mail            the invoice-email-sender deployment (every 15 minutes, or Run in the\n"
        "                  UI) sends the queued invoice e-mails to the local mail catcher: one\n"
        "                  file per message in var/mail/new\n"
        "  make stop       stops the stack"
    )


if __name__ == "__main__":
    main()
