"""Invoice preview of one account: what bill day would bill for it on a date, written nowhere.

``preview_account`` runs the real bill-run path, in one transaction that it always rolls back:
the deferred actions due (bill day's first step, which may change a price or cancel an item),
the cancellations due (bill day's second: their credits are on the bill it makes), then
``billrun.bill_slices`` on the account's due bill units (claim, snapshot, the pure
``billplan.plan_bills``, write, catch-up cycle by cycle), exactly as a bill-day batch bills
them. It reads back the bills and lines that pass wrote, and the documents' model of each
bill, before the rollback. So the preview is what bill day bills, by construction: there is
no second copy of the billing rules.

Nothing is written: the transaction is rolled back, whatever happens. What a rollback cannot
undo is a PostgreSQL sequence (ids taken by ``take_ids`` and the inserts): ids are never
gapless, so that is harmless; invoice numbers, which are, are not touched (numbering is not
run, a preview has no number).

The preview follows bill day's order up to billing; the steps after it (numbering, forward
fees, payments) do not change the bill's lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from billing.documents.model import Invoice, load_invoices
from billing.ops.billrun import BatchResult, bill_slices, due_unit_ids
from billing.ops.cycle_fees import cancellations
from billing.ops.deferred import run_deferred_actions
from billing.ops.run_report import money
from billing.ops.views import UnknownAccounts
from billing.store.db import unit_of_work
from billing.store.models import LINE_COLUMNS, Account, Bill, BillUnit, Charge, billed_line


@dataclass(frozen=True)
class PreviewLine:
    """One line of a previewed bill, as bill day would write it."""

    position: int
    kind: str  # the charge's kind: recurring, usage, one_time or adjustment
    description: str
    period_start: date
    period_end: date
    quantity: Decimal
    unit_price: Decimal
    net: Decimal
    tax_category: str
    vat_category: str
    tax_rate: Decimal
    tax: Decimal
    gross: Decimal


@dataclass(frozen=True)
class PreviewBill:
    """One previewed bill: no number, no id that survives the preview."""

    bill_date: date
    due_date: date
    period_start: date
    period_end: date
    currency: str
    net: Decimal
    tax: Decimal
    gross: Decimal
    lines: tuple[PreviewLine, ...]


@dataclass(frozen=True)
class Preview:
    """What bill day would bill for one account on ``as_of``."""

    account_ref: str
    as_of: date
    next_bill_date: date | None
    """The account's next bill date before the preview (the cycle bill day closes next)."""
    bills: tuple[PreviewBill, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    """Why bill day would fail the account (its billing issue), when it would."""
    invoices: tuple[Invoice, ...] = ()
    """The documents' model of each bill (unnumbered), when asked for: to print its PDF."""

    @property
    def totals(self) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
        """Net, tax and gross per currency over the previewed bills."""
        sums: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
        for bill in self.bills:
            net, tax, gross = sums.get(bill.currency, (Decimal(0), Decimal(0), Decimal(0)))
            sums[bill.currency] = (net + bill.net, tax + bill.tax, gross + bill.gross)
        return sums


class _RolledBack(Exception):
    def __init__(self, preview: Preview) -> None:
        self.preview = preview


def preview_account(
    engine: Engine,
    account_ref: str,
    as_of: date,
    *,
    seller_country: str | None = None,
    documents: bool = False,
) -> Preview:
    """Bill the account as bill day would on ``as_of``, read the result, roll it all back.

    ``UnknownAccounts`` when no account has that ref. ``seller_country``: whose VAT rules
    (as bill day's ``BillDayJob.seller_country``). ``documents``: also build the invoice
    model of each bill, for its PDF.
    """
    run_id = f"preview:{account_ref}:{as_of.isoformat()}"
    try:
        with unit_of_work(engine, isolation="REPEATABLE READ") as session:
            account_id = session.scalar(select(Account.id).where(Account.ref == account_ref))
            if account_id is None:
                raise UnknownAccounts([account_ref])
            next_bill = session.scalar(
                select(BillUnit.next_bill_date)
                .where(BillUnit.account_id == account_id)
                .order_by(BillUnit.next_bill_date)
                .limit(1)
            )
            # bill day's steps before billing, in its order (billing.jobs.bill_day): the
            # deferred actions, then the cancellations due (their credits are on this bill)
            run_deferred_actions(session, as_of)
            cancellations(session, as_of, run_id)
            unit_ids = due_unit_ids(session, as_of, account_refs=[account_ref])
            result = (
                bill_slices(session, unit_ids, as_of, run_id, seller_country=seller_country)
                if unit_ids
                else BatchResult()
            )
            bills = _bills_of_run(session, run_id)
            invoices: tuple[Invoice, ...] = ()
            if documents and bills:
                ids = list(session.scalars(select(Bill.id).where(Bill.run_id == run_id)))
                invoices = tuple(load_invoices(session, ids, numbered=False))
            raise _RolledBack(
                Preview(
                    account_ref=account_ref,
                    as_of=as_of,
                    next_bill_date=next_bill,
                    bills=bills,
                    failed=dict(result.failed),
                    invoices=invoices,
                )
            )
    except _RolledBack as done:
        return done.preview


def _bills_of_run(session: Session, run_id: str) -> tuple[PreviewBill, ...]:
    """The bills (with lines, in position order) the preview's pass wrote, by bill date."""
    bills = session.scalars(
        select(Bill).where(Bill.run_id == run_id).order_by(Bill.bill_date, Bill.id)
    ).all()
    rows = session.execute(
        select(*LINE_COLUMNS, Charge.kind)
        .where(Charge.bill_id.in_([b.id for b in bills]))
        .order_by(Charge.bill_id, Charge.line_no)
    ).all()
    by_bill: dict[int, list[PreviewLine]] = {b.id: [] for b in bills}
    for row in rows:
        line, kind = billed_line(row), row.kind
        by_bill[line.bill_id].append(
            PreviewLine(
                position=line.position,
                kind=str(kind),
                description=line.description,
                period_start=line.period_start,
                period_end=line.period_end,
                quantity=line.quantity,
                unit_price=line.unit_price,
                net=line.net,
                tax_category=line.tax_category,
                vat_category=line.vat_category,
                tax_rate=line.tax_rate,
                tax=line.tax,
                gross=line.gross,
            )
        )
    return tuple(
        PreviewBill(
            bill_date=b.bill_date,
            due_date=b.due_date,
            period_start=b.period_start,
            period_end=b.period_end,
            currency=b.currency,
            net=b.net,
            tax=b.tax,
            gross=b.gross,
            lines=tuple(by_bill[b.id]),
        )
        for b in bills
    )


# -- what an operator reads: the same rows for the CLI and the flow's artifact -------------

PREVIEW_MARK = "PREVIEW — not an invoice"


def _last_day(start: date, end: date) -> date:
    """The last day of a half-open period (its start when it is empty)."""
    return max(start, end - timedelta(days=1))


def _plain(value: Decimal) -> str:
    """A quantity or unit price at full precision, without trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def _percent(rate: Decimal) -> str:
    return f"{_plain(rate * 100)} %"


def preview_rows(preview: Preview) -> list[dict[str, str]]:
    """One row per line of every previewed bill (periods with their last day, inclusive)."""
    return [
        {
            "bill date": bill.bill_date.isoformat(),
            "#": str(line.position),
            "kind": line.kind,
            "description": line.description,
            "period": f"{line.period_start} to {_last_day(line.period_start, line.period_end)}",
            "quantity": _plain(line.quantity),
            "unit price": _plain(line.unit_price),
            "net": money(line.net, bill.currency),
            "VAT": f"{line.vat_category} {_percent(line.tax_rate)}",
            "tax category": line.tax_category,
            "tax": money(line.tax, bill.currency),
            "gross": money(line.gross, bill.currency),
        }
        for bill in preview.bills
        for line in bill.lines
    ]


def preview_totals(preview: Preview) -> list[dict[str, str]]:
    """One row per previewed bill: its date, due date, period and totals."""
    return [
        {
            "bill date": bill.bill_date.isoformat(),
            "due date": bill.due_date.isoformat(),
            "period": f"{bill.period_start} to {_last_day(bill.period_start, bill.period_end)}",
            "lines": str(len(bill.lines)),
            "net": money(bill.net, bill.currency),
            "tax": money(bill.tax, bill.currency),
            "gross": money(bill.gross, bill.currency),
        }
        for bill in preview.bills
    ]


def preview_summary(preview: Preview) -> str:
    """One sentence: what bill day would do for the account on the date."""
    head = f"{PREVIEW_MARK}: account {preview.account_ref} as of {preview.as_of}"
    if preview.failed:
        reasons = "; ".join(preview.failed.values())
        return f"{head}: bill day would fail this account: {reasons}"
    if not preview.bills:
        upcoming = preview.next_bill_date.isoformat() if preview.next_bill_date else "none"
        return f"{head}: nothing to bill on that date (next bill date: {upcoming})"
    totals = ", ".join(
        f"net {money(net, c)}, tax {money(tax, c)}, gross {money(gross, c)}"
        for c, (net, tax, gross) in sorted(preview.totals.items())
    )
    return f"{head}: {len(preview.bills)} bill(s), {totals}; nothing was written"
