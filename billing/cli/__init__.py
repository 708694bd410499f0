"""The ``billing`` CLI (Typer). Each module registers its commands on the shared app."""

from billing.cli import (  # noqa: F401
    credit_note_cmd,
    db_cmd,
    export_cmd,
    import_cmd,
    journal_cmd,
    payment_cmd,
    preview_cmd,
    seed_cmd,
    shadow_cmd,
    show_cmd,
    status_cmd,
    trial_cmd,
    wallet_cmd,
)
from billing.cli.app import app

__all__ = ["app"]
