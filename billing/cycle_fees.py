"""BRM ``pin_cycle_fees``: cancel products whose pending cancel date has passed, and apply the
cycle-forward (in advance) fees of items bought since their unit's last bill.

A cancelled item gets a credit for the part of an advance fee after its cancel date; the
forward fee of a mid-cycle purchase becomes a calculated charge that the next bill takes.
Both are keyed charges, so running the step twice for a date adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from billing.billrun import Unit, charge_row, item_terms, load_units, record_failures, schedule_for
from billing.catalog import load_plans
from billing.errors import BillingError
from billing.models import (
    BillUnit,
    Charge,
    ChargeKind,
    ChargeStatus,
    Contract,
    ContractItem,
    ItemStatus,
    ItemType,
    PricePlan,
    Timing,
)
from billing.schedule import ChargeSpec, cancellation_credit
from billing.sqlkit import insert_ignoring_duplicates

STEP = "cycle_fees"


@dataclass
class CycleFeesResult:
    cancelled_items: int = 0
    credits: int = 0
    forward_units: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def _unit_ids_of_accounts(session: Session, account_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(BillUnit.account_id, func.min(BillUnit.id))
        .where(BillUnit.account_id.in_(account_ids))
        .group_by(BillUnit.account_id)
    )
    return dict(rows.all())  # type: ignore[arg-type]


def cancel_due_items(session: Session, as_of: date, run_id: str, result: CycleFeesResult) -> None:
    """Cancel items whose pending cancel date is on or before ``as_of``, with their credits."""
    due = session.execute(
        select(ContractItem, Contract.account_id, Contract.end_date)
        .join(Contract)
        .where(
            ContractItem.status == ItemStatus.ACTIVE,
            ContractItem.pending_cancel_date <= as_of,
        )
        .order_by(ContractItem.id)
    ).all()
    if not due:
        return
    plans = load_plans(session)
    units = {
        u.account_id: u
        for u in load_units(
            session, list(_unit_ids_of_accounts(session, [a for _, a, _ in due]).values())
        )
    }
    rows, failed = [], {}
    for item, account_id, contract_end in due:
        unit = units[account_id]
        try:
            rows.extend(_credits(session, item, contract_end, unit, plans, as_of))
        except BillingError as error:
            failed[unit.id] = f"item {item.ref}: {error}"
            continue
        item.status = ItemStatus.CANCELLED
        cancel_on = item.pending_cancel_date
        if item.end_date is None or (cancel_on is not None and cancel_on < item.end_date):
            item.end_date = cancel_on
        result.cancelled_items += 1
    insert_ignoring_duplicates(session, Charge.__table__, rows)
    result.credits += len(rows)
    record_failures(session, list(units.values()), failed, run_id, as_of, STEP)
    result.failed.update({u.account_ref: failed[u.id] for u in units.values() if u.id in failed})


def _credits(session, item, contract_end, unit: Unit, plans, as_of: date) -> list[dict]:  # type: ignore[no-untyped-def]
    info = plans[item.price_plan_id]
    if item.item_type != ItemType.RECURRING or info.plan.timing != Timing.ADVANCE.value:
        return []
    cancel_on = item.pending_cancel_date
    terms = item_terms(item, contract_end, info)
    charged = session.scalars(
        select(Charge).where(
            Charge.contract_item_id == item.id,
            Charge.kind == ChargeKind.RECURRING,
            Charge.status.in_(
                (ChargeStatus.CALCULATED, ChargeStatus.OPEN, ChargeStatus.CLOSED)
            ),  # a planned forecast line was never charged: nothing to credit
            Charge.period_end > cancel_on,
        )
    ).all()
    rows = []
    for charge in charged:
        spec = ChargeSpec(
            charge.charge_key,
            "recurring",
            item.id,
            charge.description,
            charge.period_start,
            charge.period_end,
            charge.bill_on,
            charge.quantity,
            charge.unit_price,
            charge.amount,
            charge.tax_category,
        )
        credit = cancellation_credit(terms, unit.grid, spec, cancel_on)
        if credit is not None:
            rows.append(charge_row(credit, unit, as_of, unit.currency))
    return rows


def apply_forward_fees(session: Session, as_of: date, run_id: str, result: CycleFeesResult) -> None:
    """Advance fees of items bought since their unit's last bill, up to ``as_of``."""
    unit_ids = session.scalars(
        select(BillUnit.id)
        .distinct()
        .join(Contract, Contract.account_id == BillUnit.account_id)
        .join(ContractItem, ContractItem.contract_id == Contract.id)
        .join(PricePlan, PricePlan.id == ContractItem.price_plan_id)
        .where(
            ContractItem.item_type == ItemType.RECURRING,
            PricePlan.timing == Timing.ADVANCE,
            ContractItem.start_date <= as_of,
            or_(
                BillUnit.last_bill_date.is_(None), ContractItem.start_date > BillUnit.last_bill_date
            ),
        )
    ).all()
    if not unit_ids:
        return
    units = load_units(session, unit_ids)
    failed: dict[int, str] = {}
    schedule_for(
        session,
        units,
        load_plans(session),
        as_of,
        failed,
        through=lambda _unit: as_of,
        timing=Timing.ADVANCE.value,
    )
    record_failures(session, units, failed, run_id, as_of, STEP)
    result.forward_units += len(units) - len(failed)
    result.failed.update({u.account_ref: failed[u.id] for u in units if u.id in failed})


def cycle_fees(session: Session, as_of: date, run_id: str) -> CycleFeesResult:
    """Run both halves of pin_cycle_fees as of ``as_of`` (never commits)."""
    result = CycleFeesResult()
    cancel_due_items(session, as_of, run_id, result)
    apply_forward_fees(session, as_of, run_id, result)
    return result
