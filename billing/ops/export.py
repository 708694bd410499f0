"""Export issued invoices as JSON or CSV, streamed so any number of bills fits in memory.

Each invoice carries its bill number, account reference, period, currency, net, tax and gross,
and its lines with description, quantity, unit price and amount. Amounts are strings: JSON
has no decimal type and a float would lose cents. Periods are the engine's half-open
``[period_start, period_end)``: ``period_end`` is the day after the last day of service,
which the PDF prints (docs/cli.md, "billing export invoices").
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.money import LINE_ROUNDING, quantize_money
from billing.store.models import LINE_COLUMNS, Account, Bill, Charge, billed_line

CSV_COLUMNS = (
    "bill_no",
    "account_ref",
    "bill_date",
    "due_date",
    "period_start",
    "period_end",
    "currency",
    "net",
    "tax",
    "gross",
    "line",
    "description",
    "quantity",
    "unit_price",
    "amount",
    "tax_rate",
    "line_tax",
    "vat_category",
)


def _text(value: Any) -> Any:
    """Dates as ISO text; quantities, prices and rates without trailing zeros."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _money(value: Decimal, currency: str) -> str:
    """An amount with its currency's minor units (the stored amounts are already rounded)."""
    return format(quantize_money(value, currency, LINE_ROUNDING), "f")


def invoices(
    session: Session, *, accounts: Sequence[str] | None = None, chunk: int = 1000
) -> Iterator[dict[str, Any]]:
    """Numbered bills in number order, each with its lines; only ``accounts`` (refs) if given."""
    query = (
        select(Bill, Account.ref, *LINE_COLUMNS)
        .join(Account, Account.id == Bill.account_id)
        .join(Charge, Charge.bill_id == Bill.id)  # the bill's lines are its charges
        .where(Bill.number.is_not(None))
        .order_by(Bill.series_code, Bill.number, Charge.line_no)
        .execution_options(yield_per=chunk)
    )
    if accounts:
        query = query.where(Account.ref.in_(list(accounts)))
    rows = session.execute(query)
    for (bill, ref), group in groupby(rows, key=lambda r: (r[0], r[1])):
        yield {
            "bill_no": bill.bill_no,
            "account_ref": ref,
            "bill_date": _text(bill.bill_date),
            "due_date": _text(bill.due_date),
            "period_start": _text(bill.period_start),
            "period_end": _text(bill.period_end),
            "currency": bill.currency,
            "net": _money(bill.net, bill.currency),
            "tax": _money(bill.tax, bill.currency),
            "gross": _money(bill.gross, bill.currency),
            "lines": [
                {
                    "description": line.description,
                    "quantity": _text(line.quantity),
                    "unit_price": _text(line.unit_price),
                    "amount": _money(line.net, bill.currency),
                    "tax_rate": _text(line.tax_rate),
                    "tax": _money(line.tax, bill.currency),
                    "vat_category": line.vat_category,
                }
                for line in (billed_line(row[2:]) for row in group)
            ],
        }


def write_json(session: Session, out: TextIO, *, accounts: Sequence[str] | None = None) -> int:
    """A JSON array of invoices, written one invoice at a time; returns the count."""
    count = 0
    out.write("[")
    for invoice in invoices(session, accounts=accounts):
        out.write(",\n" if count else "\n")
        json.dump(invoice, out, ensure_ascii=False)
        count += 1
    out.write("\n]\n")
    return count


def write_csv(session: Session, out: TextIO, *, accounts: Sequence[str] | None = None) -> int:
    """One CSV row per invoice line, the invoice's columns repeated; returns the invoice count."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for invoice in invoices(session, accounts=accounts):
        head = [invoice[c] for c in CSV_COLUMNS[:10]]
        for number, line in enumerate(invoice["lines"], start=1):
            writer.writerow(
                [
                    *head,
                    number,
                    line["description"],
                    line["quantity"],
                    line["unit_price"],
                    line["amount"],
                    line["tax_rate"],
                    line["tax"],
                    line["vat_category"],
                ]
            )
        count += 1
    return count
