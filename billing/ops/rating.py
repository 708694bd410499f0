"""Rate pending usage into charges (BRM rating at billing; Cn285 UTI Schedule Generator).

Set-based and idempotent, in three statements per cut-off:
1. attach: pending records before the cut-off get ``status = collected`` and their charge key;
2. aggregate: the quantity of every record attached to each key;
3. upsert: the charge is inserted, or re-priced while still ``calculated``, from that aggregate.
A charge therefore always prices exactly the records attached to it. Bill day stops after the
second step (``price_usage_for``) and writes the rows itself, already on their bill, with the
outcome the upsert would have had.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from sqlalchemy import String, cast, func, literal, select, update
from sqlalchemy.orm import Session

from billing.domain.errors import BillingError
from billing.domain.money import LINE_ROUNDING
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
from billing.store.sqlkit import bulk_insert, id_in, rowcount


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
