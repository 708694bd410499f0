"""BRM ``pin_cycle_fees``: cancel products whose pending cancel date has passed, and apply the
cycle-forward (in advance) fees of items bought since their unit's last bill.

A cancelled item gets a credit for the part of a fee charged after its cancel date (the first
day not served); the forward fee of a mid-cycle purchase becomes a calculated charge that the
next bill takes. Both are keyed charges, so running the step twice for a date adds nothing.

Bill day cancels twice: ``cancellations`` before billing, so that a cancellation due by the
bill date is credited on the bill it makes (a termination processed on Nov 20 is on the
Dec 1 bill), and ``cycle_fees`` after it, for what was set in between. A credit for a period
already billed names the fee it corrects, and one due on or before its unit's last bill is
billed on the next bill (``billing.domain.corrections``): it never waits behind a bill made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from billing.domain.errors import BillingError
from billing.ops.catalog import load_plans
from billing.ops.changes import end_item
from billing.ops.charging import item_terms, load_units, record_failures, scheduled_rows
from billing.ops.rating import bill_units_of
from billing.store.models import (
    BillUnit,
    Charge,
    Contract,
    ContractItem,
    ItemStatus,
    ItemType,
    PricePlan,
    Timing,
)
from billing.store.sqlkit import insert_ignoring_duplicates

STEP = "cycle_fees"


@dataclass
class CycleFeesResult:
    cancelled_items: int = 0
    credits: int = 0
    forward_units: int = 0
    failed: dict[str, str] = field(default_factory=dict)


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
        for u in load_units(session, list(bill_units_of(session, [a for _, a, _ in due]).values()))
    }
    failed: dict[int, str] = {}
    for item, account_id, contract_end in due:
        unit = units[account_id]
        try:
            with session.begin_nested():
                terms = item_terms(item, contract_end, plans[item.price_plan_id])
                cancel_on = item.pending_cancel_date
                assert cancel_on is not None  # selected on it
                result.credits += end_item(session, item, terms, unit, cancel_on, as_of)
                item.status = ItemStatus.CANCELLED
        except BillingError as error:
            failed[unit.id] = f"item {item.ref}: {error}"
            continue
        result.cancelled_items += 1
    record_failures(session, list(units.values()), failed, run_id, as_of, STEP)
    result.failed.update({u.account_ref: failed[u.id] for u in units.values() if u.id in failed})


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
    rows = scheduled_rows(
        session,
        units,
        load_plans(session),
        as_of,
        failed,
        through=lambda _unit: as_of,
        timing=Timing.ADVANCE.value,
    )
    insert_ignoring_duplicates(session, Charge.__table__, rows)
    record_failures(session, units, failed, run_id, as_of, STEP)
    result.forward_units += len(units) - len(failed)
    result.failed.update({u.account_ref: failed[u.id] for u in units if u.id in failed})


def cancellations(session: Session, as_of: date, run_id: str) -> CycleFeesResult:
    """Only the cancellations due by ``as_of``, with their credits (never commits): bill day
    runs them before billing."""
    result = CycleFeesResult()
    cancel_due_items(session, as_of, run_id, result)
    return result


def cycle_fees(session: Session, as_of: date, run_id: str) -> CycleFeesResult:
    """Run both halves of pin_cycle_fees as of ``as_of`` (never commits)."""
    result = CycleFeesResult()
    cancel_due_items(session, as_of, run_id, result)
    apply_forward_fees(session, as_of, run_id, result)
    return result
