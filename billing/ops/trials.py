"""Move an item's trial end (``billing trial extend``): the new end, and the corrections of the
fees already charged for the days that change (``billing.domain.trials``).

``extend_trial(session, item_ref, until, as_of)`` never commits. It locks the item, checks the
request (an error names the item and the field), writes the corrections (``trl:`` adjustments,
each naming the fee it corrects, billed on the unit's next bill when their date is on or before
its last bill) and sets ``contract_items.trial_end_date``. The same call twice changes nothing
the second time: the trial already ends there. Extending or shortening works the same way,
any number of times.

Forecast lines (``planned``, from renewal) of the item that end after the first day that changes
are cancelled, as a contract change cancels them: the schedule charges the real terms.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from billing.domain import charge_keys
from billing.domain.charge_keys import KeyKind, parse_key
from billing.domain.corrections import settled
from billing.domain.errors import BillingError
from billing.domain.trials import trial_corrections
from billing.ops.catalog import load_plans
from billing.ops.changes import CHARGED, cancel_planned_lines
from billing.ops.charging import charge_row, item_terms, load_units
from billing.ops.rating import bill_units_of
from billing.store.models import Charge, ChargeKind, ContractItem, ItemStatus, ItemType
from billing.store.sqlkit import lock_for_update


class TrialError(BillingError):
    """A trial change that cannot apply; the message names the item and the field."""


@dataclass(frozen=True)
class Correction:
    """A correction written: its key, amount and the date its bill takes it from."""

    charge_key: str
    amount: Decimal
    bill_on: date
    period_start: date
    period_end: date


@dataclass
class TrialResult:
    """What a trial change did (``changed`` False: the trial already ended there)."""

    item_ref: str
    old_end: date | None
    new_end: date
    currency: str
    changed: bool = False
    corrections: list[Correction] = field(default_factory=list)


def extend_trial(session: Session, item_ref: str, until: date, as_of: date) -> TrialResult:
    """Move the trial end of the recurring item ``item_ref`` to ``until`` (extend or shorten),
    correcting the fees already charged; never commits."""
    item = session.scalars(
        lock_for_update(
            session,
            select(ContractItem)
            .where(ContractItem.ref == item_ref)
            .options(selectinload(ContractItem.contract))
            .execution_options(populate_existing=True),
        )
    ).one_or_none()
    if item is None:
        raise TrialError(f"item: unknown contract item {item_ref!r}")
    if item.item_type != ItemType.RECURRING:
        raise TrialError(
            f"item: {item.ref} is a {item.item_type.value} item; "
            "only a recurring item's fee has a trial"
        )
    if item.status != ItemStatus.ACTIVE:
        raise TrialError(f"item: {item.ref} is {item.status.value}")
    if until < item.start_date:
        raise TrialError(f"until: {until} is before item {item.ref} starts ({item.start_date})")
    info = load_plans(session)[item.price_plan_id]
    terms = item_terms(item, item.contract.end_date, info)
    if terms.end is not None and until > terms.end:
        raise TrialError(f"until: {until} is after item {item.ref} ends ({terms.end})")
    result = TrialResult(item.ref, item.trial_end_date, until, info.plan.currency)
    if item.trial_end_date == until:
        return result
    unit_id = bill_units_of(session, [item.contract.account_id]).get(item.contract.account_id)
    if unit_id is None:
        raise TrialError(f"item: the account of {item.ref} has no bill unit")
    unit = load_units(session, [unit_id])[0]
    charged, numbers = _charged_fees(session, item.id)
    specs = trial_corrections(terms, until, unit.grid, unit.last_bill_date, charged, numbers)
    rows = [
        charge_row(settled(s, unit.last_bill_date, unit.next_bill_date), unit, as_of, unit.currency)
        for s in specs
    ]
    if rows:  # a plain insert: a concurrent move of the same trial fails instead of doubling
        session.execute(insert(Charge), rows)
    changed_from = min(until, item.trial_end_date or item.start_date)
    cancel_planned_lines(session, [item.id], max(changed_from, item.start_date))
    item.trial_end_date = until
    session.flush()
    result.changed = True
    result.corrections = [
        Correction(r["charge_key"], r["amount"], r["bill_on"], r["period_start"], r["period_end"])
        for r in rows
    ]
    return result


def _charged_fees(session: Session, item_id: int) -> tuple[dict[date, int], dict[date, int]]:
    """The item's charged recurring fees by cycle start (their ids), and how many trial
    corrections each cycle has already (by cycle start)."""
    fees = session.execute(
        select(Charge.id, Charge.charge_key).where(
            Charge.contract_item_id == item_id,
            Charge.kind == ChargeKind.RECURRING,
            Charge.status.in_(CHARGED),
            Charge.charge_key.like(charge_keys.like_kind(KeyKind.RECURRING)),
        )
    ).all()
    charged = {_cycle_start(key): charge_id for charge_id, key in fees}
    numbers: dict[date, int] = defaultdict(int)
    for key in session.scalars(
        select(Charge.charge_key).where(
            Charge.contract_item_id == item_id,
            Charge.charge_key.like(charge_keys.like_trial(item_id)),
        )
    ):
        parsed = parse_key(key)
        assert parsed.on is not None and parsed.number is not None  # a trl key has both
        numbers[parsed.on] = max(numbers[parsed.on], parsed.number)
    return charged, dict(numbers)


def _cycle_start(key: str) -> date:
    on = parse_key(key).on
    assert on is not None  # a rec key is dated
    return on
