"""``billing show account REF`` and ``billing issues``: read-only views for an operator."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import typer
from rich.markup import escape
from rich.table import Table

from billing.cli.app import app, show_app
from billing.cli.common import DatabaseOption, console, engine_for, parse_date
from billing.ops.views import (
    AccountView,
    Issue,
    account_view,
    format_money,
    issues,
)
from billing.store.db import unit_of_work


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


WRAPPED = {"product", "where", "reason", "period", "items"}
"""Columns whose text may wrap; refs, dates and amounts never do (an operator copies them)."""
RIGHT = {"quantity", "price", "count", "amount", "net", "tax", "gross", "paid"}


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in RIGHT else "left",
            no_wrap=column not in WRAPPED,
            min_width=10 if column in WRAPPED else None,
            overflow="fold",
        )
    return table


def _print(table: Table, title: str) -> None:
    """The table, or ``title: none`` when it has no rows."""
    console.print(table if table.row_count else f"{title}: none", highlight=False)


def print_account(view: AccountView) -> None:
    a = view.account
    head = Table(title=f"Account {escape(a.ref)}", title_justify="left", show_header=False)
    head.add_column("field", no_wrap=True)
    head.add_column("value", overflow="fold")
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
        ("prepaid credits", _wallets_text(view)),
        (
            "usage threshold",
            None
            if view.usage_threshold is None
            else f"{format_money(view.usage_threshold, a.currency)} of unbilled usage",
        ),
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

    contracts = _table("Contracts", "contract", "from", "to", "status", "auto-renew", "items")
    items = _table(
        "Items", "item", "product", "type", "quantity", "price", "from", "to", "trial to", "status"
    )
    for contract in view.contracts:
        contracts.add_row(
            _text(contract.ref), _day(contract.start_date), _day(contract.end_date),
            contract.status, "yes" if contract.auto_renew else "no",
            _text(", ".join(item.ref for item in contract.items)),
        )  # fmt: skip
        for item in contract.items:
            items.add_row(
                _text(item.ref),
                _text(item.product),
                _text(item.item_type),
                _text(format(item.quantity.normalize(), "f")),
                "-" if item.price is None else format_money(item.price, a.currency),
                _day(item.start_date),
                _day(item.end_date),
                _day(item.trial_end_date),
                _text(item.status),
            )
    _print(contracts, "Contracts")
    _print(items, "Items")

    terms = _table("Discounts and commitments", "term", "ref", "on", "amount", "when", "text")
    for term in view.terms:
        amount = (
            f"{format(term.amount.normalize(), 'f')} %"
            if term.percent
            else format_money(term.amount, a.currency) + " a cycle"
        )
        when = f"from {term.start_date}"
        if term.cycles is not None:
            when += f", {term.cycles} cycle{'s' if term.cycles > 1 else ''}"
        if term.end_date is not None:
            when += f", until {term.end_date}"
        terms.add_row(
            term.kind, _text(term.ref), _text(term.target), amount, when, _text(term.description)
        )
    _print(terms, "Discounts and commitments")

    charges = _table("Charges", "status", "count", "amount")
    for total in view.charges:
        charges.add_row(total.status, str(total.count), format_money(total.amount, total.currency))
    _print(charges, "Charges")

    bills = _table("Bills", "number", "date", "period", "net", "tax", "gross", "paid", "status",
                   "due")  # fmt: skip
    for bill in view.bills:
        bills.add_row(
            _text(bill.bill_no),
            _day(bill.bill_date),
            f"{_day(bill.period_start)} to {_day(bill.period_end)}",
            format_money(bill.net, bill.currency),
            format_money(bill.tax, bill.currency),
            format_money(bill.gross, bill.currency),
            format_money(bill.paid, bill.currency),
            bill.status,
            _day(bill.due_date),
        )
    _print(bills, "Bills")

    payments = _table("Payments and refunds", "kind", "date", "method", "amount", "status",
                      "reference", "bill", "reason")  # fmt: skip
    for p in view.payments:
        payments.add_row(
            p.kind, _day(p.on), p.method, format_money(p.amount, p.currency), p.status,
            _text(p.reference), _text(p.bill_no), _text(p.reason),
        )  # fmt: skip
    _print(payments, "Payments and refunds")
    _print(issues_table(view.issues, title="Open issues", with_account=False), "Open issues")


def _wallets_text(view: AccountView) -> str:
    """Each wallet's balance (``billing wallet show`` has its lots and movements)."""
    if not view.wallets:
        return "no wallet"
    return ", ".join(f"{w.ref}: {format_money(w.balance, w.currency)}" for w in view.wallets)


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
    columns = ["kind", "account", "date", "where", "reason"]
    if not with_account:
        columns.remove("account")
    table = _table(title, *columns)
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
    _print(issues_table(found, title="Issues"), "Issues")
    if found:
        console.print(f"{len(found)} issue(s)", highlight=False)
