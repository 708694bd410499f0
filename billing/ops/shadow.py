"""The shadow bill run's two sides, read from the database, and its CSV file.

**The previous cycle** of a bill unit whose cycle is due on the run's date
(``next_bill_date <= as_of``) is the cycle it closed last: the one that ended on its
``last_bill_date``. What the unit was billed in it is its cycle bill of that date
(``cyc:{unit}:{last_bill_date}``), numbered or not. A unit that closed that cycle without a
bill (nothing to bill), or has never closed one, was not billed in its previous cycle; an
older bill does not stand in for it. Units due only for immediate (UTI) charges, and the
immediate bills themselves, are outside the comparison: they follow usage, not the cycle.

**This run** is the cycle bills the dry run made (``bills.run_id``, read inside the dry run's
transaction before it rolls back: ``billing.ops.billrun.bill_batch``'s ``read_back``). A unit
several cycles behind is billed for each of them, so its bills add up against the one
previous cycle.

Both sides come per account and currency (``billing.domain.shadow.Billed``); the comparison
itself is ``billing.domain.shadow.compare``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from billing.domain.charge_keys import KeyKind, like_kind
from billing.domain.shadow import CSV_HEADER, Billed, ShadowReport, csv_rows
from billing.store.models import Account, Bill, BillUnit
from billing.store.sqlkit import id_in

_CYCLE_BILL = like_kind(KeyKind.CYCLE_BILL)


def previous_cycle(session: Session, unit_ids: Sequence[int], as_of: date) -> list[Billed]:
    """Per account and currency, the previous cycle's bills of those of ``unit_ids`` whose
    cycle is due on ``as_of`` (see the module's docstring)."""
    if not unit_ids:
        return []
    rows = session.execute(
        select(Account.ref, Bill.currency, func.count(Bill.id), func.sum(Bill.gross))
        .select_from(BillUnit)
        .join(Account, Account.id == BillUnit.account_id)
        .join(
            Bill,
            and_(
                Bill.bill_unit_id == BillUnit.id,
                Bill.bill_date == BillUnit.last_bill_date,
                Bill.bill_key.like(_CYCLE_BILL),
            ),
        )
        .where(id_in(session, BillUnit.id, unit_ids), BillUnit.next_bill_date <= as_of)
        .group_by(Account.ref, Bill.currency)
    ).all()
    return [Billed(ref, currency, int(bills), gross) for ref, currency, bills, gross in rows]


def billed_in_run(session: Session, run_id: str) -> list[Billed]:
    """Per account and currency, the cycle bills run ``run_id`` made (in this transaction)."""
    rows = session.execute(
        select(Account.ref, Bill.currency, func.count(Bill.id), func.sum(Bill.gross))
        .join(Account, Account.id == Bill.account_id)
        .where(Bill.run_id == run_id, Bill.bill_key.like(_CYCLE_BILL))
        .group_by(Account.ref, Bill.currency)
    ).all()
    return [Billed(ref, currency, int(bills), gross) for ref, currency, bills, gross in rows]


def write_csv(report: ShadowReport, path: Path) -> Path:
    """The report as CSV (``billing.domain.shadow.csv_rows``) at ``path``; its parents are
    made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_HEADER)
        writer.writerows(csv_rows(report))
    return path
