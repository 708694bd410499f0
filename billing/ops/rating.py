"""Rate usage into charges (BRM rating at billing; Cn285 UTI Schedule Generator).

Set-based and idempotent, and no usage record is written (``billing.store.usage``): a charge
names the records it prices by range. For each cut-off, one statement sums, per item, the
records stamped before it (and from the previous cut-off, for a cycle) with ids up to the
watermark that no charge prices yet (``uncovered``); each sum is priced (exactly, in Python,
per item) into a charge row that carries its range. The upsert inserts it, or re-prices a
charge of the same key that is still ``calculated`` (its records are counted again, since the
sum leaves out that charge's own range). Bill day stops before the upsert (``price_usage_for``)
and writes the rows itself, already on their bill, with the outcome the upsert would have had.

Late usage (``billing.domain.late_usage``): before that, bill day takes the records of cycles
its units already closed that arrived after those cycles were rated (above each unit's
watermark, ``price_late_usage``): within their plan's window they go to a delta charge of
their own cycle (``lat:`` keys, ranged on that cycle), beyond it they are held with their
reason, the only per-record write left. The UTI daemon holds its records beyond the window
too (``hold_stale_usage``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

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
from billing.store.sqlkit import bulk_insert, bulk_update, id_in, key_in
from billing.store.usage import watermark


def _items_of(session: Session, scope: RatingScope):  # type: ignore[no-untyped-def]
    return _item_ids(session, scope.account_ids, scope.item_types)


def uncovered(record: Any = UsageRecord, *, but: str | None = None) -> ColumnElement[bool]:
    """No usage charge's range holds ``record`` (``billing.store.usage.COVERS``), leaving out
    the charges still ``calculated`` whose key is LIKE ``but``: the ones a rating re-prices
    (the upsert updates only those), whose records it counts again."""
    k = aliased(Charge)
    conditions = [
        k.contract_item_id == record.contract_item_id,
        k.usage_through_id >= record.id,
        k.usage_before > record.occurred_at,
        or_(k.usage_since.is_(None), k.usage_since <= record.occurred_at),
    ]
    if but is not None:
        conditions.append(
            or_(k.charge_key.not_like(but), k.status != ChargeStatus.CALCULATED.value)
        )
    return ~exists().where(*conditions)


def rate_usage_for(
    session: Session, scope: RatingScope, plans: dict[int, PlanInfo], as_of: date
) -> tuple[int, dict[int, str]]:
    """Rate the scope's usage not rated yet; returns (records rated, failed account -> reason).

    A key whose charge is billed already (a rerun of a UTI run after the Billing daemon took
    its line) cannot be re-priced: its new records are left to a later run."""
    counts, rows, failed = price_usage_for(session, scope, plans, as_of, watermark(session))
    billed = set(
        session.scalars(
            select(Charge.charge_key).where(
                key_in(session, Charge.charge_key, [row["charge_key"] for row in rows]),
                Charge.status != ChargeStatus.CALCULATED,
            )
        )
    )
    rows = [row for row in rows if row["charge_key"] not in billed]
    upsert_usage_charges(session, rows)
    return sum(counts[row["charge_key"]] for row in rows), failed


def unpriced_usage(
    session: Session,
    items: Any,
    cutoff: datetime,
    through: int,
    since: datetime | None,
    *,
    but: str | None = None,
) -> list[Any]:
    """Per usage item among ``items`` (a subquery of item ids), its pending records stamped in
    ``[since, cutoff)`` with ids up to ``through`` that no charge prices yet (``but``: a charge
    whose key matches that pattern does not count): rows of (item id, quantity, records, first
    and last stamp, price plan id, price override, account id). Rating at billing and the
    usage thresholds (``billing.ops.thresholds``) read their usage with it."""
    conditions = [
        UsageRecord.contract_item_id.in_(items),
        UsageRecord.status == UsageStatus.PENDING,
        UsageRecord.occurred_at < cutoff,
        UsageRecord.id <= through,
        uncovered(but=but),
    ]
    if since is not None:
        conditions.append(UsageRecord.occurred_at >= since)
    return list(
        session.execute(
            select(
                UsageRecord.contract_item_id,
                func.sum(UsageRecord.quantity),
                func.count(),
                func.min(UsageRecord.occurred_at),
                func.max(UsageRecord.occurred_at),
                ContractItem.price_plan_id,
                ContractItem.price_override,
                Contract.account_id,
            )
            .join(ContractItem, ContractItem.id == UsageRecord.contract_item_id)
            .join(Contract, Contract.id == ContractItem.contract_id)
            .where(*conditions)
            .group_by(
                UsageRecord.contract_item_id,
                ContractItem.price_plan_id,
                ContractItem.price_override,
                Contract.account_id,
            )
        )
    )


def price_usage_for(
    session: Session,
    scope: RatingScope,
    plans: dict[int, PlanInfo],
    as_of: date,
    through: int,
    since: datetime | None = None,
) -> tuple[dict[str, int], list[dict], dict[int, str]]:  # type: ignore[type-arg]
    """Price the scope's records stamped in ``[since, cutoff)`` with ids up to ``through`` that
    no charge prices yet, one charge row per item, without writing anything.

    Returns (records priced per charge key, charge rows, failed account -> reason); each row
    carries its range (``billing.store.usage``), and the caller writes the rows with
    ``upsert_usage_charges`` (or in its own way, with the same outcome). A charge of the same
    key that exists (a rating of the same cut-off that was not billed) is counted again, so
    its re-priced row holds its records and the new ones.
    """
    if not scope.account_ids:
        return {}, [], {}
    found = unpriced_usage(
        session,
        _items_of(session, scope),
        scope.cutoff,
        through,
        since,
        but=scope.key_pattern,
    )
    if not found:
        return {}, [], {}
    rows, failed = [], {}
    counts: dict[str, int] = {}
    units = bill_units_of(session, scope.account_ids)
    for item_id, quantity, records, first, last, plan_id, override, account_id in found:
        info = plans[plan_id]
        plan = with_price_override(info.plan, override)
        try:
            rated = rate_usage(plan, quantity, LINE_ROUNDING)
        except BillingError as error:
            failed[account_id] = f"item {item_id}: {error}"
            continue
        counts[scope.key_for(item_id)] = records
        rows.append(
            usage_charge_row(
                key=scope.key_for(item_id),
                account_id=account_id,
                bill_unit_id=units[account_id],
                item_id=item_id,
                info=info,
                rated=rated,
                period=(as_date(first), as_date(last) + timedelta(days=1)),
                bill_on=scope.bill_on,
                created_on=as_of,
                usage=(through, since, scope.cutoff),
                immediate=scope.immediate,
            )
        )
    return counts, rows, failed


def usage_charge_row(
    *,
    key: str,
    account_id: int,
    bill_unit_id: int,
    item_id: int,
    info: PlanInfo,
    rated: Any,
    period: tuple[date, date],
    bill_on: date,
    created_on: date,
    usage: tuple[int, datetime | None, datetime],
    immediate: bool = False,
    corrects_charge_id: int | None = None,
) -> dict[str, Any]:
    """A calculated usage charge's row: ``rated`` (quantity, unit price, amount) of an item
    on ``info``'s plan, for ``period``, pricing the records of ``usage`` (the watermark, and the
    stamps ``[since, before)``: ``billing.store.usage``). Rating at billing, late usage and the
    usage thresholds write the same row."""
    through, since, before = usage
    return {
        "charge_key": key,
        "account_id": account_id,
        "bill_unit_id": bill_unit_id,
        "contract_item_id": item_id,
        "kind": ChargeKind.USAGE,
        "description": info.product_name,
        "period_start": period[0],
        "period_end": period[1],
        "bill_on": bill_on,
        "quantity": rated.quantity,
        "unit_price": rated.unit_price,
        "amount": rated.amount,
        "currency": info.plan.currency,
        "tax_category": info.tax_category,
        "status": ChargeStatus.CALCULATED,
        "immediate": immediate,
        "created_on": created_on,
        "corrects_charge_id": corrects_charge_id,
        "usage_through_id": through,
        "usage_since": since,
        "usage_before": before,
    }


def bill_units_of(session: Session, account_ids: Sequence[int]) -> dict[int, int]:
    """Each account's bill unit (the first one, where an account has several)."""
    rows = session.execute(
        select(BillUnit.account_id, func.min(BillUnit.id))
        .where(id_in(session, BillUnit.account_id, account_ids))
        .group_by(BillUnit.account_id)
    )
    return dict(rows.all())  # type: ignore[arg-type]


def upsert_usage_charges(session: Session, rows: list[dict]) -> None:  # type: ignore[type-arg]
    """Insert usage charges; one that exists and is still calculated is re-priced, its range
    extended to the new watermark."""
    table = Charge.__table__
    bulk_insert(
        session,
        table,
        rows,
        on_conflict="update",
        update=("quantity", "unit_price", "amount", "period_end", "usage_through_id"),
        update_where=table.c.status == ChargeStatus.CALCULATED.value,
    )


# -- late usage: records of cycles already closed ---------------------------------------


@dataclass
class LateUsage:
    """What ``price_late_usage`` did: the delta charge rows (unwritten, like the rows of
    ``price_usage_for``), the records each delta key prices, the records held, and the
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


@dataclass
class _Delta:
    """The late records of one delta key, summed as they are read."""

    item_id: int
    plan_id: int
    override: Decimal | None
    account_id: int
    cycle: Period
    quantity: Decimal = Decimal(0)
    records: int = 0


def price_late_usage(
    session: Session,
    units: Sequence[Unit],
    bill_date: date,
    plans: dict[int, PlanInfo],
    as_of: date,
    item_types: Sequence[Any],
    through: int,
) -> LateUsage:
    """Price the units' usage of cycles they already closed (stamped before midnight of their
    last bill date) that arrived after those cycles were rated (ids above the unit's
    watermark, up to ``through``) and that no charge prices: within its plan's window a record
    goes to the delta charge of its own cycle, billed on the bill dated ``bill_date``; beyond
    it, it is held with its reason. Returns the delta rows, priced, unwritten."""
    done = LateUsage()
    by_last: dict[date, list[Unit]] = defaultdict(list)
    for unit in units:
        if unit.last_bill_date is not None:
            by_last[unit.last_bill_date].append(unit)
    held: list[dict[str, Any]] = []
    deltas: dict[str, _Delta] = {}
    again = charge_keys.like_late_usage_billed_on(bill_date)
    for last, group in by_last.items():
        unit_of = {u.account_id: u for u in group}
        found = session.execute(
            select(
                UsageRecord.id,
                UsageRecord.contract_item_id,
                UsageRecord.occurred_at,
                UsageRecord.quantity,
                ContractItem.price_plan_id,
                ContractItem.price_override,
                Contract.account_id,
            )
            .join(ContractItem, ContractItem.id == UsageRecord.contract_item_id)
            .join(Contract, Contract.id == ContractItem.contract_id)
            .where(
                UsageRecord.contract_item_id.in_(_item_ids(session, list(unit_of), item_types)),
                UsageRecord.id > min(u.usage_through_id for u in group),
                UsageRecord.id <= through,
                UsageRecord.status == UsageStatus.PENDING,
                UsageRecord.occurred_at < midnight(last),
                uncovered(but=again),
            )
        )
        for record_id, item_id, occurred, quantity, plan_id, override, account_id in found:
            unit, info = unit_of[account_id], plans[plan_id]
            if record_id <= unit.usage_through_id:
                continue  # rated with its cycle (another unit's watermark is lower)
            at = occurred if isinstance(occurred, datetime) else datetime.fromisoformat(occurred)
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
            delta_of = deltas.setdefault(key, _Delta(item_id, plan_id, override, account_id, cycle))
            delta_of.quantity += quantity
            delta_of.records += 1
    if held:
        done.held = _hold(session, held, bill_date)
    if deltas:
        units_of = {u.account_id: u for u in units}
        _price_deltas(session, done, deltas, units_of, plans, bill_date, as_of, through)
    return done


def _price_deltas(
    session: Session,
    done: LateUsage,
    deltas: dict[str, _Delta],
    units: dict[int, Unit],
    plans: dict[int, PlanInfo],
    bill_date: date,
    as_of: date,
    through: int,
) -> None:
    """Price each delta key: its cycle's whole quantity less what the cycle was billed."""
    billed = _billed_before(session, [d.item_id for d in deltas.values()])
    for key in sorted(deltas):
        late = deltas[key]
        if late.account_id in done.failed:
            continue
        cycle = late.cycle
        info = plans[late.plan_id]
        plan = with_price_override(info.plan, late.override)
        before = [c for c in billed.get((late.item_id, cycle.end), []) if c[1] != key]
        original = next((c[0] for c in before if c[1].startswith(KeyKind.USAGE.value)), None)
        try:
            rated = delta(
                plan,
                sum((c[2] for c in before), Decimal(0)),
                sum((c[3] for c in before), Decimal(0)),
                late.quantity,
            )
        except BillingError as error:
            done.failed[late.account_id] = f"item {late.item_id}: {error}"
            continue
        done.records[key] = late.records
        done.rows.append(
            usage_charge_row(
                key=key,
                account_id=late.account_id,
                bill_unit_id=units[late.account_id].id,
                item_id=late.item_id,
                info=info,
                rated=rated,
                period=(cycle.start, cycle.end),
                bill_on=bill_date,
                created_on=as_of,
                usage=(through, midnight(cycle.start), midnight(cycle.end)),
                corrects_charge_id=original,
            )
        )


def _billed_before(
    session: Session, item_ids: Sequence[int]
) -> dict[tuple[int, date], list[tuple[int, str, Decimal, Decimal]]]:
    """The usage charges already made for each (item, cycle bill date): the cycle's own
    (``use:``), its threshold charges billed early (``thr:``, ``billing.ops.thresholds``) and
    earlier deltas (``lat:``), as (id, key, quantity, amount)."""
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
                Charge.charge_key.like(charge_keys.like_kind(KeyKind.THRESHOLD)),
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
    """Hold the scope's records no charge prices that are older than their plan's late usage
    window at ``bill_date`` (a UTI run's date: UTI usage has no cycle, only the window);
    returns how many."""
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
            uncovered(but=scope.key_pattern),
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
