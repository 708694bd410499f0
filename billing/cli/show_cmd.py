"""``billing show account REF`` and ``billing issues``: read-only views for an operator."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import typer
from rich.markup import escape
from rich.table import Table

from billing.cli.app import app, show_app
from billing.cli.common import DatabaseOption, console, engine_for, parse_date
from billing.db import unit_of_work
from billing.views import (
    AccountView,
    Issue,
    account_view,
    format_money,
    issues,
)


def _day(value: date | None) -> str:
    return value.isoformat() if value else "-"


def _text(value: object) -> str:
    return escape("-" if value is None or value == "" else str(value))


@show_app.command("account")
def show_account(
    ref: str = typer.Argument(..., help="The account's ref."),
    database: str | None = DatabaseOption,
) -> None:
    """The account, its contracts and items, charges, bills, payments, balance and issues."""
    with unit_of_work(engine_for(database, read_only=True)) as session:
        view = account_view(session, ref)
    print_account(view)


def print_account(view: AccountView) -> None:
    a = view.account
    head = Table(title=f"Account {escape(a.ref)}", title_justify="left", show_header=False)
    head.add_column("field")
    head.add_column("value")
    for label, value in (
        ("name", a.name),
        ("country", a.country),
        ("language", a.language),
        ("currency", a.currency),
        ("status", a.status),
        ("e-mail", a.email),
        ("VAT id", a.vat_id),
        ("payment method", a.payment_method),
        ("IBAN", a.iban),
        ("mandate", a.mandate_ref),
        ("card", a.card),
        ("payment terms", f"{a.payment_terms_days} days"),
        ("created on", _day(a.created_on)),
        ("balance", format_money(a.balance, a.currency)),
        ("dunning", _dunning_text(view)),
    ):
        head.add_row(label, _text(value))
    for unit in view.bill_units:
        state = unit.billing_state + (f" ({unit.failure_reason})" if unit.failure_reason else "")
        head.add_row("billing day", f"{unit.billing_day}, {unit.cycle}")
        head.add_row("next bill", _day(unit.next_bill_date))
        head.add_row("last bill", _day(unit.last_bill_date))
        head.add_row("billing state", _text(state))
    console.print(head)

    items = Table(title="Contracts and items", title_justify="left")
    for column in ("contract", "item", "product", "type", "quantity", "price", "from", "to",
                   "status"):  # fmt: skip
        items.add_column(column, justify="right" if column in ("quantity", "price") else "left")
    for contract in view.contracts:
        label = f"{contract.ref} ({contract.status}{', auto-renew' if contract.auto_renew else ''})"
        if not contract.items:
            items.add_row(_text(label), *["-"] * 5, _day(contract.start_date),
                          _day(contract.end_date), "-")  # fmt: skip
        for n, item in enumerate(contract.items):
            items.add_row(
                _text(label) if n == 0 else "",
                _text(item.ref),
                _text(item.product),
                _text(item.item_type),
                _text(format(item.quantity.normalize(), "f")),
                "-" if item.price is None else format_money(item.price, a.currency),
                _day(item.start_date),
                _day(item.end_date),
                _text(item.status),
            )
    console.print(items)

    charges = Table(title="Charges", title_justify="left")
    charges.add_column("status")
    charges.add_column("count", justify="right")
    charges.add_column("amount", justify="right")
    for total in view.charges:
        charges.add_row(total.status, str(total.count), format_money(total.amount, total.currency))
    console.print(charges)

    bills = Table(title="Bills", title_justify="left")
    for column in ("number", "date", "period", "net", "tax", "gross", "paid", "status", "due"):
        bills.add_column(column, justify="right" if column in ("net", "tax", "gross", "paid")
                         else "left")  # fmt: skip
    for bill in view.bills:
        bills.add_row(
            _text(bill.bill_no),
            _day(bill.bill_date),
            f"{_day(bill.period_start)}..{_day(bill.period_end)}",
            format_money(bill.net, bill.currency),
            format_money(bill.tax, bill.currency),
            format_money(bill.gross, bill.currency),
            format_money(bill.paid, bill.currency),
            bill.status,
            _day(bill.due_date),
        )
    console.print(bills)

    if not view.payments:
        console.print("Payments and refunds: none", highlight=False)
        console.print(_issues_or_none(view.issues))
        return
    payments = Table(title="Payments and refunds", title_justify="left")
    for column in ("kind", "date", "method", "amount", "status", "reference", "bill", "reason"):
        payments.add_column(column, justify="right" if column == "amount" else "left")
    for p in view.payments:
        payments.add_row(
            p.kind, _day(p.on), p.method, format_money(p.amount, p.currency), p.status,
            _text(p.reference), _text(p.bill_no), _text(p.reason),
        )  # fmt: skip
    console.print(payments)
    console.print(_issues_or_none(view.issues))


def _issues_or_none(found: tuple[Issue, ...]) -> Table | str:
    if not found:
        return "Open issues: none"
    return issues_table(found, title="Open issues", with_account=False)


def _dunning_text(view: AccountView) -> str:
    d = view.dunning
    if d is None:
        return "no"
    text = f"{d.state} since {d.since.isoformat()}"
    if d.bill_no:
        text += f", bill {d.bill_no}"
    if d.cleared_on:
        text += f", cleared on {d.cleared_on.isoformat()}"
    return f"{text}: {d.reason}"


def issues_table(found: Iterable[Issue], *, title: str, with_account: bool = True) -> Table:
    table = Table(title=title, title_justify="left")
    columns = ["kind", "account", "date", "where", "reason"]
    if not with_account:
        columns.remove("account")
    for column in columns:
        table.add_column(column, overflow="fold")
    for issue in found:
        cells = [issue.kind, issue.account_ref, _day(issue.on), issue.where, issue.reason]
        if not with_account:
            del cells[1]
        table.add_row(*(_text(c) if c != "-" else c for c in cells))
    return table


@app.command("issues")
def issues_command(
    account: str = typer.Option(None, "--account", help="Only this account's issues."),
    since: str = typer.Option(
        None, "--since", help="Issues dated on or after YYYY-MM-DD (leaves out rejected usage)."
    ),
    include_past: bool = typer.Option(
        False, "--all", help="Also resolved issues, and bill issues of units billed since."
    ),
    database: str | None = DatabaseOption,
) -> None:
    """Failed accounts (billing issues, deferred actions, changes, e-mails) and rejected usage."""
    since_date = parse_date(since, default_today=False)
    with unit_of_work(engine_for(database, read_only=True)) as session:
        found = issues(session, account_ref=account, since=since_date, include_past=include_past)
    console.print(issues_table(found, title="Issues"))
    console.print(f"{len(found)} issue(s)", highlight=False)
