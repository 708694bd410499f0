"""The ``billing`` CLI (Typer). Each module registers its commands on the shared app."""

from billing.cli import db_cmd, export_cmd, import_cmd, seed_cmd, status_cmd  # noqa: F401
from billing.cli.app import app

__all__ = ["app"]
