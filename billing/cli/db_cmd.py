"""``billing db``: schema migrations."""

from __future__ import annotations

from billing.cli.app import db_app
from billing.cli.common import DatabaseOption, console, engine_for
from billing.migrate import upgrade


@db_app.command("upgrade")
def db_upgrade(database: str | None = DatabaseOption) -> None:
    """Create or migrate the schema to the latest revision (safe to run twice)."""
    engine = engine_for(database)
    upgrade(engine)
    console.print(f"schema up to date on {engine.url.render_as_string(hide_password=True)}")
