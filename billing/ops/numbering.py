"""Gapless bill numbers per series: BRM ``pin_inv_accts``, the invoices step of bill day.

One short set-based transaction per series: the series row is locked, every unnumbered bill
gets the next numbers in (bill date, bill unit) order, and the counter moves on by that count.
That order does not depend on the order in which parallel batches committed, so a rerun after
a crash numbers exactly as an uninterrupted run. A crash rolls the whole step back, so no
number is ever skipped or used twice; the unique (series, number) constraint is the last guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from billing.store.models import Bill, BillSeries
from billing.store.sqlkit import dialect, lock_for_update, rowcount

DIGITS = 8

_NUMBER = {
    "postgresql": "lpad(CAST(:first + r.rn - 1 AS TEXT), {d}, '0')",
    "sqlite": "printf('%0{d}d', :first + r.rn - 1)",
}

_ASSIGN = """
UPDATE bills
SET number = :first + r.rn - 1,
    bill_no = :prefix || {number},
    status = 'invoiced'
FROM (
    SELECT id, row_number() OVER (ORDER BY bill_date, bill_unit_id, id) AS rn
    FROM bills
    WHERE series_code = :series AND number IS NULL
) AS r
WHERE bills.id = r.id
"""


@dataclass(frozen=True)
class Numbered:
    series: str
    first: int
    count: int


def assign_bill_numbers(
    session: Session, series_codes: Sequence[str] | None = None
) -> list[Numbered]:
    """Number every unnumbered bill, series by series (never commits); only the series of
    ``series_codes`` when given (a credit note issued by hand numbers ``CN`` alone)."""
    done = []
    query = select(BillSeries).order_by(BillSeries.code)
    if series_codes is not None:
        query = query.where(BillSeries.code.in_(list(series_codes)))
    for series in session.scalars(lock_for_update(session, query)):
        pending = session.scalar(
            select(func.count())
            .select_from(Bill)
            .where(Bill.series_code == series.code, Bill.number.is_(None))
        )
        if not pending:
            continue
        first = series.next_number
        sql = _ASSIGN.format(number=_NUMBER[dialect(session)].format(d=DIGITS))
        params = {"first": first, "prefix": series.prefix, "series": series.code}
        assigned = rowcount(session.execute(text(sql), params))
        session.execute(
            update(BillSeries)
            .where(BillSeries.code == series.code)
            .values(next_number=first + assigned)
        )
        done.append(Numbered(series.code, first, assigned))
    return done
