"""The billing state that must come out the same after a crash or a concurrent run.

Rows are compared by business keys (bill keys, charge keys, refs), never by surrogate ids,
which a crashed transaction may have consumed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import aliased

from billing.store.db import unit_of_work
from billing.store.models import Account, Bill, BillSeries, BillUnit, Charge
from billing.store.usage import usage_marks


def billing_state(engine: Engine) -> dict[str, Any]:
    billed_by = aliased(Bill)
    with unit_of_work(engine) as s:
        return {
            "bills": s.execute(
                select(
                    Bill.bill_key,
                    Bill.number,
                    Bill.bill_no,
                    Bill.status,
                    Bill.bill_date,
                    Bill.net,
                    Bill.tax,
                    Bill.gross,
                ).order_by(Bill.bill_key)
            ).all(),
            "lines": s.execute(
                select(
                    Bill.bill_key,
                    Charge.line_no,
                    Charge.description,
                    Charge.amount,
                    Charge.tax,
                )
                .join(Bill, Bill.id == Charge.bill_id)
                .order_by(Bill.bill_key, Charge.line_no)
            ).all(),
            "charges": s.execute(
                select(Charge.charge_key, Charge.status, Charge.amount, billed_by.bill_key)
                .outerjoin(billed_by, billed_by.id == Charge.bill_id)
                .order_by(Charge.charge_key)
            ).all(),
            "usage": sorted((k, *mark) for k, mark in usage_marks(s).items()),
            "units": s.execute(
                select(
                    BillUnit.id,
                    BillUnit.next_bill_date,
                    BillUnit.last_bill_date,
                    BillUnit.billing_state,
                ).order_by(BillUnit.id)
            ).all(),
            "balances": s.execute(select(Account.ref, Account.balance).order_by(Account.ref)).all(),
            "series": s.execute(
                select(BillSeries.code, BillSeries.next_number).order_by(BillSeries.code)
            ).all(),
        }
