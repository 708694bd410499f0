"""``billing trial``: move an item's trial end after the fact (``billing.ops.trials``)."""

from __future__ import annotations

import typer
from rich.markup import escape

from billing.cli.app import app
from billing.cli.common import DatabaseOption, console, engine_for, fail, parse_date
from billing.store.db import unit_of_work

trial_app = typer.Typer(help="Free trials of recurring items.", no_args_is_help=True)
app.add_typer(trial_app, name="trial")


@trial_app.command("extend")
def extend_command(
    item: str = typer.Argument(..., help="The recurring item's ref."),
    until: str = typer.Option(
        ..., "--until", help="The new trial end, YYYY-MM-DD (first paid day)."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="The date the change is made, YYYY-MM-DD (default: today)."
    ),
    database: str | None = DatabaseOption,
) -> None:
    """Move an item's trial end, later (extend) or earlier (shorten).

    Fees already charged for days that change are corrected: a credit for days that become
    trial, a charge for days that become paid, each billed on the account's next bill and
    naming the invoice it corrects. Running it again with the same date changes nothing.
    """
    from billing.ops.trials import TrialError, extend_trial

    new_end = parse_date(until, default_today=False)
    made_on = parse_date(as_of)
    assert new_end is not None and made_on is not None
    try:
        with unit_of_work(engine_for(database)) as session:
            result = extend_trial(session, item, new_end, made_on)
    except TrialError as error:
        fail(f"{escape(str(error))}\nnothing was changed")
        return
    if not result.changed:
        console.print(
            f"{escape(result.item_ref)}: the trial already ends on {new_end}: nothing to do",
            highlight=False,
        )
        return
    was = result.old_end.isoformat() if result.old_end else "no trial"
    console.print(
        f"{escape(result.item_ref)}: trial until {new_end} (was {was}); "
        f"{len(result.corrections)} correction(s)",
        highlight=False,
    )
    for c in result.corrections:
        console.print(
            f"  {escape(c.charge_key)}  {c.period_start} - {c.period_end}  "
            f"{c.amount:.2f} {result.currency}  billed from {c.bill_on}",
            highlight=False,
        )
