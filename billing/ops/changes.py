"""Cn285 *Contract Change Process*: apply the contract change requests that are due.

A request is due when it is ``pending`` and its ``effective_date`` is on or before the run's
date (Cn285 *Process Now*). Requests apply in (effective date, id) order, each in its own
savepoint: one that cannot apply is ``rejected`` with a reason naming the field, and the
others go on. Applied requests are ``applied``; both get ``processed_on``. A rerun finds no
pending request, and every charge it writes is keyed, so it adds nothing.

- **quantity / price**: the item takes its new quantity (or price override) from the effective
  date. Fees already charged for a period that runs past the effective date are re-priced for
  the rest of that period: the ``adjustment`` charge ``chg:{request id}:{cycle start}`` is the
  fee of the rest at the new terms minus the fee of the rest at the old terms (each rounded
  once, under the plan's proration policy). For a cycle not yet charged, the schedule will
  charge it whole at the new terms, so the adjustment corrects its head instead: old terms
  minus new terms for the days before the effective date. Either way the next bill takes it.
  The arithmetic is pure, in ``billing.domain.adjustments``.
- **swap**: the old item ends at the effective date (``ended``) and fees charged past it are
  credited like a cancellation (``cxl:`` keys of ``billing.domain.schedule.cancellation_credit``);
  the new item ``{old ref}-swap-{request ref}`` starts on the effective date with the new
  price plan, and its fees due by the run date are materialized with the schedule's own keys.
- **termination**: the item's ``pending_cancel_date`` becomes the effective date (the earlier
  one is kept). Bill day's ``cycle_fees`` then cancels the item and credits what was charged
  in advance past that date: one cancellation path, the one deferred actions use too.

Forecast Invoicing Schedule lines (``planned``, from renewal) of a changed item that end after
the effective date are cancelled: they no longer hold, the schedule charges the real terms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing.domain.adjustments import change_adjustments
from billing.domain.corrections import settled
from billing.domain.errors import BillingError
from billing.domain.pricing import UNIT_PRICED_MODELS, USAGE_MODELS
from billing.domain.results import Mergeable
from billing.domain.schedule import (
    ChargeSpec,
    ItemTerms,
    cancellation_credit,
    scheduled_charges,
)
from billing.ops.catalog import PlanInfo, load_plans
from billing.ops.charging import Unit, charge_row, item_terms, load_units
from billing.ops.rating import bill_units_of
from billing.store.models import (
    ChangeKind,
    ChangeRequest,
    Charge,
    ChargeKind,
    ChargeStatus,
    ContractItem,
    ItemStatus,
    ItemType,
    PriceModel,
    RequestStatus,
)
from billing.store.sqlkit import id_in, insert_ignoring_duplicates, rowcount

CHARGED = (ChargeStatus.CALCULATED, ChargeStatus.OPEN, ChargeStatus.CLOSED)
PLAN_MODELS = {
    ItemType.RECURRING: (PriceModel.RECURRING,),
    ItemType.USAGE: USAGE_MODELS,
    ItemType.UTI: USAGE_MODELS,
    ItemType.ONE_TIME: (PriceModel.ONE_TIME,),
}


class ChangeRejected(BillingError):
    """A change request that cannot apply; the message names the field."""


@dataclass
class ChangeResult(Mergeable):
    """What a run (or a batch) did; results merge."""

    applied: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    adjustments: int = 0
    credits: int = 0
    items_created: int = 0


def due_request_ids(session: Session, process_on: date) -> list[int]:
    """Pending requests effective by ``process_on``, in the order they apply."""
    return list(
        session.scalars(
            select(ChangeRequest.id)
            .where(
                ChangeRequest.status == RequestStatus.PENDING,
                ChangeRequest.effective_date <= process_on,
            )
            .order_by(ChangeRequest.effective_date, ChangeRequest.id)
        )
    )


def apply_change_requests(
    session: Session, request_ids: Sequence[int], process_on: date
) -> ChangeResult:
    """Apply the given requests that are still due, each in a savepoint (never commits)."""
    result = ChangeResult()
    if not request_ids:
        return result
    plans = load_plans(session)
    requests = session.scalars(
        select(ChangeRequest)
        .where(
            id_in(session, ChangeRequest.id, request_ids),
            ChangeRequest.status == RequestStatus.PENDING,
            ChangeRequest.effective_date <= process_on,
        )
        .order_by(ChangeRequest.effective_date, ChangeRequest.id)
    ).all()
    for request in requests:
        try:
            with session.begin_nested():
                _apply(session, request, plans, process_on, result)
        except BillingError as error:
            request.status, request.reason = RequestStatus.REJECTED, str(error)
            result.rejected[request.ref] = str(error)
        else:
            request.status, request.reason = RequestStatus.APPLIED, None
            kind = request.kind.value
            result.applied[kind] = result.applied.get(kind, 0) + 1
        request.processed_on = process_on
    session.flush()
    return result


@dataclass
class _Context:
    """A request with what applying it needs."""

    request: ChangeRequest
    item: ContractItem
    unit: Unit
    info: PlanInfo
    terms: ItemTerms
    process_on: date


def _apply(
    session: Session,
    request: ChangeRequest,
    plans: dict[int, PlanInfo],
    process_on: date,
    result: ChangeResult,
) -> None:
    item = session.get(ContractItem, request.contract_item_id)
    assert item is not None  # foreign key
    unit = unit_of_account(session, item.contract.account_id)
    info = plans[item.price_plan_id]
    terms = item_terms(item, item.contract.end_date, info)
    _check_item(item, terms, request.effective_date)
    ctx = _Context(request, item, unit, info, terms, process_on)
    if request.kind == ChangeKind.QUANTITY:
        _change_quantity(session, ctx, result)
    elif request.kind == ChangeKind.PRICE:
        _change_price(session, ctx, result)
    elif request.kind == ChangeKind.SWAP:
        _swap(session, ctx, plans, result)
    else:
        _terminate(session, ctx)
    cancel_planned_lines(session, [item.id], request.effective_date)


def unit_of_account(session: Session, account_id: int) -> Unit:
    """The account's bill unit (the first one, where an account has several)."""
    unit_id = bill_units_of(session, [account_id]).get(account_id)
    if unit_id is None:
        raise ChangeRejected(f"contract_item_id: account {account_id} has no bill unit")
    return load_units(session, [unit_id])[0]


def _check_item(item: ContractItem, terms: ItemTerms, effective: date) -> None:
    if item.status != ItemStatus.ACTIVE:
        raise ChangeRejected(f"contract_item_id: item {item.ref} is {item.status.value}")
    if effective < item.start_date:
        raise ChangeRejected(
            f"effective_date: {effective} is before item {item.ref} starts ({item.start_date})"
        )
    if terms.end is not None and effective >= terms.end:
        raise ChangeRejected(
            f"effective_date: {effective} is not before item {item.ref} ends ({terms.end})"
        )


def _amount(name: str, value: Decimal | None, what: str) -> Decimal:
    if value is None:
        raise ChangeRejected(f"{name}: a {what} change needs a {name}")
    if value < 0:
        raise ChangeRejected(f"{name}: must not be negative, got {value.normalize()}")
    return value


def _change_quantity(session: Session, ctx: _Context, result: ChangeResult) -> None:
    quantity = _amount("new_quantity", ctx.request.new_quantity, "quantity")
    if ctx.item.item_type != ItemType.RECURRING:
        raise ChangeRejected(
            f"kind: a quantity change applies to recurring items, "
            f"item {ctx.item.ref} is {ctx.item.item_type.value}"
        )
    _reprice(session, ctx, dataclasses.replace(ctx.terms, quantity=quantity), result)
    ctx.item.quantity = quantity


def _change_price(session: Session, ctx: _Context, result: ChangeResult) -> None:
    price = _amount("new_price", ctx.request.new_price, "price")
    item_type, model = ctx.item.item_type, ctx.info.plan.model
    if item_type == ItemType.ONE_TIME:
        raise ChangeRejected(f"kind: one-time item {ctx.item.ref} was charged at its start")
    if item_type != ItemType.RECURRING and model not in UNIT_PRICED_MODELS:
        raise ChangeRejected(f"new_price: a {model} plan is priced by its tiers")
    if item_type == ItemType.RECURRING:
        _reprice(session, ctx, dataclasses.replace(ctx.terms, price_override=price), result)
    ctx.item.price_override = price


def _reprice(session: Session, ctx: _Context, new: ItemTerms, result: ChangeResult) -> None:
    effective = ctx.request.effective_date
    charged = charged_fees_by_id(session, ctx.item.id, effective)
    specs = change_adjustments(
        ctx.terms,
        new,
        ctx.unit.grid,
        list(charged.values()),
        effective,
        ctx.request.id,
        ctx.unit.last_bill_date,
        {fee.charge_key: charge_id for charge_id, fee in charged.items()},
    )
    _insert(session, specs, ctx.unit, ctx.process_on)
    result.adjustments += len(specs)


def _swap(
    session: Session, ctx: _Context, plans: dict[int, PlanInfo], result: ChangeResult
) -> None:
    request, item, effective = ctx.request, ctx.item, ctx.request.effective_date
    new_info = _new_plan(ctx, plans)
    quantity = item.quantity
    if request.new_quantity is not None:
        quantity = _amount("new_quantity", request.new_quantity, "swap")
    if request.new_price is not None:
        _amount("new_price", request.new_price, "swap")
    ref = f"{item.ref}-swap-{request.ref}"
    if len(ref) > 64:
        raise ChangeRejected(f"ref: the new item's ref {ref!r} is longer than 64 characters")
    if session.scalar(select(ContractItem.id).where(ContractItem.ref == ref)) is not None:
        raise ChangeRejected(f"ref: contract item {ref!r} already exists")
    result.credits += end_item(session, item, ctx.terms, ctx.unit, effective, ctx.process_on)
    item.status = ItemStatus.ENDED
    new_item = ContractItem(
        ref=ref,
        contract_id=item.contract_id,
        price_plan_id=request.new_price_plan_id,
        item_type=item.item_type,
        quantity=quantity,
        price_override=request.new_price,
        start_date=effective,
    )
    session.add(new_item)
    session.flush()
    terms = item_terms(new_item, item.contract.end_date, new_info)
    specs = scheduled_charges(terms, ctx.unit.grid, ctx.process_on, None)
    _insert(session, specs, ctx.unit, ctx.process_on)
    result.items_created += 1


def _new_plan(ctx: _Context, plans: dict[int, PlanInfo]) -> PlanInfo:
    plan_id, item = ctx.request.new_price_plan_id, ctx.item
    if item.item_type == ItemType.ONE_TIME:
        raise ChangeRejected(f"kind: one-time item {item.ref} was charged at its start")
    if plan_id is None:
        raise ChangeRejected("new_price_plan_id: a swap needs the new price plan")
    info = plans.get(plan_id)
    if info is None:
        raise ChangeRejected(f"new_price_plan_id: unknown price plan {plan_id}")
    if plan_id == item.price_plan_id:
        raise ChangeRejected(
            f"new_price_plan_id: item {item.ref} already has price plan {info.plan.code}"
        )
    if info.plan.currency != ctx.unit.currency:
        raise ChangeRejected(
            f"new_price_plan_id: price plan {info.plan.code} is in {info.plan.currency}, "
            f"the account bills in {ctx.unit.currency}"
        )
    if info.plan.model not in PLAN_MODELS[item.item_type]:
        raise ChangeRejected(
            f"new_price_plan_id: a {info.plan.model} plan cannot price "
            f"{item.item_type.value} item {item.ref}"
        )
    return info


def _terminate(_session: Session, ctx: _Context) -> None:
    effective, item = ctx.request.effective_date, ctx.item
    if item.pending_cancel_date is None or effective < item.pending_cancel_date:
        item.pending_cancel_date = effective


def charged_fees(session: Session, item_id: int, after: date | None) -> list[ChargeSpec]:
    """The item's recurring fees charged (for periods that end after ``after``, if given)."""
    return list(charged_fees_by_id(session, item_id, after).values())


def charged_fees_by_id(session: Session, item_id: int, after: date | None) -> dict[int, ChargeSpec]:
    """``charged_fees`` by charge id, in period order."""
    query = select(Charge).where(
        Charge.contract_item_id == item_id,
        Charge.kind == ChargeKind.RECURRING,
        Charge.status.in_(CHARGED),
    )
    if after is not None:
        query = query.where(Charge.period_end > after)
    rows = session.scalars(query.order_by(Charge.period_start)).all()
    return {c.id: ChargeSpec.from_row(c) for c in rows}


def end_item(
    session: Session, item: ContractItem, terms: ItemTerms, unit: Unit, end: date, as_of: date
) -> int:
    """End ``item`` on ``end`` (the first day not served), crediting fees charged past it;
    returns the credits written. Each credit corrects its fee."""
    credits = [
        credit
        for fee_id, fee in charged_fees_by_id(session, item.id, end).items()
        if (credit := cancellation_credit(terms, unit.grid, fee, end, fee_id)) is not None
    ]
    _insert(session, credits, unit, as_of)
    if item.end_date is None or end < item.end_date:
        item.end_date = end
    return len(credits)


def _insert(session: Session, specs: Sequence[ChargeSpec], unit: Unit, as_of: date) -> None:
    """Write what a change charges. A charge due on or before the unit's last bill (the change
    came after the fact) is billed on its next bill (``billing.domain.corrections``)."""
    rows = [
        charge_row(settled(s, unit.last_bill_date, unit.next_bill_date), unit, as_of, unit.currency)
        for s in specs
    ]
    insert_ignoring_duplicates(session, Charge.__table__, rows)


def cancel_planned_lines(session: Session, item_ids: Sequence[int], after: date) -> int:
    """Cancel the items' forecast (``planned``) lines that end after ``after``."""
    if not item_ids:
        return 0
    return rowcount(
        session.execute(
            update(Charge)
            .where(
                id_in(session, Charge.contract_item_id, item_ids),
                Charge.status == ChargeStatus.PLANNED,
                Charge.period_end > after,
            )
            .values(status=ChargeStatus.CANCELLED)
            .execution_options(synchronize_session=False)
        )
    )
