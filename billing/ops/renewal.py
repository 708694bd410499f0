"""Cn285 *Contract Item Renewal*: renew auto-renewing contracts, end the others at term end.

Terms. A contract's current term ends on ``end_date``, or ``start_date + term_months`` while
``end_date`` is empty. Its *notice deadline* is ``notice_days`` before that end.

Rule. The decision is taken on the first run on or after the notice deadline, when no notice
can come in time any more: the contract's ``auto_renew`` flag at that moment is the answer
(switching it off is the termination notice; the schema keeps no date for it, see
docs/daemons.md). A contract still set to auto-renew is renewed then: ``end_date`` becomes
the old end plus ``term_months`` (on the start date's day of month, so terms do not drift),
its items carry on, and the new term's Invoicing Schedules are forecast. A contract that is not
renewed ends when its term ends: ``ended``, ``end_date`` set, its active items ``ended`` on that
date with a credit for any fee charged past it. A run that is late renews as many terms as are
due. A rerun with the same date finds nothing due, and forecast lines are keyed: it adds nothing.

Forecast Invoicing Schedules. Renewal writes one ``planned`` charge per recurring item and cycle
of the new term, keyed ``ren:{item id}:{cycle start}`` and priced at the terms in force. They
are informational: billing only ever takes ``calculated`` charges, and bill day's schedule
materializes the real ``rec:{item id}:{cycle start}`` charge at the terms in force then.
``retire_planned_lines`` cancels a forecast line once its real charge exists, or once its item
no longer covers its period, so no cycle is ever shown, let alone billed, twice.
"""

from __future__ import annotations

import calendar
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session, aliased

from billing.domain.errors import BillingError
from billing.domain.periods import Period
from billing.domain.results import Mergeable
from billing.domain.schedule import ChargeSpec, CycleGrid, ItemTerms, cycle_fee, scheduled_charges
from billing.ops.catalog import PlanInfo, load_plans
from billing.ops.changes import (
    ChangeRejected,
    cancel_planned_lines,
    charged_fees,
    end_item,
    unit_of_account,
)
from billing.ops.charging import Unit, charge_row, item_terms
from billing.store.db import unit_of_work
from billing.store.models import (
    Charge,
    ChargeKind,
    ChargeStatus,
    Contract,
    ContractItem,
    ContractStatus,
    ItemStatus,
    ItemType,
)
from billing.store.sqlkit import id_in, insert_ignoring_duplicates, rowcount

PLANNED_PREFIX = "ren"
EXTENSION_PREFIX = "ext"
SCHEDULE_PREFIX = "rec"
MAX_TERMS_PER_RUN = 100


@dataclass(frozen=True)
class Term:
    """A contract's renewal facts, as plain values."""

    start: date
    end_date: date | None
    term_months: int
    auto_renew: bool
    notice_days: int


def add_months(day: date, months: int, day_of_month: int) -> date:
    """``day`` moved by ``months``, on ``day_of_month`` (or the month's last day)."""
    year, index = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, index + 1)[1]
    return date(year, index + 1, min(day_of_month, last))


def term_end(term: Term) -> date:
    """The end (exclusive) of the current term."""
    if term.end_date is not None:
        return term.end_date
    return add_months(term.start, term.term_months, term.start.day)


def next_term_end(term: Term) -> date:
    return add_months(term_end(term), term.term_months, term.start.day)


def notice_deadline(term: Term) -> date:
    return date.fromordinal(term_end(term).toordinal() - term.notice_days)


def renewal_due(term: Term, on: date) -> bool:
    """Auto-renewing and past its notice deadline: renew now."""
    return term.auto_renew and on >= notice_deadline(term)


def ending_due(term: Term, on: date) -> bool:
    """Not renewing and its term is over: end now."""
    return not term.auto_renew and on >= term_end(term)


@dataclass
class RenewalResult(Mergeable):
    """What a run (or a batch) did; results merge."""

    renewed: dict[str, date] = field(default_factory=dict)
    ended: dict[str, date] = field(default_factory=dict)
    planned_lines: int = 0
    items_ended: int = 0
    credits: int = 0
    retired_lines: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def _term_of(contract: Any) -> Term:
    return Term(
        contract.start_date,
        contract.end_date,
        contract.term_months,
        contract.auto_renew,
        contract.notice_days,
    )


def due_contract_ids(session: Session, on: date) -> list[int]:
    """Active contracts due to renew or to end on ``on``, in id order."""
    rows = session.execute(
        select(
            Contract.id,
            Contract.start_date,
            Contract.end_date,
            Contract.term_months,
            Contract.auto_renew,
            Contract.notice_days,
        )
        .where(Contract.status == ContractStatus.ACTIVE)
        .order_by(Contract.id)
    )
    due = []
    for row in rows:
        contract_id, term = row[0], Term(*row[1:])
        if term.term_months >= 1 and (renewal_due(term, on) or ending_due(term, on)):
            due.append(contract_id)
        elif term.term_months < 1:
            due.append(contract_id)  # reported as failed, with the reason
    return due


def renew_contracts(session: Session, contract_ids: Sequence[int], on: date) -> RenewalResult:
    """Renew or end the given contracts that are still due (never commits)."""
    result = RenewalResult()
    if not contract_ids:
        return result
    plans = load_plans(session)
    contracts = session.scalars(
        select(Contract)
        .where(id_in(session, Contract.id, contract_ids), Contract.status == ContractStatus.ACTIVE)
        .order_by(Contract.id)
    ).all()
    for contract in contracts:
        try:
            with session.begin_nested():
                _renew_or_end(session, contract, plans, on, result)
        except BillingError as error:
            result.failed[contract.ref] = str(error)
    session.flush()
    return result


def _renew_or_end(
    session: Session,
    contract: Contract,
    plans: dict[int, PlanInfo],
    on: date,
    result: RenewalResult,
) -> None:
    if contract.term_months < 1:
        raise ChangeRejected(f"term_months: must be 1 or more, got {contract.term_months}")
    unit = unit_of_account(session, contract.account_id)
    for _ in range(MAX_TERMS_PER_RUN):
        term = _term_of(contract)
        if not renewal_due(term, on):
            break
        start, end = term_end(term), next_term_end(term)
        contract.end_date = end
        result.planned_lines += plan_term(session, contract, unit, plans, start, end, on)
        result.renewed[contract.ref] = end
    if ending_due(_term_of(contract), on):
        _end(session, contract, unit, plans, on, result)


def plan_term(
    session: Session,
    contract: Contract,
    unit: Unit,
    plans: dict[int, PlanInfo],
    start: date,
    end: date,
    on: date,
) -> int:
    """Forecast the Invoicing Schedule of ``[start, end)``: one planned line per item cycle."""
    rows = []
    for item in _active_items(session, contract.id, (ItemType.RECURRING,)):
        info = plans[item.price_plan_id]
        if info.plan.currency != unit.currency:
            raise ChangeRejected(
                f"contract_item_id: item {item.ref} is priced in {info.plan.currency}, "
                f"the account bills in {unit.currency}"
            )
        terms = item_terms(item, end, info)
        terms = dataclasses.replace(terms, start=max(terms.start, start))
        if terms.end is not None and terms.end <= terms.start:
            continue
        through = add_months(end, 13, end.day)
        for spec in scheduled_charges(terms, unit.grid, through, None):
            key = f"{PLANNED_PREFIX}:{spec.charge_key.split(':', 1)[1]}"
            row = charge_row(dataclasses.replace(spec, charge_key=key), unit, on, unit.currency)
            rows.append({**row, "status": ChargeStatus.PLANNED})
        extension = [
            charge_row(spec, unit, on, unit.currency)
            for spec in extension_fees(
                terms, unit.grid, charged_fees(session, item.id, None), start
            )
        ]
        insert_ignoring_duplicates(session, Charge.__table__, extension)
    insert_ignoring_duplicates(session, Charge.__table__, rows)
    return len(rows)


def extension_fees(
    terms: ItemTerms, grid: CycleGrid, charged: Sequence[ChargeSpec], old_end: date
) -> list[ChargeSpec]:
    """Fees charged up to the old term end inside a cycle that goes on: charge the rest (pure).

    The schedule stops an item's fee at its contract's end, so a cycle that straddles the old
    end and was charged before the renewal was charged short. ``ext:{item}:{cycle}`` charges
    the difference with the fee of the cycle under the extended ``terms``.
    """
    specs = []
    for fee in charged:
        cycle = next(grid.cycles_from(fee.period_start))
        if fee.period_end != old_end or cycle.end <= old_end:
            continue
        active = terms.active(cycle)
        full = Period(min(fee.period_start, old_end), active.end if active else old_end)
        difference = cycle_fee(terms, grid, cycle, full).amount - fee.amount
        if difference == 0:
            continue
        specs.append(
            ChargeSpec(
                charge_key=f"{EXTENSION_PREFIX}:{terms.item_id}:{cycle.start.isoformat()}",
                kind=ChargeKind.ADJUSTMENT.value,
                contract_item_id=terms.item_id,
                description=f"{terms.description} (renewed {old_end.isoformat()})",
                period_start=old_end,
                period_end=full.end,
                bill_on=old_end,
                quantity=Decimal(1),
                unit_price=difference,
                amount=difference,
                tax_category=terms.tax_category,
            )
        )
    return specs


def _active_items(
    session: Session, contract_id: int, types: tuple[ItemType, ...] = tuple(ItemType)
) -> list[ContractItem]:
    return list(
        session.scalars(
            select(ContractItem)
            .where(
                ContractItem.contract_id == contract_id,
                ContractItem.status == ItemStatus.ACTIVE,
                ContractItem.item_type.in_(types),
            )
            .order_by(ContractItem.id)
        )
    )


def _end(
    session: Session,
    contract: Contract,
    unit: Unit,
    plans: dict[int, PlanInfo],
    on: date,
    result: RenewalResult,
) -> None:
    end = term_end(_term_of(contract))
    items = _active_items(session, contract.id)
    for item in items:
        terms = item_terms(item, end, plans[item.price_plan_id])
        result.credits += end_item(session, item, terms, unit, end, on)
        item.status = ItemStatus.ENDED
    cancel_planned_lines(session, [i.id for i in items], end)
    contract.status, contract.end_date = ContractStatus.ENDED, end
    result.ended[contract.ref] = end
    result.items_ended += len(items)


def retire_planned_lines(session: Session) -> int:
    """Cancel forecast lines whose real charge exists or whose item no longer covers them."""
    real = aliased(Charge)
    materialized = exists().where(
        real.charge_key == literal(SCHEDULE_PREFIX + ":") + func.substr(Charge.charge_key, 5)
    )
    uncovered = exists().where(
        ContractItem.id == Charge.contract_item_id,
        or_(
            ContractItem.status != ItemStatus.ACTIVE,
            ContractItem.end_date < Charge.period_end,
            ContractItem.pending_cancel_date < Charge.period_end,
        ),
    )
    return rowcount(
        session.execute(
            update(Charge)
            .where(
                and_(
                    Charge.status == ChargeStatus.PLANNED,
                    Charge.charge_key.like(f"{PLANNED_PREFIX}:%"),
                    or_(materialized, uncovered),
                )
            )
            .values(status=ChargeStatus.CANCELLED)
            .execution_options(synchronize_session=False)
        )
    )


def renewal_batches(engine: Engine, on: date, per_batch: int) -> Iterator[list[int]]:
    """The contracts due, ``per_batch`` at a time."""
    with unit_of_work(engine) as session:
        ids = due_contract_ids(session, on)
    for start in range(0, len(ids), per_batch):
        yield ids[start : start + per_batch]


def renewal_batch(engine: Engine, contract_ids: Sequence[int], on: date) -> RenewalResult:
    """One batch in one transaction."""
    with unit_of_work(engine) as session:
        return renew_contracts(session, contract_ids, on)


def retire_forecasts(engine: Engine) -> int:
    """Retire materialized or stale forecast lines, in one transaction."""
    with unit_of_work(engine) as session:
        return retire_planned_lines(session)


def run_contract_item_renewal(engine: Engine, on: date, *, per_batch: int = 1_000) -> RenewalResult:
    """The whole daemon without Prefect: every batch in order, then forecast retirement."""
    total = RenewalResult()
    for batch in renewal_batches(engine, on, per_batch):
        total = total.merge(renewal_batch(engine, batch, on))
    total.retired_lines = retire_forecasts(engine)
    return total
