"""Charge-writing helpers on a session, shared by the bill run, cycle fees and the daemons.

``load_units`` reads bill units with their accounts' billing facts; ``item_terms`` and
``scheduled_rows`` turn contract items into the schedule's terms and charge rows;
``record_failures`` marks failed units and keeps their billing issues. The bill run
(``billrun``), cycle fees (``cycle_fees``), changes and renewal all use them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing.domain.billplan import Item, Unit, fee_specs
from billing.domain.errors import BillingError
from billing.domain.schedule import ChargeSpec, ItemTerms
from billing.ops.catalog import PlanInfo
from billing.store.models import (
    Account,
    BillingIssue,
    BillingState,
    BillUnit,
    ChargeStatus,
    Contract,
    ContractItem,
    ItemType,
)
from billing.store.sqlkit import id_in

__all__ = [
    "Unit",
    "charge_row",
    "item_terms",
    "items_by_account",
    "load_units",
    "record_failures",
    "scheduled_rows",
    "unit_items",
]


def load_units(session: Session, unit_ids: Sequence[int]) -> list[Unit]:
    """Bill units with their accounts' billing facts, in id order."""
    rows = session.execute(
        select(
            BillUnit.id,
            BillUnit.account_id,
            Account.ref,
            Account.currency,
            Account.country,
            Account.payment_terms_days,
            BillUnit.billing_day,
            BillUnit.cycle,
            BillUnit.next_bill_date,
            BillUnit.last_bill_date,
            BillUnit.series_code,
            Account.customer_type,
            BillUnit.usage_through_id,
        )
        .join(Account, Account.id == BillUnit.account_id)
        .where(id_in(session, BillUnit.id, unit_ids))
        .order_by(BillUnit.id)
    )
    return [
        Unit(
            id=r.id,
            account_id=r.account_id,
            account_ref=r.ref,
            currency=r.currency,
            country=r.country,
            terms=r.payment_terms_days,
            billing_day=r.billing_day,
            cycle=r.cycle.value,
            next_bill_date=r.next_bill_date,
            last_bill_date=r.last_bill_date,
            series_code=r.series_code,
            business=r.customer_type == "business",
            usage_through_id=r.usage_through_id or 0,
        )
        for r in rows
    ]


def items_by_account(
    session: Session, account_ids: Sequence[int], types: tuple[ItemType, ...]
) -> dict[int, list[Any]]:
    """The accounts' items (as rows, not ORM objects: a batch loads tens of thousands)."""
    item = ContractItem
    rows = session.execute(
        select(
            item.id,
            item.ref,
            item.item_type,
            item.price_plan_id,
            item.quantity,
            item.price_override,
            item.start_date,
            item.end_date,
            item.pending_cancel_date,
            item.trial_end_date,
            Contract.account_id,
            Contract.end_date.label("contract_end"),
        )
        .join(Contract)
        .where(id_in(session, Contract.account_id, account_ids), item.item_type.in_(types))
        .order_by(item.id)
    )
    found: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        found[row.account_id].append((row, row.contract_end))
    return found


def item_terms(item: Any, contract_end: date | None, info: PlanInfo) -> ItemTerms:
    """The schedule's view of an item: it ends at its end, its contract's or its cancel date;
    its fee starts at its trial end, if it has one."""
    ends = [d for d in (item.end_date, contract_end, item.pending_cancel_date) if d is not None]
    return ItemTerms(
        item_id=item.id,
        item_type=item.item_type.value,
        description=info.product_name,
        plan=info.plan,
        tax_category=info.tax_category,
        quantity=item.quantity,
        price_override=item.price_override,
        start=item.start_date,
        end=min(ends) if ends else None,
        trial_end=item.trial_end_date,
    )


def unit_items(
    session: Session, units: Sequence[Unit], plans: dict[int, PlanInfo]
) -> dict[int, tuple[Item, ...]]:
    """Each unit's recurring and one-time items, as the schedule reads them, in id order."""
    items = items_by_account(
        session, [u.account_id for u in units], (ItemType.RECURRING, ItemType.ONE_TIME)
    )
    return {
        unit.id: tuple(
            Item(row.ref, item_terms(row, contract_end, plans[row.price_plan_id]))
            for row, contract_end in items.get(unit.account_id, ())
        )
        for unit in units
    }


def charge_row(spec: ChargeSpec, unit: Unit, as_of: date, currency: str) -> dict[str, Any]:
    """The charges-table row of a spec, for ``unit``."""
    return {
        **spec.__dict__,
        "account_id": unit.account_id,
        "bill_unit_id": unit.id,
        "currency": currency,
        "status": ChargeStatus.CALCULATED,
        "immediate": False,
        "created_on": as_of,
    }


def scheduled_rows(
    session: Session,
    units: Sequence[Unit],
    plans: dict[int, PlanInfo],
    as_of: date,
    failed: dict[int, str],
    *,
    through: Callable[[Unit], date],
    timing: str | None = None,
) -> list[dict[str, Any]]:
    """The charges-table rows of every scheduled fee of the units' items billable by
    ``through(unit)``; a unit whose fees cannot be priced is put in ``failed``."""
    items = unit_items(session, units, plans)
    rows: list[dict[str, Any]] = []
    for unit in units:
        try:  # item by item: the fees of the items before a bad one are kept
            for item in items[unit.id]:
                specs = fee_specs(unit, [item], through(unit), timing)
                rows.extend(charge_row(s, unit, as_of, unit.currency) for s in specs)
        except BillingError as error:
            failed[unit.id] = str(error)
    return rows


def record_failures(
    session: Session,
    units: Sequence[Unit],
    failed: dict[int, str],
    run_id: str,
    as_of: date,
    step: str,
) -> None:
    """Mark failed units (BRM billing_state 4) and keep a billing issue with the reason."""
    for unit in units:
        if unit.id not in failed:
            continue
        reason = failed[unit.id]
        session.execute(
            update(BillUnit)
            .where(BillUnit.id == unit.id)
            .values(billing_state=BillingState.FAILED, failure_reason=reason)
            .execution_options(synchronize_session=False)
        )
        session.add(
            BillingIssue(
                run_id=run_id,
                step=step,
                account_id=unit.account_id,
                bill_unit_id=unit.id,
                as_of=as_of,
                reason=reason,
            )
        )
    session.flush()
