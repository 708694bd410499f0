"""``billing db``: schema migrations."""

from __future__ import annotations

from billing.cli.app import db_app
from billing.cli.common import DatabaseOption, console
from billing.store.db import open_database, shown_url


@db_app.command("upgrade")
def db_upgrade(database: str | None = DatabaseOption) -> None:
    """Create or migrate the schema to the latest revision (safe to run twice)."""
    from billing.store.migrate import upgrade

    engine = open_database(database, create=True)
    upgrade(engine)
    console.print(f"schema up to date on {shown_url(engine.url)}", highlight=False)
