"""``make demo``: the main job on the embedded SQLite default, from an empty database.

It migrates a fresh database under var/demo/, imports the example file, seeds a synthetic
population whose contracts start on the first day of last month, runs the bill-day flow as of
today, and prints what it did and where the results are.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from billing.db import make_engine, unit_of_work  # noqa: E402
from billing.importer import import_file  # noqa: E402
from billing.migrate import upgrade  # noqa: E402
from billing.synthetic import seed  # noqa: E402

OUTPUT = Path("var/demo")
EXAMPLE = Path("examples/demo-import.json")
ACCOUNTS, USAGE_PER_ACCOUNT = 500, 20

console = Console()


def first_of_previous_month(today: date) -> date:
    return date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)


def fresh_database() -> str:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for old in OUTPUT.glob("billing.db*"):
        old.unlink()
    return f"sqlite:///{(OUTPUT / 'billing.db').resolve()}"


def table(title: str, rows: dict[str, object]) -> Table:
    shown = Table("what", "value", title=title, title_justify="left")
    for key, value in rows.items():
        shown.add_row(key, str(value))
    return shown


def main() -> None:
    today = date.today()
    url = fresh_database()
    os.environ["BILLING_DATABASE_URL"] = url
    engine = make_engine(url)
    upgrade(engine)

    with unit_of_work(engine) as session:
        imported = import_file(session, EXAMPLE)
    console.print(
        table(
            f"imported {EXAMPLE}",
            {kind: f"{c.inserted} new, {c.unchanged} unchanged" for kind, c in imported.ordered()},
        )
    )

    start = first_of_previous_month(today)
    with Progress(console=console) as bar:
        task = bar.add_task(f"seeding {ACCOUNTS} accounts", total=ACCOUNTS)
        seeded = seed(
            engine,
            accounts=ACCOUNTS,
            usage_per_account=USAGE_PER_ACCOUNT,
            start=start,
            progress=lambda n: bar.advance(task, n),
        )
    console.print(table(f"seeded (contracts from {start})", seeded.__dict__))

    from flows.bill_day import bill_day

    summary = bill_day(as_of=today, database_block="")
    console.print(table(f"bill day as of {today}", summary))
    output = Path("var/output") / today.isoformat()
    print(f"\nDatabase:        {url}")
    print(f"Invoices:        {Path('var/documents').resolve()}/ (PDF/A-3 Factur-X and XML)")
    for sepa in sorted(output.glob("sepa/*/*.xml")):
        print(f"SEPA file:       {sepa.resolve()}")
    for docs in sorted(output.glob("*/data_docs/index.html")):
        print(f"Checks (Data Docs): {docs.resolve()}")
    print("Explore it:")
    print(f"  BILLING_DATABASE_URL={url} .venv/bin/billing status")
    print(f"  BILLING_DATABASE_URL={url} .venv/bin/billing export invoices --format csv")


if __name__ == "__main__":
    main()
