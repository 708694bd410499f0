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

The date rules and the top-up arithmetic are pure, in ``billing.domain.terms``; the keys are
``billing.domain.charge_keys``'s. This module reads the contracts and writes what they decide.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine, and_, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session, aliased

from billing.domain import charge_keys
from billing.domain.charge_keys import KeyKind
from billing.domain.errors import BillingError
from billing.domain.results import Mergeable
from billing.domain.schedule import scheduled_charges
from billing.domain.terms import (
    Term,
    ending_due,
    extension_fees,
    forecast_horizon,
    next_term_end,
    renewal_due,
    term_end,
)
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
    ChargeStatus,
    Contract,
    ContractItem,
    ContractStatus,
    ItemStatus,
    ItemType,
)
from billing.store.sqlkit import id_in, insert_ignoring_duplicates, rowcount

MAX_TERMS_PER_RUN = 100


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
        through = forecast_horizon(end)
        for spec in scheduled_charges(terms, unit.grid, through, None):
            key = charge_keys.with_kind(spec.charge_key, KeyKind.PLANNED)
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
        real.charge_key
        == literal(charge_keys.prefix(KeyKind.RECURRING))
        + func.substr(Charge.charge_key, len(charge_keys.prefix(KeyKind.PLANNED)) + 1)
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
                    Charge.charge_key.like(charge_keys.like_kind(KeyKind.PLANNED)),
                    or_(materialized, uncovered),
                )
            )
            .values(status=ChargeStatus.CANCELLED)
            .execution_options(synchronize_session=False)
        )
    )


def renewal_batch(engine: Engine, contract_ids: Sequence[int], on: date) -> RenewalResult:
    """One batch in one transaction."""
    with unit_of_work(engine) as session:
        return renew_contracts(session, contract_ids, on)


def retire_forecasts(engine: Engine) -> int:
    """Retire materialized or stale forecast lines, in one transaction."""
    with unit_of_work(engine) as session:
        return retire_planned_lines(session)
