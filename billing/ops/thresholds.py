"""Usage thresholds (progressive billing) on a session: the UTI daemon's early charges, and what
the cycle bill subtracts (the rules: ``billing.domain.thresholds``).

**Early, in the UTI daemon** (``bill_thresholds``, called by ``billing.ops.uti`` for each batch).
For each account of the batch with a ``usage_threshold`` whose bill unit's cycle holds Process
Now, one statement sums, per usage item, the records of the open cycle (stamped from midnight of
the unit's last bill date to Process Now, ids up to the watermark read once) that no charge
prices yet (``billing.ops.rating.uncovered``); another sums what the cycle's threshold charges
billed already. When the account's unbilled amount reaches its threshold, each item with a
positive amount gets an immediate ``calculated`` charge keyed
``thr:{item}:{cycle bill date}:{process now}``, ranged ``[cycle start, process now)`` up to the
watermark, ``bill_on`` Process Now's date: the Billing daemon (or bill day) bills it at once.
An account that has a threshold charge of this Process Now already is left alone, so a rerun
of the same Process Now adds nothing. Before reading anything, the pass rewrites its units' rows
(a no-op UPDATE): on PostgreSQL a bill run that claims one of them at the same moment waits,
then fails to serialize and is retried, and so never prices the records a threshold charge
took (the other way round, this pass waits and then sees the closed cycle).

**On the cycle bill** (``net_of_thresholds``, called by ``billing.ops.billrun._rate_usage``).
Rating prices the cycle's records no charge holds, which leaves out those of the threshold
charges (their ranges come first); each item's usage row is then re-priced as the price of
the cycle's whole quantity less what the threshold charges billed. An item whose records were
all billed early gets a row of quantity 0 only when its price changed since (the difference);
otherwise it gets no line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing.domain import charge_keys
from billing.domain.billplan import Unit
from billing.domain.errors import BillingError
from billing.domain.money import add_to_total
from billing.domain.periods import add_cycles
from billing.domain.results import Mergeable
from billing.domain.thresholds import ItemUsage, charges_over, in_open_cycle, rest_of_cycle
from billing.domain.usage import as_date, midnight, with_price_override
from billing.ops.catalog import PlanInfo
from billing.ops.charging import load_units
from billing.ops.rating import bill_units_of, uncovered, unpriced_usage, usage_charge_row
from billing.store.models import (
    Account,
    BillUnit,
    Charge,
    ChargeStatus,
    Contract,
    ContractItem,
    ItemType,
    UsageRecord,
    UsageStatus,
)
from billing.store.sqlkit import bulk_insert, id_in
from billing.store.usage import watermark


@dataclass
class ThresholdRun(Mergeable):
    """What a pass billed early: accounts past their threshold, charges written, the records
    they price and their amounts (net) per currency; accounts whose usage could not be priced."""

    accounts: int = 0
    charges: int = 0
    records: int = 0
    amounts: dict[str, Decimal] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def threshold_accounts(session: Session, process_now: datetime) -> list[int]:
    """Accounts with a usage threshold and usage on a usage item stamped before ``process_now``
    that no charge prices yet, in id order."""
    return list(
        session.scalars(
            select(Contract.account_id)
            .distinct()
            .join(Account, Account.id == Contract.account_id)
            .join(ContractItem, ContractItem.contract_id == Contract.id)
            .join(UsageRecord, UsageRecord.contract_item_id == ContractItem.id)
            .where(
                Account.usage_threshold.is_not(None),
                ContractItem.item_type == ItemType.USAGE,
                UsageRecord.status == UsageStatus.PENDING,
                UsageRecord.occurred_at < process_now,
                uncovered(),
            )
            .order_by(Contract.account_id)
        )
    )


def bill_thresholds(
    session: Session,
    account_ids: Sequence[int],
    process_now: datetime,
    plans: dict[int, PlanInfo],
) -> ThresholdRun:
    """Write the threshold charges of the accounts whose open cycle's unbilled usage reached
    their threshold at ``process_now`` (never commits)."""
    done = ThresholdRun()
    thresholds: dict[int, Decimal] = {
        account: threshold
        for account, threshold in session.execute(
            select(Account.id, Account.usage_threshold).where(
                id_in(session, Account.id, account_ids), Account.usage_threshold.is_not(None)
            )
        )
    }
    if not thresholds:
        return done
    billed_now = set(
        session.scalars(
            select(Charge.account_id).where(
                id_in(session, Charge.account_id, sorted(thresholds)),
                Charge.charge_key.like(charge_keys.like_threshold_at(process_now)),
            )
        )
    )
    units = [
        unit
        for unit in _lock_units(session, sorted(set(thresholds) - billed_now))
        if in_open_cycle(process_now, unit.last_bill_date, unit.next_bill_date)
    ]
    if not units:
        return done
    through = watermark(session)
    cycles: dict[tuple[date | None, date], list[Unit]] = defaultdict(list)
    for unit in units:
        cycles[(unit.last_bill_date, unit.next_bill_date)].append(unit)
    rows: list[dict[str, Any]] = []
    for (last, bill_date), group in cycles.items():
        since = None if last is None else midnight(last)
        accounts = [u.account_id for u in group]
        unpriced = _unpriced(session, accounts, since, process_now, through)
        billed = billed_early(session, accounts, bill_date)
        unit_of = {u.account_id: u for u in group}
        for account_id in accounts:
            found = unpriced.get(account_id, [])
            try:
                usage = [_item_usage(r, plans, billed, unit_of[account_id]) for r in found]
                over = charges_over(usage, thresholds[account_id])
            except BillingError as error:
                done.failed[account_id] = str(error)
                continue
            if not over:
                continue
            by_item = {r.item_id: r for r in found}
            done.accounts += 1
            for item, rated in over:
                record = by_item[item.item_id]
                info = plans[record.plan_id]
                rows.append(
                    usage_charge_row(
                        key=charge_keys.threshold(item.item_id, bill_date, process_now),
                        account_id=account_id,
                        bill_unit_id=unit_of[account_id].id,
                        item_id=item.item_id,
                        info=info,
                        rated=rated,
                        period=(as_date(record.first), as_date(record.last) + timedelta(days=1)),
                        bill_on=process_now.date(),
                        created_on=process_now.date(),
                        usage=(through, since, process_now),
                        immediate=True,
                    )
                )
                done.charges += 1
                done.records += record.records
                add_to_total(done.amounts, item.plan.currency, rated.amount)
    if rows:
        bulk_insert(session, Charge.__table__, rows, on_conflict="nothing")
    return done


def _lock_units(session: Session, account_ids: Sequence[int]) -> list[Unit]:
    """The accounts' bill units (the one their usage is charged to), each row rewritten
    unchanged first so a bill run cannot close its cycle under this pass (module docstring)."""
    if not account_ids:
        return []
    unit_ids = sorted(bill_units_of(session, account_ids).values())
    locked = session.scalars(
        update(BillUnit)
        .where(id_in(session, BillUnit.id, unit_ids))
        .values(next_bill_date=BillUnit.next_bill_date)
        .returning(BillUnit.id)
        .execution_options(synchronize_session=False)
    ).all()
    return load_units(session, locked) if locked else []


@dataclass(frozen=True)
class _Unpriced:
    """An item's records of the open cycle that no charge prices yet, summed."""

    item_id: int
    quantity: Decimal
    records: int
    first: datetime | date | str
    last: datetime | date | str
    plan_id: int
    override: Decimal | None


def _unpriced(
    session: Session,
    account_ids: Sequence[int],
    since: datetime | None,
    cutoff: datetime,
    through: int,
) -> dict[int, list[_Unpriced]]:
    """Per account, each usage item's records stamped in ``[since, cutoff)`` with ids up to
    ``through`` that no charge prices yet, in item order."""
    items = (
        select(ContractItem.id)
        .join(Contract)
        .where(
            id_in(session, Contract.account_id, account_ids),
            ContractItem.item_type == ItemType.USAGE,
        )
        .scalar_subquery()
    )
    rows = unpriced_usage(session, items, cutoff, through, since)
    found: dict[int, list[_Unpriced]] = defaultdict(list)
    for item_id, quantity, records, first, last, plan_id, override, account_id in sorted(
        rows, key=lambda r: r[0]
    ):
        found[account_id].append(
            _Unpriced(item_id, quantity, records, first, last, plan_id, override)
        )
    return found


def _item_usage(
    found: _Unpriced,
    plans: dict[int, PlanInfo],
    billed: dict[int, tuple[Decimal, Decimal]],
    unit: Unit,
) -> ItemUsage:
    plan = with_price_override(plans[found.plan_id].plan, found.override)
    if plan.currency != unit.currency:
        raise BillingError(
            f"item {found.item_id}: price plan {plan.code} is in {plan.currency}, "
            f"the account bills in {unit.currency}"
        )
    quantity, amount = billed.get(found.item_id, (Decimal(0), Decimal(0)))
    return ItemUsage(found.item_id, plan, quantity, amount, found.quantity)


def billed_early(
    session: Session, account_ids: Sequence[int], cycle_bill_date: date
) -> dict[int, tuple[Decimal, Decimal]]:
    """What the threshold charges of the cycle that closes on ``cycle_bill_date`` billed, per
    item of the accounts: (quantity, amount)."""
    if not account_ids:
        return {}
    rows = session.execute(
        select(Charge.contract_item_id, func.sum(Charge.quantity), func.sum(Charge.amount))
        .where(
            id_in(session, Charge.account_id, account_ids),
            Charge.charge_key.like(charge_keys.like_threshold_of_cycle(cycle_bill_date)),
            Charge.status != ChargeStatus.CANCELLED,
        )
        .group_by(Charge.contract_item_id)
    )
    return {item: (quantity, amount) for item, quantity, amount in rows}


def net_of_thresholds(
    session: Session,
    units: Sequence[Unit],
    bill_date: date,
    rows: Sequence[dict[str, Any]],
    plans: dict[int, PlanInfo],
    as_of: date,
    through: int,
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The cycle's usage rows (``use:``, as ``billing.ops.rating.price_usage_for`` priced them)
    of the units whose cycle closes on ``bill_date``, each re-priced as the price of the cycle's
    whole quantity less what the cycle's threshold charges billed for its item; plus a row of
    quantity 0 for an item all billed early whose price changed since. Returns the rows and the
    accounts whose usage could not be priced (their rows are left out)."""
    billed = billed_early(session, [u.account_id for u in units], bill_date)
    if not billed:
        return list(rows), {}
    facts = _items(session, sorted(billed))
    unit_of = {u.account_id: u for u in units}
    out: list[dict[str, Any]] = []
    failed: dict[int, str] = {}
    for row in rows:
        item_id = row["contract_item_id"]
        if item_id not in billed:
            out.append(row)
            continue
        plan_id, override, _ = facts[item_id]
        plan = with_price_override(plans[plan_id].plan, override)
        try:
            rated = rest_of_cycle(plan, *billed[item_id], row["quantity"])
        except BillingError as error:
            failed[row["account_id"]] = f"item {item_id}: {error}"
            continue
        out.append(
            {
                **row,
                "quantity": rated.quantity,
                "unit_price": rated.unit_price,
                "amount": rated.amount,
            }
        )
    priced = {row["contract_item_id"] for row in rows}
    for item_id in sorted(set(billed) - priced):
        plan_id, override, account_id = facts[item_id]
        unit = unit_of.get(account_id)
        if unit is None or account_id in failed:
            continue
        info = plans[plan_id]
        plan = with_price_override(info.plan, override)
        try:
            rated = rest_of_cycle(plan, *billed[item_id], Decimal(0))
            start = unit.last_bill_date or add_cycles(bill_date, -1, unit.billing_day, unit.cycle)
        except BillingError as error:
            failed[account_id] = f"item {item_id}: {error}"
            continue
        if rated.amount == 0:
            continue
        since = None if unit.last_bill_date is None else midnight(start)
        out.append(
            usage_charge_row(
                key=charge_keys.usage(item_id, bill_date),
                account_id=account_id,
                bill_unit_id=unit.id,
                item_id=item_id,
                info=info,
                rated=rated,
                period=(start, bill_date),
                bill_on=bill_date,
                created_on=as_of,
                usage=(through, since, midnight(bill_date)),
            )
        )
    return [row for row in out if row["account_id"] not in failed], failed


def _items(session: Session, item_ids: Sequence[int]) -> dict[int, tuple[int, Decimal | None, int]]:
    """Each item's price plan, price override and account."""
    rows = session.execute(
        select(
            ContractItem.id,
            ContractItem.price_plan_id,
            ContractItem.price_override,
            Contract.account_id,
        )
        .join(Contract, Contract.id == ContractItem.contract_id)
        .where(id_in(session, ContractItem.id, item_ids))
    )
    return {item: (plan, override, account) for item, plan, override, account in rows}
