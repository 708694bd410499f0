"""``billing wallet grant | buy | show``: prepaid credits by hand (``billing.ops.wallets``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from billing.cli.app import app
from billing.cli.common import DatabaseOption, console, engine_for, fail, parse_date
from billing.domain.errors import MoneyError
from billing.domain.money import to_decimal
from billing.ops.views import format_money
from billing.ops.wallets import WalletInfo
from billing.store.db import unit_of_work

wallet_app = typer.Typer(
    help="Prepaid credits: grant, buy, and look at an account's wallets.", no_args_is_help=True
)
app.add_typer(wallet_app, name="wallet")

WalletArgument = typer.Argument(
    ...,
    metavar="ACCOUNT_OR_WALLET_REF",
    help="A wallet's ref, or an account's ref (its only wallet; one is made if it has none).",
)
AmountArgument = typer.Argument(..., metavar="AMOUNT", help="In the wallet's currency: 50.00.")
AsOfOption = typer.Option(..., "--as-of", help="The date it happens, YYYY-MM-DD.")
ExpiresOption = typer.Option(
    None, "--expires", help="The lot's expiry, YYYY-MM-DD: what is left that day expires."
)
KeyOption = typer.Option(
    None,
    "--key",
    help="Its idempotency key (1-64 characters). Default: as-of/amount[/expiry], so running "
    "the same command again adds nothing; give a key to add the same amount twice a day.",
)


def _amount(text: str) -> Decimal:
    try:
        return to_decimal(text)
    except MoneyError as error:
        raise typer.BadParameter(str(error)) from None


def _credit(
    ref: str,
    amount: str,
    as_of: str,
    expires: str | None,
    key: str | None,
    database: str | None,
    write: Callable[[Any, Any, Decimal, date, date | None, str], Any],
    done: str,
) -> Any:
    """Credits into the wallet ``ref`` names, by ``write`` (a grant or a purchase) in one
    transaction, under ``key`` or the default reference; None, the error said, when refused."""
    from billing.ops.wallets import WalletError, default_reference, find_wallet

    value, on = _amount(amount), parse_date(as_of)
    assert on is not None
    expires_on = parse_date(expires, default_today=False)
    try:
        with unit_of_work(engine_for(database)) as session:
            wallet = find_wallet(session, ref, create_on=on)
            return write(
                session,
                wallet,
                value,
                on,
                expires_on,
                key or default_reference(on, value, expires_on),
            )
    except WalletError as error:
        fail(f"{escape(str(error))}\nnothing was {done}", code=2)
        return None


@wallet_app.command("grant")
def grant_command(
    ref: str = WalletArgument,
    amount: str = AmountArgument,
    as_of: str = AsOfOption,
    expires: str | None = ExpiresOption,
    key: str | None = KeyOption,
    description: str | None = typer.Option(None, "--description", help="Why (200 characters)."),
    database: str | None = DatabaseOption,
) -> None:
    """Grant free credits: a lot, usable from --as-of by the next bill day's invoices."""
    from billing.ops.wallets import grant_credits

    def grant(
        session: Any, wallet: Any, value: Decimal, on: date, expires_on: Any, reference: str
    ) -> Any:
        return grant_credits(
            session,
            wallet,
            value,
            on=on,
            expires_on=expires_on,
            reference=reference,
            description=description,
        )

    granted = _credit(ref, amount, as_of, expires, key, database, grant, "granted")
    if granted is None:
        return
    what = "granted" if granted.inserted else "already granted (nothing written)"
    until = f", expires on {granted.expires_on}" if granted.expires_on else ""
    console.print(
        f"{what}: {format_money(granted.amount, granted.currency)} to wallet "
        f"{escape(granted.wallet_ref)} (account {escape(granted.account_ref)}) from "
        f"{granted.on_date}{until}; key {escape(granted.key)}",
        highlight=False,
    )


@wallet_app.command("buy")
def buy_command(
    ref: str = WalletArgument,
    amount: str = AmountArgument,
    as_of: str = AsOfOption,
    expires: str | None = ExpiresOption,
    key: str | None = KeyOption,
    database: str | None = DatabaseOption,
) -> None:
    """Sell credits: a bill of its own (outside the scope of VAT, category O), numbered now and
    collected like any bill; the lot is credited as the bill is issued."""
    from billing.ops.wallets import buy_credits

    def buy(
        session: Any, wallet: Any, value: Decimal, on: date, expires_on: Any, reference: str
    ) -> Any:
        return buy_credits(
            session, wallet, value, as_of=on, expires_on=expires_on, reference=reference
        )

    bought = _credit(ref, amount, as_of, expires, key, database, buy, "bought")
    if bought is None:
        return
    what = "bought" if bought.inserted else "already bought (nothing written)"
    console.print(
        f"{what}: {format_money(bought.amount, bought.currency)} for wallet "
        f"{escape(bought.wallet_ref)} (account {escape(bought.account_ref)}) on bill "
        f"{escape(bought.bill_no or '-')}; key {escape(bought.charge_key)}",
        highlight=False,
    )
    console.print(
        "documents and e-mail: the next bill day, or now with "
        f"billing run render-invoices --bill-no {escape(bought.bill_no or '')}",
        highlight=False,
    )


@wallet_app.command("show")
def show_command(
    account: str = typer.Argument(..., metavar="ACCOUNT_REF", help="The account's ref."),
    database: str | None = DatabaseOption,
) -> None:
    """The account's wallets: balance, lots with credit left and their expiry, last movements."""
    from billing.ops.wallets import WalletError, account_wallets

    try:
        with unit_of_work(engine_for(database, read_only=True)) as session:
            wallets = account_wallets(session, account)
    except WalletError as error:
        fail(escape(str(error)), code=2)
        return
    if not wallets:
        console.print(f"account {escape(account)} has no wallet", highlight=False)
        return
    print_wallets(wallets)


def print_wallets(wallets: tuple[WalletInfo, ...]) -> None:
    """Each wallet's head, its lots and its last movements."""
    for wallet in wallets:
        c = wallet.currency
        topup = (
            f"below {format_money(wallet.topup_threshold, c)}, buy "
            f"{format_money(wallet.topup_amount, c)}"
            if wallet.topup_threshold is not None and wallet.topup_amount is not None
            else "no"
        )
        head = Table(title=f"Wallet {escape(wallet.ref)}", title_justify="left", show_header=False)
        head.add_column("field", no_wrap=True)
        head.add_column("value", overflow="fold")
        for label, value in (
            ("name", escape(wallet.name)),
            ("currency", c),
            ("priority", str(wallet.priority)),
            ("top-up", topup),
            ("balance", format_money(wallet.balance, c)),
        ):
            head.add_row(label, value)
        console.print(head)
        lots = Table(title="Lots with credit left", title_justify="left")
        for column in ("kind", "from", "amount", "left", "expires", "description"):
            lots.add_column(column, justify="right" if column in ("amount", "left") else "left")
        for lot in wallet.lots:
            lots.add_row(
                lot.kind,
                lot.on_date.isoformat(),
                format_money(lot.amount, c),
                format_money(lot.remaining, c),
                lot.expires_on.isoformat() if lot.expires_on else "never",
                escape(lot.description),
            )
        console.print(lots if lots.row_count else "Lots with credit left: none", highlight=False)
        moves = Table(title="Last movements", title_justify="left")
        for column in ("date", "kind", "amount", "bill", "description"):
            moves.add_column(column, justify="right" if column == "amount" else "left")
        for move in wallet.movements:
            moves.add_row(
                move.on_date.isoformat(),
                move.kind,
                format_money(move.amount, c),
                escape(move.bill_no or "-"),
                escape(move.description),
            )
        console.print(moves if moves.row_count else "Last movements: none", highlight=False)
