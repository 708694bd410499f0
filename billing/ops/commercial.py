"""Read the commercial terms of the bill units a pass bills (``billing.domain.commercial``).

One query per table for the batch's accounts; a unit whose account has no term gets none, and
the plan then does nothing more for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.billplan import Unit
from billing.domain.commercial import CommitmentTerm, DiscountTerm, TermItem, UnitTerms
from billing.store.models import Contract, ContractItem
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
    commitments: dict[int, list[CommitmentTerm]] = defaultdict(list)
    for commitment in session.scalars(
        select(Commitment)
        .where(id_in(session, Commitment.account_id, accounts))
        .order_by(Commitment.id)
    ):
        commitments[commitment.account_id].append(
            CommitmentTerm(
                id=commitment.id,
                ref=commitment.ref,
                amount=commitment.amount,
                tax_category=commitment.tax_category,
                description=commitment.description,
                start=commitment.start_date,
                end=commitment.end_date,
                contract_id=commitment.contract_id,
                item_id=commitment.contract_item_id,
            )
        )
    with_terms = sorted(set(discounts) | set(commitments))
    if not with_terms:
        return {}
    items = _items(session, with_terms)
    return {
        unit.id: UnitTerms(
            tuple(discounts.get(unit.account_id, ())),
            tuple(commitments.get(unit.account_id, ())),
            items.get(unit.account_id, {}),
        )
        for unit in units
        if unit.account_id in discounts or unit.account_id in commitments
    }


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
