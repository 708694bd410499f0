"""Cn285 *RevRec Summary Journal*: revenue recognized by day, one summary journal per month.

Every invoiced bill line is split over the calendar months of its service period
``[period_start, period_end)``, by day, with largest remainder (pure, in
``billing.domain.revenue``), so its monthly shares sum to the line's net exactly. Fees
billed in advance are deferred and then recognized month by month; usage is recognized over
the days it was consumed; a credit (a negative line) gives negative shares and reverses what
it credits.

A month's summary journal takes the shares of that service month, plus the late shares of
months already locked (catch-up), and writes, per (revenue account, product, currency)::

    debit  487000 deferred revenue      credit  <product gl_account> revenue      (net > 0)
    debit  <product gl_account>         credit  487000                            (net < 0)

Prepaid credits (``billing.ops.wallets``) are no revenue when sold: a ``prepayment`` line gets
no shares. The month's wallet movements join its journal as balanced pairs
(``billing.domain.wallets.journal_lines``: purchases, consumption, breakage).

A month is ``draft`` until posted and can be re-run (it replaces its entries); a month on or
before the latest posted month is locked: running it changes nothing. Posting refuses while an
earlier month with revenue is still open. See docs/revrec.md.

RevRecError(BillingError)
+-- MonthOpenError        posting a month while an earlier month with revenue is open
+-- UnscheduledLinesError posting a month while invoiced lines of it have no shares yet
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from billing.domain.errors import BillingError
from billing.domain.money import LINE_ROUNDING, quantize_money
from billing.domain.results import Mergeable
from billing.domain.revenue import check_month, first_of_next_month, month_index, revenue_schedule
from billing.domain.revenue import previous_month as previous_month  # re-exported (flows use it)
from billing.domain.wallets import LEDGER_ACCOUNTS
from billing.ops import wallets
from billing.store.models import (
    Bill,
    BillStatus,
    Charge,
    ChargeKind,
    ContractItem,
    JournalEntry,
    PricePlan,
    Product,
)
from billing.store.models_revrec import RevenueMonth, RevenueMonthStatus, RevenueShare
from billing.store.sqlkit import insert_ignoring_duplicates, lock_for_update

DEFERRED_REVENUE_ACCOUNT = "487000"
"""Deferred revenue (PCG 487 *produits constatés d'avance*): where invoicing parks the net."""

DEFAULT_REVENUE_ACCOUNT = "706000"
"""Revenue of a line without a product (PCG 706 *prestations de services*)."""

CLOSED = "closed"  # not a RevenueMonthStatus: no header row says it
"""Status reported for a month before the latest posted month that has no header of its own."""


class RevRecError(BillingError):
    """Revenue recognition cannot do what was asked."""


class MonthOpenError(RevRecError):
    """A month cannot be posted while an earlier month with revenue is still open."""


class UnscheduledLinesError(RevRecError):
    """A month cannot be posted while invoiced lines of it have no revenue shares yet."""


@dataclass
class ScheduleResult(Mergeable):
    """Invoiced lines given their monthly shares; lines that could not be split, with why."""

    lines: int = 0
    shares: int = 0
    failed: dict[int, str] = field(default_factory=dict)


def _unscheduled_lines() -> Any:
    """Invoiced lines with a net and no revenue share yet, with their product and currency.
    Prepaid credits sold (``prepayment`` lines) are a liability, not revenue: never scheduled."""
    return (
        select(
            Charge.id,
            Charge.amount.label("net"),
            Charge.period_start,
            Charge.period_end,
            Bill.currency,
            PricePlan.product_id,
        )
        .join(Bill, Bill.id == Charge.bill_id)  # a line: a charge on an invoiced bill
        .outerjoin(ContractItem, ContractItem.id == Charge.contract_item_id)
        .outerjoin(PricePlan, PricePlan.id == ContractItem.price_plan_id)
        .where(
            Bill.status == BillStatus.INVOICED,
            Charge.amount != 0,
            Charge.kind != ChargeKind.PREPAYMENT,
            ~exists().where(RevenueShare.charge_id == Charge.id),
        )
    )


def schedule_lines(
    session: Session, *, after_id: int = 0, limit: int = 20_000
) -> tuple[ScheduleResult, int | None]:
    """Give the next ``limit`` unscheduled invoiced lines (ids after ``after_id``) their shares.

    Returns what was done and the last line id seen (None when no line was left). A line that
    cannot be split (an amount finer than its currency) is reported in ``failed`` and skipped.
    """
    rows = session.execute(
        _unscheduled_lines().where(Charge.id > after_id).order_by(Charge.id).limit(limit)
    ).all()
    result = ScheduleResult()
    shares: list[dict[str, Any]] = []
    for row in rows:
        try:
            parts = revenue_schedule(row.net, row.currency, row.period_start, row.period_end)
        except BillingError as error:
            result.failed[row.id] = str(error)
            continue
        result.lines += 1
        shares += [
            {
                "charge_id": row.id,
                "year": part.year,
                "month": part.month,
                "product_id": row.product_id,
                "currency": row.currency,
                "amount": part.amount,
            }
            for part in parts
            if part.amount != 0
        ]
    insert_ignoring_duplicates(session, RevenueShare.__table__, shares)
    result.shares = len(shares)
    return result, (rows[-1].id if rows else None)


@dataclass(frozen=True)
class JournalLine:
    """One summary journal entry as reported (amounts in the currency's minor units)."""

    gl_account: str
    product: str | None
    currency: str
    debit: Decimal
    credit: Decimal
    description: str


@dataclass
class JournalResult:
    """A month's summary journal after a run.

    ``status`` is draft, posted or closed (before a posted month); ``locked`` says the run
    changed nothing because the month was locked. ``recognized`` is the month's net revenue per
    currency (with the breakage of prepaid credits, less the free credits used: the entries of
    every account but deferred revenue, receivables and prepayments), ``deferred`` what
    invoiced lines hold for later months, ``catch_up`` the number
    of late shares of locked months that this month took.
    """

    year: int
    month: int
    status: str
    locked: bool
    entries: list[JournalLine] = field(default_factory=list)
    recognized: dict[str, Decimal] = field(default_factory=dict)
    deferred: dict[str, Decimal] = field(default_factory=dict)
    shares: int = 0
    catch_up: int = 0


def _service_index() -> Any:
    return RevenueShare.year * 12 + RevenueShare.month - 1


def locked_through(session: Session) -> int:
    """The month index of the latest posted month (-1 when none is posted)."""
    latest = session.scalar(
        select(func.max(RevenueMonth.year * 12 + RevenueMonth.month - 1)).where(
            RevenueMonth.status == RevenueMonthStatus.POSTED
        )
    )
    return -1 if latest is None else int(latest)


def open_months_before(session: Session, year: int, month: int) -> list[tuple[int, int]]:
    """Unlocked months before (year, month) that have revenue: shares of theirs, or taken."""
    after, before = locked_through(session), month_index(year, month)
    served = select(RevenueShare.year, RevenueShare.month).where(
        _service_index() > after, _service_index() < before
    )
    month_index_sql = RevenueMonth.year * 12 + RevenueMonth.month - 1
    taken = (
        select(RevenueMonth.year, RevenueMonth.month)
        .join(RevenueShare, RevenueShare.revenue_month_id == RevenueMonth.id)
        .where(
            RevenueMonth.status == RevenueMonthStatus.DRAFT,
            month_index_sql > after,
            month_index_sql < before,
        )
    )
    found = {(y, m) for y, m in session.execute(served.union(taken)).all()}
    return sorted(found)


def unscheduled_lines_through(session: Session, year: int, month: int) -> int:
    """How many invoiced lines that start by the end of (year, month) have no shares yet."""
    end = first_of_next_month(date(year, month, 1))
    query = _unscheduled_lines().where(Charge.period_start < end).subquery()
    return int(session.scalar(select(func.count()).select_from(query)) or 0)


def summary_journal(
    session: Session,
    year: int,
    month: int,
    *,
    post: bool = False,
    posted_on: date | None = None,
) -> JournalResult:
    """Write (or re-write) the month's summary journal from its shares; post it if asked.

    A locked month (on or before the latest posted month) is left as it is. Posting needs
    ``posted_on`` (the date passed in, never the clock), every earlier month with revenue
    posted, and every invoiced line of the month scheduled.
    """
    check_month(year, month)
    if post and posted_on is None:
        raise RevRecError("posting a month needs the posting date (posted_on)")
    index = month_index(year, month)
    locked = locked_through(session)
    if index <= locked:
        return _report(session, year, month, locked=True)
    if post:
        _check_postable(session, year, month)
    header = _lock_header(session, year, month)
    session.execute(
        update(RevenueShare)
        .where(RevenueShare.revenue_month_id == header.id)
        .values(revenue_month_id=None)
    )
    session.execute(
        delete(JournalEntry).where(JournalEntry.year == year, JournalEntry.month == month)
    )
    session.execute(
        update(RevenueShare)
        .where(
            RevenueShare.revenue_month_id.is_(None),
            or_(_service_index() == index, _service_index() <= locked),
        )
        .values(revenue_month_id=header.id)
    )
    session.add_all(_entries(session, header, post=post))
    session.add_all(wallets.journal_entries(session, year, month, post=post))
    if post:
        header.status = RevenueMonthStatus.POSTED
        header.posted_on = posted_on
    session.flush()
    return _report(session, year, month, locked=False)


def _check_postable(session: Session, year: int, month: int) -> None:
    still_open = open_months_before(session, year, month)
    if still_open:
        names = ", ".join(f"{y:04d}-{m:02d}" for y, m in still_open)
        raise MonthOpenError(
            f"cannot post {year:04d}-{month:02d}: earlier month(s) with revenue still open: "
            f"{names}. Post them first, in order."
        )
    missing = unscheduled_lines_through(session, year, month)
    if missing:
        raise UnscheduledLinesError(
            f"cannot post {year:04d}-{month:02d}: {missing} invoiced line(s) have no revenue "
            "shares yet; schedule them first (the RevRec Summary Journal daemon)"
        )


def _lock_header(session: Session, year: int, month: int) -> RevenueMonth:
    """The month's header, created as draft if missing, locked for this transaction."""
    insert_ignoring_duplicates(
        session,
        RevenueMonth.__table__,
        [{"year": year, "month": month, "status": RevenueMonthStatus.DRAFT}],
    )
    query = select(RevenueMonth).where(RevenueMonth.year == year, RevenueMonth.month == month)
    return session.scalars(lock_for_update(session, query)).one()


def _entries(session: Session, header: RevenueMonth, *, post: bool) -> list[JournalEntry]:
    """Two balanced entries per (revenue account, product, currency) with a non-zero net."""
    revenue_account = func.coalesce(Product.gl_account, DEFAULT_REVENUE_ACCOUNT)
    groups = session.execute(
        select(
            revenue_account.label("gl_account"),
            RevenueShare.product_id,
            Product.code,
            RevenueShare.currency,
            func.sum(RevenueShare.amount).label("net"),
        )
        .outerjoin(Product, Product.id == RevenueShare.product_id)
        .where(RevenueShare.revenue_month_id == header.id)
        .group_by(revenue_account, RevenueShare.product_id, Product.code, RevenueShare.currency)
        .order_by(revenue_account, Product.code, RevenueShare.currency)
    ).all()
    period = f"RevRec {header.year:04d}-{header.month:02d} {{}}: {{}}"
    entries = []
    for group in groups:
        if group.net == 0:
            continue
        amount = abs(group.net)
        what = group.code or "no product"
        if group.net > 0:
            debit = (DEFERRED_REVENUE_ACCOUNT, "deferred revenue released")
            credit = (group.gl_account, "revenue recognized")
        else:
            debit = (group.gl_account, "revenue reversed")
            credit = (DEFERRED_REVENUE_ACCOUNT, "deferred revenue restored")
        for (account, text), (dr, cr) in ((debit, (amount, 0)), (credit, (0, amount))):
            entries.append(
                JournalEntry(
                    year=header.year,
                    month=header.month,
                    gl_account=account,
                    product_id=group.product_id,
                    currency=group.currency,
                    debit=Decimal(dr),
                    credit=Decimal(cr),
                    description=period.format(what, text),
                    posted=post,
                )
            )
    return entries


def _report(session: Session, year: int, month: int, *, locked: bool) -> JournalResult:
    header = session.scalars(
        select(RevenueMonth).where(RevenueMonth.year == year, RevenueMonth.month == month)
    ).one_or_none()
    status = header.status.value if header is not None else CLOSED
    result = JournalResult(year, month, status, locked)
    result.entries = [_journal_line(row) for row in journal_rows(session, year, month)]
    for line in result.entries:
        if line.gl_account != DEFERRED_REVENUE_ACCOUNT and line.gl_account not in LEDGER_ACCOUNTS:
            recognized = result.recognized.get(line.currency, Decimal(0))
            result.recognized[line.currency] = recognized + line.credit - line.debit
    index = month_index(year, month)
    result.deferred = {
        currency: quantize_money(total, currency, LINE_ROUNDING)
        for currency, total in session.execute(
            select(RevenueShare.currency, func.sum(RevenueShare.amount))
            .where(_service_index() > index)
            .group_by(RevenueShare.currency)
            .order_by(RevenueShare.currency)
        ).all()
    }
    if header is not None:
        taken = session.execute(
            select(
                func.count(),
                func.count().filter(_service_index() < index),
            ).where(RevenueShare.revenue_month_id == header.id)
        ).one()
        result.shares, result.catch_up = int(taken[0]), int(taken[1])
    return result


def _journal_line(row: Any) -> JournalLine:
    return JournalLine(
        row.gl_account,
        row.product,
        row.currency,
        quantize_money(row.debit, row.currency, LINE_ROUNDING),
        quantize_money(row.credit, row.currency, LINE_ROUNDING),
        row.description,
    )


def journal_rows(session: Session, year: int, month: int) -> Sequence[Any]:
    """The month's journal entries with their product code, in the order they were written."""
    return session.execute(
        select(
            JournalEntry.year,
            JournalEntry.month,
            JournalEntry.gl_account,
            Product.code.label("product"),
            JournalEntry.currency,
            JournalEntry.debit,
            JournalEntry.credit,
            JournalEntry.description,
            JournalEntry.posted,
        )
        .outerjoin(Product, Product.id == JournalEntry.product_id)
        .where(JournalEntry.year == year, JournalEntry.month == month)
        .order_by(JournalEntry.id)
    ).all()


CSV_COLUMNS = (
    "year",
    "month",
    "status",
    "gl_account",
    "product",
    "currency",
    "debit",
    "credit",
    "description",
)


def write_journal_csv(session: Session, year: int, month: int, out: IO[str]) -> int:
    """Write the month's summary journal as CSV (amounts in minor units); return the count."""
    check_month(year, month)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = journal_rows(session, year, month)
    for row in rows:
        line = _journal_line(row)
        writer.writerow(
            (
                f"{row.year:04d}",
                f"{row.month:02d}",
                RevenueMonthStatus.POSTED if row.posted else RevenueMonthStatus.DRAFT,
                line.gl_account,
                line.product or "",
                line.currency,
                f"{line.debit:f}",
                f"{line.credit:f}",
                line.description,
            )
        )
    return len(rows)
