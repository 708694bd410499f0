"""Rate pending usage into charges (BRM rating at billing; Cn285 UTI Schedule Generator).

Set-based and idempotent, in three statements per cut-off:
1. attach: pending records before the cut-off get ``status = collected`` and their charge key;
2. aggregate: the quantity of every record attached to each key;
3. upsert: the charge is inserted, or re-priced while still ``calculated``, from that aggregate.
A charge therefore always prices exactly the records attached to it. Bill day stops after the
second step (``price_usage_for``) and writes the rows itself, already on their bill, with the
outcome the upsert would have had.

Late usage (``billing.domain.late_usage``): before that, bill day takes the pending records of
cycles its units already closed (``price_late_usage``): within their plan's window they are
attached to a delta charge of their own cycle (``lat:`` keys), beyond it they are held with
their reason. The UTI daemon holds its records beyond the window too (``hold_stale_usage``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import String, cast, func, literal, or_, select, update
from sqlalchemy.orm import Session

from billing.domain import charge_keys
from billing.domain.billplan import Unit
from billing.domain.charge_keys import KeyKind
from billing.domain.errors import BillingError
from billing.domain.late_usage import (
    delta,
    held_reason,
    original_cycle,
    within_window,
)
from billing.domain.money import LINE_ROUNDING
from billing.domain.periods import Period
from billing.domain.pricing import rate_usage
from billing.domain.usage import RatingScope, as_date, with_price_override
from billing.domain.usage import midnight as midnight  # re-exported: billrun imports it from here
from billing.ops.catalog import PlanInfo
from billing.store.models import (
    BillUnit,
    Charge,
    ChargeKind,
    ChargeStatus,
    Contract,
    ContractItem,
    UsageRecord,
    UsageStatus,
)
from billing.store.sqlkit import bulk_insert, bulk_update, id_in, key_in, rowcount


def _key_expr(scope: RatingScope):  # type: ignore[no-untyped-def]
    head, tail = scope.key_parts
    return literal(head) + cast(UsageRecord.contract_item_id, String) + literal(tail)


def _items_of(session: Session, scope: RatingScope):  # type: ignore[no-untyped-def]
    return (
        select(ContractItem.id)
        .join(Contract)
        .where(
            id_in(session, Contract.account_id, scope.account_ids),
            ContractItem.item_type.in_(scope.item_types),
        )
        .scalar_subquery()
    )


def rate_usage_for(
    session: Session, scope: RatingScope, plans: dict[int, PlanInfo], as_of: date
) -> tuple[int, dict[int, str]]:
    """Rate the scope's pending usage; returns (records collected, failed account -> reason)."""
    attached, rows, failed = price_usage_for(session, scope, plans, as_of)
    upsert_usage_charges(session, rows)
    return attached, failed


def price_usage_for(
    session: Session, scope: RatingScope, plans: dict[int, PlanInfo], as_of: date
) -> tuple[int, list[dict], dict[int, str]]:  # type: ignore[type-arg]
    """Attach the scope's pending usage and price it, without writing the charges.

    Returns (records collected, charge rows, failed account -> reason); the caller writes the
    rows with ``upsert_usage_charges`` (or in its own way, with the same outcome).
    """
    if not scope.account_ids:
        return 0, [], {}
    items = _items_of(session, scope)
    attached = rowcount(
        session.execute(
            update(UsageRecord)
            .where(
                UsageRecord.status == UsageStatus.PENDING,
                UsageRecord.occurred_at < scope.cutoff,
                UsageRecord.contract_item_id.in_(items),
            )
            .values(status=UsageStatus.COLLECTED, charge_key=_key_expr(scope))
            .execution_options(synchronize_session=False)
        )
    )
    if not attached:
        return 0, [], {}
    rows, failed = _priced_rows(session, scope, plans, as_of)
    return attached, rows, failed


def _aggregates(session: Session, scope: RatingScope) -> Iterable:  # type: ignore[type-arg]
    key = _key_expr(scope)
    return session.execute(
        select(
            UsageRecord.charge_key,
            UsageRecord.contract_item_id,
            func.sum(UsageRecord.quantity),
            func.min(UsageRecord.occurred_at),
            func.max(UsageRecord.occurred_at),
            ContractItem.price_plan_id,
            ContractItem.price_override,
            Contract.account_id,
        )
        .join(ContractItem, ContractItem.id == UsageRecord.contract_item_id)
        .join(Contract, Contract.id == ContractItem.contract_id)
        .where(UsageRecord.contract_item_id.in_(_items_of(session, scope)))
        .where(UsageRecord.charge_key == key)
        .group_by(
            UsageRecord.charge_key,
            UsageRecord.contract_item_id,
            ContractItem.price_plan_id,
            ContractItem.price_override,
            Contract.account_id,
        )
    )


def _priced_rows(
    session: Session, scope: RatingScope, plans: dict[int, PlanInfo], as_of: date
) -> tuple[list[dict], dict[int, str]]:  # type: ignore[type-arg]
    rows, failed = [], {}
    units = bill_units_of(session, scope.account_ids)
    for key, item_id, quantity, first, last, plan_id, override, account_id in _aggregates(
        session, scope
    ):
        info = plans[plan_id]
        plan = with_price_override(info.plan, override)
        try:
            rated = rate_usage(plan, quantity, LINE_ROUNDING)
        except BillingError as error:
            failed[account_id] = f"item {item_id}: {error}"
            continue
        rows.append(
            {
                "charge_key": key,
                "account_id": account_id,
                "bill_unit_id": units[account_id],
                "contract_item_id": item_id,
                "kind": ChargeKind.USAGE,
                "description": info.product_name,
                "period_start": as_date(first),
                "period_end": as_date(last) + timedelta(days=1),
                "bill_on": scope.bill_on,
                "quantity": rated.quantity,
                "unit_price": rated.unit_price,
                "amount": rated.amount,
                "currency": plan.currency,
                "tax_category": info.tax_category,
                "status": ChargeStatus.CALCULATED,
                "immediate": scope.immediate,
                "created_on": as_of,
                "corrects_charge_id": None,
            }
        )
    return rows, failed


def bill_units_of(session: Session, account_ids: Sequence[int]) -> dict[int, int]:
    """Each account's bill unit (the first one, where an account has several)."""
    rows = session.execute(
        select(BillUnit.account_id, func.min(BillUnit.id))
        .where(id_in(session, BillUnit.account_id, account_ids))
        .group_by(BillUnit.account_id)
    )
    return dict(rows.all())  # type: ignore[arg-type]


def upsert_usage_charges(session: Session, rows: list[dict]) -> None:  # type: ignore[type-arg]
    """Insert usage charges; one that exists and is still calculated is re-priced."""
    table = Charge.__table__
    bulk_insert(
        session,
        table,
        rows,
        on_conflict="update",
        update=("quantity", "unit_price", "amount", "period_end"),
        update_where=table.c.status == ChargeStatus.CALCULATED.value,
    )


# -- late usage: records of cycles already closed ---------------------------------------


@dataclass
class LateUsage:
    """What ``price_late_usage`` did: the delta charge rows (unwritten, like the rows of
    ``price_usage_for``), the records attached to each delta key, the records held, and the
    accounts whose late usage could not be priced (with the reason)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    held: int = 0
    failed: dict[int, str] = field(default_factory=dict)


def _item_ids(session: Session, account_ids: Sequence[int], item_types: Sequence[Any]):  # type: ignore[no-untyped-def]
    return (
        select(ContractItem.id)
        .join(Contract)
        .where(
            id_in(session, Contract.account_id, account_ids),
            ContractItem.item_type.in_(list(item_types)),
        )
        .scalar_subquery()
    )


def price_late_usage(
    session: Session,
    units: Sequence[Unit],
    bill_date: date,
    plans: dict[int, PlanInfo],
    as_of: date,
    item_types: Sequence[Any],
) -> LateUsage:
    """Take the units' pending usage of cycles they already closed (before midnight of their
    last bill date) out of the cycle the bill dated ``bill_date`` closes: within its plan's
    window a record is attached to the delta charge of its own cycle, billed on this bill;
    beyond it, it is held with its reason. Returns the delta rows, priced, unwritten."""
    done = LateUsage()
    by_last: dict[date, list[Unit]] = defaultdict(list)
    for unit in units:
        if unit.last_bill_date is not None:
            by_last[unit.last_bill_date].append(unit)
    attach: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    cycles: dict[str, Period] = {}
    for last, group in by_last.items():
        unit_of = {u.account_id: u for u in group}
        found = session.execute(
            select(
                UsageRecord.id,
                UsageRecord.contract_item_id,
                UsageRecord.occurred_at,
                ContractItem.price_plan_id,
                Contract.account_id,
            )
            .join(ContractItem, ContractItem.id == UsageRecord.contract_item_id)
            .join(Contract, Contract.id == ContractItem.contract_id)
            .where(
                UsageRecord.status == UsageStatus.PENDING,
                UsageRecord.occurred_at < midnight(last),
                UsageRecord.contract_item_id.in_(_item_ids(session, list(unit_of), item_types)),
            )
        )
        for record_id, item_id, occurred, plan_id, account_id in found:
            at = occurred if isinstance(occurred, datetime) else datetime.fromisoformat(occurred)
            unit, info = unit_of[account_id], plans[plan_id]
            if not within_window(at, bill_date, info.late_usage_days):
                reason = held_reason(at, bill_date, info.plan.code, info.late_usage_days)
                held.append({"id": record_id, "hold_reason": reason})
                continue
            try:
                cycle = original_cycle(at.date(), last, unit.billing_day, unit.cycle)
            except BillingError as error:  # a billing day changed since: no grid to place it
                done.failed[account_id] = f"late usage {record_id}: {error}"
                continue
            key = charge_keys.late_usage(item_id, cycle.end, bill_date)
            cycles[key] = cycle
            attach.append({"id": record_id, "charge_key": key})
    if held:
        done.held = _hold(session, held, bill_date)
    if not attach:
        return done
    bulk_update(
        session,
        UsageRecord.__table__,
        attach,
        values=lambda src: {"status": UsageStatus.COLLECTED.value, "charge_key": src.c.charge_key},
    )
    for row in attach:
        done.records[row["charge_key"]] = done.records.get(row["charge_key"], 0) + 1
    units_of = {u.account_id: u for u in units}
    _price_deltas(session, done, cycles, units_of, plans, bill_date, as_of)
    return done


def _price_deltas(
    session: Session,
    done: LateUsage,
    cycles: dict[str, Period],
    units: dict[int, Unit],
    plans: dict[int, PlanInfo],
    bill_date: date,
    as_of: date,
) -> None:
    """Price each delta key: its cycle's whole quantity less what the cycle was billed."""
    keys = sorted(cycles)
    late = session.execute(
        select(
            UsageRecord.charge_key,
            UsageRecord.contract_item_id,
            func.sum(UsageRecord.quantity),
            ContractItem.price_plan_id,
            ContractItem.price_override,
            Contract.account_id,
        )
        .join(ContractItem, ContractItem.id == UsageRecord.contract_item_id)
        .join(Contract, Contract.id == ContractItem.contract_id)
        .where(key_in(session, UsageRecord.charge_key, keys))
        .group_by(
            UsageRecord.charge_key,
            UsageRecord.contract_item_id,
            ContractItem.price_plan_id,
            ContractItem.price_override,
            Contract.account_id,
        )
    ).all()
    billed = _billed_before(session, [row[1] for row in late])
    for key, item_id, quantity, plan_id, override, account_id in late:
        cycle = cycles[key]
        info = plans[plan_id]
        plan = with_price_override(info.plan, override)
        before = [c for c in billed.get((item_id, cycle.end), []) if c[1] != key]
        original = next((c[0] for c in before if c[1].startswith(KeyKind.USAGE.value)), None)
        try:
            rated = delta(
                plan,
                sum((c[2] for c in before), Decimal(0)),
                sum((c[3] for c in before), Decimal(0)),
                quantity,
            )
        except BillingError as error:
            done.failed[account_id] = f"item {item_id}: {error}"
            continue
        done.rows.append(
            {
                "charge_key": key,
                "account_id": account_id,
                "bill_unit_id": units[account_id].id,
                "contract_item_id": item_id,
                "kind": ChargeKind.USAGE,
                "description": info.product_name,
                "period_start": cycle.start,
                "period_end": cycle.end,
                "bill_on": bill_date,
                "quantity": rated.quantity,
                "unit_price": rated.unit_price,
                "amount": rated.amount,
                "currency": plan.currency,
                "tax_category": info.tax_category,
                "status": ChargeStatus.CALCULATED,
                "immediate": False,
                "created_on": as_of,
                "corrects_charge_id": original,
            }
        )


def _billed_before(
    session: Session, item_ids: Sequence[int]
) -> dict[tuple[int, date], list[tuple[int, str, Decimal, Decimal]]]:
    """The usage charges already made for each (item, cycle bill date): the cycle's own
    (``use:``) and earlier deltas (``lat:``), as (id, key, quantity, amount)."""
    found: dict[tuple[int, date], list[tuple[int, str, Decimal, Decimal]]] = defaultdict(list)
    if not item_ids:
        return found
    rows = session.execute(
        select(Charge.id, Charge.charge_key, Charge.quantity, Charge.amount).where(
            id_in(session, Charge.contract_item_id, sorted(set(item_ids))),
            Charge.kind == ChargeKind.USAGE,
            Charge.status != ChargeStatus.CANCELLED,
            or_(
                Charge.charge_key.like(charge_keys.like_kind(KeyKind.USAGE)),
                Charge.charge_key.like(charge_keys.like_kind(KeyKind.LATE_USAGE)),
            ),
        )
    )
    for charge_id, key, quantity, amount in sorted(rows, key=lambda r: r[0]):
        parsed = charge_keys.parse_key(key)
        assert parsed.on is not None
        found[(int(parsed.owner), parsed.on)].append((charge_id, key, quantity, amount))
    return found


def hold_stale_usage(
    session: Session, scope: RatingScope, plans: dict[int, PlanInfo], bill_date: date
) -> int:
    """Hold the scope's pending records older than their plan's late usage window at
    ``bill_date`` (a UTI run's date: UTI usage has no cycle, only the window); returns how
    many."""
    if not scope.account_ids:
        return 0
    oldest = min((p.late_usage_days for p in plans.values()), default=0)
    found = session.execute(
        select(UsageRecord.id, UsageRecord.occurred_at, ContractItem.price_plan_id)
        .join(ContractItem, ContractItem.id == UsageRecord.contract_item_id)
        .where(
            UsageRecord.status == UsageStatus.PENDING,
            UsageRecord.occurred_at < midnight(bill_date - timedelta(days=oldest)),
            UsageRecord.contract_item_id.in_(_items_of(session, scope)),
        )
    )
    held = []
    for record_id, occurred, plan_id in found:
        at = occurred if isinstance(occurred, datetime) else datetime.fromisoformat(occurred)
        info = plans[plan_id]
        if not within_window(at, bill_date, info.late_usage_days):
            reason = held_reason(at, bill_date, info.plan.code, info.late_usage_days)
            held.append({"id": record_id, "hold_reason": reason})
    return _hold(session, held, bill_date)


def _hold(session: Session, held: list[dict[str, Any]], bill_date: date) -> int:
    """Mark usage records held on ``bill_date``, each with its reason; returns how many."""
    if held:
        bulk_update(
            session,
            UsageRecord.__table__,
            held,
            values=lambda src: {
                "status": UsageStatus.HELD.value,
                "held_on": bill_date,
                "hold_reason": src.c.hold_reason,
            },
        )
    return len(held)
