"""Read the commercial terms of the bill units a pass bills (``billing.domain.commercial``).

One query per table for the batch's accounts; a unit whose account has no term gets none, and
the plan then does nothing more for it. A commitment also gets when its target is active and
what its target was billed already for the cycle billed (``billing.domain.commitments``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.billplan import Unit
from billing.domain.commercial import (
    CommitmentTerm,
    DiscountTerm,
    Reversal,
    Spent,
    TermItem,
    UnitTerms,
)
from billing.domain.discounts import discounted_share
from billing.domain.periods import add_cycles
from billing.store.models import Charge, ChargeKind, ChargeStatus, Contract, ContractItem
from billing.store.models_terms import Commitment, Discount
from billing.store.sqlkit import id_in


def load_terms(session: Session, units: Sequence[Unit]) -> dict[int, UnitTerms]:
    """The terms of each unit whose account has a discount or a commitment, by unit id."""
    accounts = sorted({u.account_id for u in units})
    if not accounts:
        return {}
    discounts: dict[int, list[DiscountTerm]] = defaultdict(list)
    for row in session.scalars(
        select(Discount)
        .where(id_in(session, Discount.account_id, accounts))
        .order_by(Discount.priority, Discount.id)
    ):
        discounts[row.account_id].append(
            DiscountTerm(
                id=row.id,
                ref=row.ref,
                scope=row.scope.value,
                kind=row.kind.value,
                value=row.value,
                description=row.description,
                reason_code=row.reason_code,
                start=row.start_date,
                cycles=row.cycles,
                end=row.end_date,
                priority=row.priority,
                stackable=row.stackable,
                item_id=row.contract_item_id,
                plan_id=row.price_plan_id,
            )
        )
    rows = session.scalars(
        select(Commitment)
        .where(id_in(session, Commitment.account_id, accounts))
        .order_by(Commitment.id)
    ).all()
    with_terms = sorted(set(discounts) | {c.account_id for c in rows})
    if not with_terms:
        return {}
    items = _items(session, with_terms)
    commitments = _commitments(session, rows, items, units)
    with_discounts = [u.id for u in units if u.account_id in discounts]
    reversals = _reversals(session, with_discounts) if with_discounts else {}
    return {
        unit.id: UnitTerms(
            tuple(discounts.get(unit.account_id, ())),
            tuple(commitments.get(unit.account_id, ())),
            items.get(unit.account_id, {}),
            reversals.get(unit.id, {}),
        )
        for unit in units
        if unit.account_id in discounts or unit.account_id in commitments
    }


def _reversals(session: Session, unit_ids: Sequence[int]) -> dict[int, dict[str, Reversal]]:
    """The units' stored credits (calculated, negative, correcting a charge) of charges that
    discounts reduced on their bill, with the share the discounts took, by unit and key."""
    credits = session.execute(
        select(Charge.bill_unit_id, Charge.charge_key, Charge.corrects_charge_id).where(
            id_in(session, Charge.bill_unit_id, unit_ids),
            Charge.status == ChargeStatus.CALCULATED,
            Charge.corrects_charge_id.is_not(None),
            Charge.amount < 0,
        )
    ).all()
    if not credits:
        return {}
    corrected = {
        row.id: row
        for row in session.execute(
            select(*_LINE, Charge.id, Charge.bill_id).where(
                id_in(session, Charge.id, sorted({c.corrects_charge_id for c in credits})),
                Charge.bill_id.is_not(None),
                Charge.amount > 0,
            )
        )
    }
    bills = sorted({row.bill_id for row in corrected.values()})
    lines: dict[int, list[Any]] = defaultdict(list)
    if bills:
        for line in session.execute(
            select(*_LINE, Charge.bill_id).where(id_in(session, Charge.bill_id, bills))
        ):
            lines[line.bill_id].append(line)
    found: dict[int, dict[str, Reversal]] = defaultdict(dict)
    for unit_id, key, corrects in credits:
        charge = corrected.get(corrects)
        if charge is None:
            continue
        share = discounted_share(charge, lines[charge.bill_id])
        if share > 0:
            found[unit_id][key] = Reversal(corrects, share)
    return found


_LINE = (
    Charge.kind,
    Charge.charge_key,
    Charge.contract_item_id,
    Charge.period_start,
    Charge.tax_category,
    Charge.amount,
)
"""What ``discounted_share`` reads of a charge and of the lines of its bill."""


def _items(session: Session, accounts: Sequence[int]) -> dict[int, dict[int, TermItem]]:
    """Every item of the accounts (all types), by account and item id."""
    rows = session.execute(
        select(
            ContractItem.id,
            ContractItem.ref,
            ContractItem.price_plan_id,
            ContractItem.contract_id,
            ContractItem.start_date,
            ContractItem.end_date,
            Contract.account_id,
        )
        .join(Contract)
        .where(id_in(session, Contract.account_id, accounts))
    )
    found: dict[int, dict[int, TermItem]] = defaultdict(dict)
    for row in rows:
        found[row.account_id][row.id] = TermItem(
            row.id, row.ref, row.price_plan_id, row.contract_id, row.start_date, row.end_date
        )
    return found


def _commitments(
    session: Session,
    rows: Sequence[Commitment],
    items: dict[int, dict[int, TermItem]],
    units: Sequence[Unit],
) -> dict[int, list[CommitmentTerm]]:
    """The commitments by account, each with its target's bounds and earlier bills' charges."""
    if not rows:
        return {}
    targets = {
        c.id: (
            {c.contract_item_id}
            if c.contract_item_id is not None
            else {
                i.item_id
                for i in items.get(c.account_id, {}).values()
                if i.contract_id == c.contract_id
            }
        )
        for c in rows
    }
    bounds = _bounds(session, rows)
    spent = _billed(session, sorted(set().union(*targets.values())), units)
    found: dict[int, list[CommitmentTerm]] = defaultdict(list)
    for c in rows:
        start, end = bounds[c.id]
        found[c.account_id].append(
            CommitmentTerm(
                id=c.id,
                ref=c.ref,
                amount=c.amount,
                tax_category=c.tax_category,
                description=c.description,
                start=c.start_date,
                end=c.end_date,
                contract_id=c.contract_id,
                item_id=c.contract_item_id,
                target_start=start,
                target_end=end,
                billed=tuple(s for item in sorted(targets[c.id]) for s in spent.get(item, ())),
            )
        )
    return found


def _bounds(
    session: Session, rows: Sequence[Commitment]
) -> dict[int, tuple[date | None, date | None]]:
    """When each commitment's target is active: a contract from its start to its end; an item
    from its start to the first of its end, its pending cancel date and its contract's end."""
    item_ids = [c.contract_item_id for c in rows if c.contract_item_id is not None]
    contract_ids = [c.contract_id for c in rows if c.contract_id is not None]
    found_items = {
        r.id: (r.start_date, _first(r.end_date, r.pending_cancel_date, r.contract_end))
        for r in session.execute(
            select(
                ContractItem.id,
                ContractItem.start_date,
                ContractItem.end_date,
                ContractItem.pending_cancel_date,
                Contract.end_date.label("contract_end"),
            )
            .join(Contract)
            .where(id_in(session, ContractItem.id, item_ids))
        )
    }
    found_contracts = {
        r.id: (r.start_date, r.end_date)
        for r in session.execute(
            select(Contract.id, Contract.start_date, Contract.end_date).where(
                id_in(session, Contract.id, contract_ids)
            )
        )
    }
    return {
        c.id: (
            found_items.get(c.contract_item_id, (None, None))
            if c.contract_item_id is not None
            else found_contracts.get(c.contract_id or 0, (None, None))
        )
        for c in rows
    }


def _first(*days: date | None) -> date | None:
    given = [d for d in days if d is not None]
    return min(given) if given else None


def _billed(
    session: Session, item_ids: Sequence[int], units: Sequence[Unit]
) -> dict[int, list[Spent]]:
    """The items' charges on bills already made whose period may overlap a unit's cycle billed
    (the pure rule keeps those that do), by item; earlier shortfalls and prepayments are not
    spend."""
    if not item_ids or not units:
        return {}
    since = min(add_cycles(u.next_bill_date, -1, u.billing_day, u.cycle) for u in units)
    until = max(u.next_bill_date for u in units)
    found: dict[int, list[Spent]] = defaultdict(list)
    for row in session.execute(
        select(Charge.contract_item_id, Charge.period_start, Charge.period_end, Charge.amount)
        .where(
            id_in(session, Charge.contract_item_id, item_ids),
            Charge.bill_id.is_not(None),
            Charge.kind.not_in((ChargeKind.COMMITMENT, ChargeKind.PREPAYMENT)),
            Charge.period_end >= since,
            Charge.period_start < until,
        )
        .order_by(Charge.id)
    ):
        found[row.contract_item_id].append(Spent(row.period_start, row.period_end, row.amount))
    return found
