"""Close due charges into bills: BRM ``pin_bill_accts``, and the Cn285 Billing daemon.

One code path serves both: ``bill_units`` bills a batch of bill units as of a date, set-based.
- A unit whose ``next_bill_date`` is on or before ``as_of`` closes that cycle: its scheduled
  fees are materialized, its usage before midnight of the bill date is rated, and every
  ``calculated`` charge with ``bill_on`` up to the bill date becomes a line of one bill.
- A unit with ``immediate`` charges due (Cn285 UTI) gets a bill for those, dated ``as_of``.

Idempotence: the batch claims its units with a conditional UPDATE, charges are keyed, and
``bills.bill_key`` is unique, so a rerun, a crash or a concurrent run never bills twice.

A batch is billed in slices inside its one transaction (``bill_slices``), and the charges a
pass creates are written once, already open on their bill (``_new_charges``, ``_write_bills``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import chain
from typing import Any, NamedTuple

from sqlalchemy import Engine, exists, or_, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from billing.domain.errors import BillingError
from billing.domain.invoice import ChargeIn, DraftBill, generate_invoice
from billing.domain.money import add_to_total
from billing.domain.periods import add_cycles
from billing.domain.results import Mergeable
from billing.domain.schedule import ChargeSpec, CycleGrid, ItemTerms, scheduled_charges
from billing.failpoints import failpoint
from billing.ops.catalog import PlanInfo, TaxTable, load_plans, load_tax_table
from billing.ops.rating import RatingScope, midnight, price_usage_for, upsert_usage_charges
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillingIssue,
    BillingState,
    BillLine,
    BillStatus,
    BillUnit,
    Charge,
    ChargeStatus,
    Contract,
    ContractItem,
    ItemType,
)
from billing.store.sqlkit import (
    bulk_insert,
    bulk_update,
    id_in,
    key_in,
    take_ids,
)

STEP = "bill_accounts"


@dataclass(frozen=True)
class Unit:
    """A claimed bill unit with the account facts billing needs."""

    id: int
    account_id: int
    account_ref: str
    currency: str
    country: str
    terms: int
    billing_day: int
    cycle: str
    next_bill_date: date
    last_bill_date: date | None
    series_code: str

    def cycle_due(self, as_of: date) -> bool:
        return self.next_bill_date <= as_of

    def bill_date(self, as_of: date) -> date:
        return self.next_bill_date if self.cycle_due(as_of) else as_of

    @property
    def grid(self) -> CycleGrid:
        return CycleGrid(self.next_bill_date, self.billing_day, self.cycle)


@dataclass
class BatchResult(Mergeable):
    """What a batch did; results of several batches merge."""

    units: int = 0
    billed: int = 0
    bills: int = 0
    empty_cycles: int = 0  # cycles closed with nothing to bill: no bill, the cycle advances
    usage_collected: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    failed_units: set[int] = field(default_factory=set)
    totals: dict[str, Decimal] = field(default_factory=dict)


def due_condition(as_of: date) -> Any:
    """A bill unit is due when its cycle has closed, or when it has immediate charges due."""
    immediate = exists().where(
        Charge.bill_unit_id == BillUnit.id,
        Charge.status == ChargeStatus.CALCULATED,
        Charge.immediate.is_(True),
        Charge.bill_on <= as_of,
    )
    return or_(BillUnit.next_bill_date <= as_of, immediate)


def due_unit_ids(
    session: Session,
    as_of: date,
    *,
    after_id: int = 0,
    limit: int = 150_000,
    account_refs: Sequence[str] | None = None,
    exclude: Sequence[int] = (),
) -> list[int]:
    """Ids of due bill units after ``after_id``, in id order (one fetch of ``fetch_size``)."""
    query = select(BillUnit.id).where(due_condition(as_of), BillUnit.id > after_id)
    if account_refs:
        query = query.join(Account).where(Account.ref.in_(list(account_refs)))
    if exclude:
        query = query.where(BillUnit.id.not_in(list(exclude)))
    return list(session.scalars(query.order_by(BillUnit.id).limit(limit)))


def bill_units(
    session: Session,
    unit_ids: Sequence[int],
    as_of: date,
    run_id: str,
    catalog: Catalog | None = None,
) -> BatchResult:
    """Bill one batch of bill units as of ``as_of`` (never commits; the caller does)."""
    units = _claim(session, unit_ids, as_of)
    if not units:
        return BatchResult()
    failpoint("billrun.after_claim")
    plans, taxes = (catalog or Catalog()).load(session)
    failed: dict[int, str] = {}
    cycle_units = [u for u in units if u.cycle_due(as_of)]
    scheduled = _materialize(session, cycle_units, plans, as_of, failed)
    usage, collected = _rate_usage(session, cycle_units, plans, as_of, failed)
    fresh = _new_charges(session, scheduled, usage)
    drafts = _drafts(session, units, fresh, taxes, as_of, failed)
    result = _write_bills(session, units, drafts, fresh, run_id, as_of)
    result.units, result.usage_collected = len(units), collected
    billed = [u for u in units if u.id not in failed]
    _close_cycles(session, [u for u in billed if u.cycle_due(as_of)])
    _set_state(session, [u.id for u in billed if not u.cycle_due(as_of)], BillingState.BILLED)
    record_failures(session, units, failed, run_id, as_of, STEP)
    result.billed = len(billed)
    result.empty_cycles = sum(1 for u in billed if u.cycle_due(as_of) and u.id not in drafts)
    result.failed = {u.account_ref: failed[u.id] for u in units if u.id in failed}
    result.failed_units = set(failed)
    return result


class Catalog:
    """The price plans and VAT rates, read once per batch when its first units are claimed."""

    def __init__(self) -> None:
        self._loaded: tuple[dict[int, PlanInfo], TaxTable] | None = None

    def load(self, session: Session) -> tuple[dict[int, PlanInfo], TaxTable]:
        if self._loaded is None:
            self._loaded = load_plans(session), load_tax_table(session)
        return self._loaded


def _claim(session: Session, unit_ids: Sequence[int], as_of: date) -> list[Unit]:
    """Take the units that are still due; a concurrent run that took them leaves none here."""
    claimed = session.scalars(
        update(BillUnit)
        .where(id_in(session, BillUnit.id, unit_ids), due_condition(as_of))
        .values(billing_state=BillingState.IN_PROGRESS)
        .returning(BillUnit.id)
        .execution_options(synchronize_session=False)
    ).all()
    return load_units(session, claimed) if claimed else []


def load_units(session: Session, unit_ids: Sequence[int]) -> list[Unit]:
    """Bill units with their accounts' billing facts, in id order."""
    rows = session.execute(
        select(
            BillUnit.id,
            BillUnit.account_id,
            Account.ref,
            Account.currency,
            Account.country,
            Account.payment_terms_days,
            BillUnit.billing_day,
            BillUnit.cycle,
            BillUnit.next_bill_date,
            BillUnit.last_bill_date,
            BillUnit.series_code,
        )
        .join(Account, Account.id == BillUnit.account_id)
        .where(id_in(session, BillUnit.id, unit_ids))
        .order_by(BillUnit.id)
    )
    return [
        Unit(
            id=r.id,
            account_id=r.account_id,
            account_ref=r.ref,
            currency=r.currency,
            country=r.country,
            terms=r.payment_terms_days,
            billing_day=r.billing_day,
            cycle=r.cycle.value,
            next_bill_date=r.next_bill_date,
            last_bill_date=r.last_bill_date,
            series_code=r.series_code,
        )
        for r in rows
    ]


def _items_by_account(
    session: Session, account_ids: Sequence[int], types: tuple[ItemType, ...]
) -> dict[int, list[Any]]:
    """The accounts' items (as rows, not ORM objects: a batch loads tens of thousands)."""
    item = ContractItem
    rows = session.execute(
        select(
            item.id,
            item.ref,
            item.item_type,
            item.price_plan_id,
            item.quantity,
            item.price_override,
            item.start_date,
            item.end_date,
            item.pending_cancel_date,
            Contract.account_id,
            Contract.end_date.label("contract_end"),
        )
        .join(Contract)
        .where(id_in(session, Contract.account_id, account_ids), item.item_type.in_(types))
        .order_by(item.id)
    )
    found: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        found[row.account_id].append((row, row.contract_end))
    return found


def item_terms(item: Any, contract_end: date | None, info: PlanInfo) -> ItemTerms:
    """The schedule's view of an item: it ends at its end, its contract's or its cancel date."""
    ends = [d for d in (item.end_date, contract_end, item.pending_cancel_date) if d is not None]
    return ItemTerms(
        item_id=item.id,
        item_type=item.item_type.value,
        description=info.product_name,
        plan=info.plan,
        tax_category=info.tax_category,
        quantity=item.quantity,
        price_override=item.price_override,
        start=item.start_date,
        end=min(ends) if ends else None,
    )


def charge_row(spec: ChargeSpec, unit: Unit, as_of: date, currency: str) -> dict[str, Any]:
    """The charges-table row of a spec, for ``unit``."""
    return {
        **spec.__dict__,
        "account_id": unit.account_id,
        "bill_unit_id": unit.id,
        "currency": currency,
        "status": ChargeStatus.CALCULATED,
        "immediate": False,
        "created_on": as_of,
    }


def scheduled_rows(
    session: Session,
    units: Sequence[Unit],
    plans: dict[int, PlanInfo],
    as_of: date,
    failed: dict[int, str],
    *,
    through: Any,
    timing: str | None = None,
) -> list[dict[str, Any]]:
    """The charges-table rows of every scheduled fee of the units' items billable by
    ``through(unit)``; a unit whose fees cannot be priced is put in ``failed``."""
    items = _items_by_account(
        session, [u.account_id for u in units], (ItemType.RECURRING, ItemType.ONE_TIME)
    )
    rows: list[dict[str, Any]] = []
    for unit in units:
        try:
            for item, contract_end in items.get(unit.account_id, ()):
                info = plans[item.price_plan_id]
                if timing is not None and info.plan.timing != timing:
                    continue
                if info.plan.currency != unit.currency:
                    raise BillingError(
                        f"item {item.ref}: price plan {info.plan.code} is in "
                        f"{info.plan.currency}, the account bills in {unit.currency}"
                    )
                terms = item_terms(item, contract_end, info)
                specs = scheduled_charges(terms, unit.grid, through(unit), unit.last_bill_date)
                rows.extend(charge_row(s, unit, as_of, unit.currency) for s in specs)
        except BillingError as error:
            failed[unit.id] = str(error)
    return rows


def _materialize(
    session: Session,
    units: Sequence[Unit],
    plans: dict[int, PlanInfo],
    as_of: date,
    failed: dict[int, str],
) -> list[dict[str, Any]]:
    """The cycle's scheduled fees, as rows: ``_write_bills`` inserts them with their bill."""
    return scheduled_rows(session, units, plans, as_of, failed, through=lambda u: u.next_bill_date)


def _rate_usage(
    session: Session,
    units: Sequence[Unit],
    plans: dict[int, PlanInfo],
    as_of: date,
    failed: dict[int, str],
) -> tuple[list[dict[str, Any]], int]:
    """Rate usage before midnight of each unit's bill date into that bill's charge rows.

    Returns the rows, unwritten (``_new_charges`` and ``_write_bills`` write them), and the
    number of usage records collected.
    """
    by_date: dict[date, list[Unit]] = defaultdict(list)
    for unit in units:
        if unit.id not in failed:
            by_date[unit.next_bill_date].append(unit)
    rows: list[dict[str, Any]] = []
    collected = 0
    for bill_date, group in by_date.items():
        scope = RatingScope(
            account_ids=[u.account_id for u in group],
            cutoff=midnight(bill_date),
            key_prefix="use",
            bill_on=bill_date,
            item_types=(ItemType.USAGE, ItemType.UTI),
        )
        count, priced, bad = price_usage_for(session, scope, plans, as_of)
        rows.extend(priced)
        collected += count
        for unit in group:
            if unit.account_id in bad:
                failed[unit.id] = bad[unit.account_id]
    return rows, collected


def _new_charges(
    session: Session, scheduled: list[dict[str, Any]], usage: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of the charges this pass creates, each with the id it will be inserted with.

    What an insert with ON CONFLICT would do is decided here, before billing, so that each new
    charge is written once, already on its bill: a fee whose key exists is left to the existing
    charge (a forward fee from cycle fees is billed as it is; one already billed is not billed
    again), and a usage charge that exists and is still calculated is re-priced in place.
    Ids are taken in the order the rows would have been inserted, so bill lines keep the
    (period start, charge id) order.
    """
    keys = [row["charge_key"] for row in chain(scheduled, usage)]
    existing = _existing_keys(session, keys)
    upsert_usage_charges(session, [row for row in usage if row["charge_key"] in existing])
    seen = set(existing)
    fresh = []
    for row in chain(scheduled, usage):
        if row["charge_key"] not in seen:
            seen.add(row["charge_key"])
            fresh.append(row)
    for row, charge_id in zip(fresh, take_ids(session, Charge.__table__, len(fresh)), strict=True):
        row["id"] = charge_id
    return fresh


CHARGE_KEYS_PER_QUERY = 10_000


def _existing_keys(session: Session, keys: Sequence[str]) -> set[str]:
    """The keys among ``keys`` that some charge already has."""
    found: set[str] = set()
    for start in range(0, len(keys), CHARGE_KEYS_PER_QUERY):
        part = keys[start : start + CHARGE_KEYS_PER_QUERY]
        query = select(Charge.charge_key).where(key_in(session, Charge.charge_key, part))
        found.update(session.scalars(query))
    return found


class Billable(NamedTuple):
    """A calculated charge as billing reads it (a stored one, or one this pass creates)."""

    id: int
    bill_unit_id: int
    charge_key: str
    description: str
    period_start: date
    period_end: date
    bill_on: date
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    currency: str
    tax_category: str
    immediate: bool


_BILLABLE = [getattr(Charge, name) for name in Billable._fields]


def _billable(
    session: Session, units: Sequence[Unit], fresh: Sequence[dict[str, Any]], as_of: date
) -> dict[int, list[Billable]]:
    """The units' calculated charges due by ``as_of``, stored or new, in id order.

    Sorted here rather than by ORDER BY id: on statistics of a table that was empty (the first
    bill day, or charges written earlier in this transaction), the planner walks the whole
    primary key for that order instead of the (bill unit, status, bill on) index.
    """
    rows = session.execute(
        select(*_BILLABLE).where(
            id_in(session, Charge.bill_unit_id, [u.id for u in units]),
            Charge.status == ChargeStatus.CALCULATED,
            Charge.bill_on <= as_of,
        )
    )
    found: dict[int, list[Billable]] = defaultdict(list)
    for charge in sorted(rows, key=lambda row: row.id):
        found[charge.bill_unit_id].append(Billable(*charge))
    for row in fresh:  # new ids come after every stored one: the order stays by id
        if row["bill_on"] <= as_of:
            found[row["bill_unit_id"]].append(Billable(*(row[name] for name in Billable._fields)))
    return found


def _drafts(
    session: Session,
    units: Sequence[Unit],
    fresh: Sequence[dict[str, Any]],
    taxes: TaxTable,
    as_of: date,
    failed: dict[int, str],
) -> dict[int, DraftBill]:
    charges = _billable(session, units, fresh, as_of)
    drafts = {}
    for unit in units:
        if unit.id in failed:
            continue
        bill_date = unit.bill_date(as_of)
        due = [
            c
            for c in charges.get(unit.id, ())
            if c.bill_on <= bill_date and (unit.cycle_due(as_of) or c.immediate)
        ]
        if not due:
            continue
        try:
            drafts[unit.id] = _draft(unit, due, taxes, bill_date)
        except BillingError as error:
            failed[unit.id] = str(error)
    return drafts


def _draft(unit: Unit, charges: Sequence[Billable], taxes: TaxTable, bill_date: date) -> DraftBill:
    for charge in charges:
        if charge.currency != unit.currency:
            raise BillingError(
                f"charge {charge.charge_key} is in {charge.currency}, "
                f"the account bills in {unit.currency}"
            )
    return generate_invoice(
        currency=unit.currency,
        charges=[
            ChargeIn(
                c.id,
                c.description,
                c.period_start,
                c.period_end,
                c.quantity,
                c.unit_price,
                c.amount,
                c.tax_category,
            )
            for c in charges
        ],
        tax_rates=taxes.rates_for(unit.country, bill_date),
        bill_date=bill_date,
        payment_terms_days=unit.terms,
    )


def bill_key(unit: Unit, draft: DraftBill, as_of: date) -> str:
    """Cycle bills are unique per unit and bill date; immediate ones per run date and content."""
    if unit.cycle_due(as_of):
        return f"cyc:{unit.id}:{draft.bill_date.isoformat()}"
    return (
        f"imm:{unit.id}:{draft.bill_date.isoformat()}:{min(line.charge_id for line in draft.lines)}"
    )


def _bill_period(unit: Unit, draft: DraftBill, as_of: date) -> tuple[date, date]:
    if unit.cycle_due(as_of):
        start = add_cycles(unit.next_bill_date, -1, unit.billing_day, unit.cycle)
        return start, unit.next_bill_date
    return draft.period_start, draft.period_end


def _write_bills(
    session: Session,
    units: Sequence[Unit],
    drafts: dict[int, DraftBill],
    fresh: list[dict[str, Any]],
    run_id: str,
    as_of: date,
) -> BatchResult:
    """Insert the bills, the new charges (open on their bill, or calculated) and the lines, and
    move the stored charges the bills take from calculated to open."""
    result = BatchResult()
    if not drafts:
        _insert_new_charges(session, fresh, {})
        return result
    by_id = {u.id: u for u in units}
    rows = []
    for unit_id, draft in drafts.items():
        unit = by_id[unit_id]
        start, end = _bill_period(unit, draft, as_of)
        rows.append(
            {
                "bill_key": bill_key(unit, draft, as_of),
                "account_id": unit.account_id,
                "bill_unit_id": unit.id,
                "series_code": unit.series_code,
                "status": BillStatus.BILLED,
                "bill_date": draft.bill_date,
                "due_date": draft.due_date,
                "period_start": start,
                "period_end": end,
                "currency": draft.currency,
                "net": draft.net,
                "tax": draft.tax,
                "gross": draft.gross,
                "amount_paid": Decimal(0),
                "run_id": run_id,
            }
        )
        add_to_total(result.totals, draft.currency, draft.gross)
    inserted = bulk_insert(session, Bill.__table__, rows, returning=("id", "bill_unit_id"))
    bill_of_unit = {unit_id: bill_id for bill_id, unit_id in inserted}
    lines = [
        {
            "bill_id": bill_of_unit[unit_id],
            "charge_id": line.charge_id,
            "position": position,
            "description": line.description,
            "period_start": line.period_start,
            "period_end": line.period_end,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "net": line.net,
            "tax_category": line.tax_category,
            "tax_rate": line.tax_rate,
            "tax": line.tax,
            "gross": line.gross,
        }
        for unit_id, draft in drafts.items()
        for position, line in enumerate(draft.lines, start=1)
    ]
    bill_of_charge = {line["charge_id"]: line["bill_id"] for line in lines}
    _insert_new_charges(session, fresh, bill_of_charge)
    bulk_insert(session, BillLine.__table__, lines)
    for row in fresh:
        bill_of_charge.pop(row["id"], None)
    _open_charges(session, bill_of_charge)
    new_gross: dict[int, Decimal] = defaultdict(Decimal)
    for unit_id, draft in drafts.items():
        new_gross[by_id[unit_id].account_id] += draft.gross
    _add_to_balances(session, new_gross)
    result.bills = len(inserted)
    return result


class ConcurrentBillingError(BillingError):
    """A charge was billed by someone else between reading and writing it."""


def _insert_new_charges(
    session: Session, fresh: list[dict[str, Any]], bill_of_charge: dict[int, int]
) -> None:
    """Insert the pass's new charges once: open with their bill id when a bill took them."""
    for row in fresh:
        bill_id = bill_of_charge.get(row["id"])
        row["bill_id"] = bill_id
        row["status"] = ChargeStatus.CALCULATED if bill_id is None else ChargeStatus.OPEN
    inserted = bulk_insert(
        session, Charge.__table__, fresh, on_conflict="nothing", returning=("id",)
    )
    if len(inserted) != len(fresh):
        raise ConcurrentBillingError(
            f"expected to insert {len(fresh)} charges, inserted {len(inserted)}"
        )


def _open_charges(session: Session, bill_of_charge: dict[int, int]) -> None:
    """Move the billed charges from calculated to open, each pointing at its bill."""
    opened = bulk_update(
        session,
        Charge.__table__,
        [{"id": charge_id, "bill_id": bill_id} for charge_id, bill_id in bill_of_charge.items()],
        values=lambda src: {"status": ChargeStatus.OPEN, "bill_id": src.c.bill_id},
        where=Charge.__table__.c.status == ChargeStatus.CALCULATED,
        returning=("id",),
    )
    if len(opened) != len(bill_of_charge):
        raise ConcurrentBillingError(
            f"expected to open {len(bill_of_charge)} charges, opened {len(opened)}"
        )


def _add_to_balances(session: Session, gross_by_account: dict[int, Decimal]) -> None:
    """The account balance grows by the gross of each new bill."""
    bulk_update(
        session,
        Account.__table__,
        [{"id": account_id, "balance": gross} for account_id, gross in gross_by_account.items()],
        values=lambda src: {"balance": Account.__table__.c.balance + src.c.balance},
    )


def _close_cycles(session: Session, units: Sequence[Unit]) -> None:
    """Advance each billed unit by one cycle, in one statement."""
    bulk_update(
        session,
        BillUnit.__table__,
        [
            {
                "id": unit.id,
                "last_bill_date": unit.next_bill_date,
                "next_bill_date": unit.grid.boundary(1),
            }
            for unit in units
        ],
        values=lambda src: {
            "last_bill_date": src.c.last_bill_date,
            "next_bill_date": src.c.next_bill_date,
            "billing_state": BillingState.BILLED,
            "failure_reason": None,
        },
    )


def _set_state(session: Session, unit_ids: Sequence[int], state: BillingState) -> None:
    if unit_ids:
        session.execute(
            update(BillUnit)
            .where(id_in(session, BillUnit.id, unit_ids))
            .values(billing_state=state, failure_reason=None)
            .execution_options(synchronize_session=False)
        )


def record_failures(
    session: Session,
    units: Sequence[Unit],
    failed: dict[int, str],
    run_id: str,
    as_of: date,
    step: str,
) -> None:
    """Mark failed units (BRM billing_state 4) and keep a billing issue with the reason."""
    for unit in units:
        if unit.id not in failed:
            continue
        reason = failed[unit.id]
        session.execute(
            update(BillUnit)
            .where(BillUnit.id == unit.id)
            .values(billing_state=BillingState.FAILED, failure_reason=reason)
            .execution_options(synchronize_session=False)
        )
        session.add(
            BillingIssue(
                run_id=run_id,
                step=step,
                account_id=unit.account_id,
                bill_unit_id=unit.id,
                as_of=as_of,
                reason=reason,
            )
        )
    session.flush()


MAX_CYCLES_PER_BATCH = 120
SLICE_UNITS = 2_000
"""Bill units billed together inside a batch's transaction. A slice's rows, drafts and CSV text
are dropped before the next slice is read, so a batch's memory does not grow with ``per_batch``
while it still commits (or rolls back) as one."""


def bill_slices(
    session: Session,
    unit_ids: Sequence[int],
    as_of: date,
    run_id: str,
    *,
    slice_units: int = SLICE_UNITS,
) -> BatchResult:
    """Bill a batch ``slice_units`` units at a time, in the session's transaction.

    The slices follow the units' next bill dates: rating runs its statements once per bill
    date of a slice, so a slice of units that share a date needs one round of them, where
    slices in id order would each need one per day of the month.
    """
    if slice_units < 1:
        raise ValueError(f"slice_units must be 1 or more, got {slice_units}")
    ordered = _in_bill_date_order(session, unit_ids)
    catalog = Catalog()
    result = BatchResult()
    for start in range(0, len(ordered), slice_units):
        part = ordered[start : start + slice_units]
        result = result.merge(_catch_up(session, part, as_of, run_id, catalog))
    return result


def _in_bill_date_order(session: Session, unit_ids: Sequence[int]) -> list[int]:
    """The bill units among ``unit_ids``, by next bill date, then id."""
    if not unit_ids:
        return []
    return list(
        session.scalars(
            select(BillUnit.id)
            .where(id_in(session, BillUnit.id, unit_ids))
            .order_by(BillUnit.next_bill_date, BillUnit.id)
        )
    )


def _catch_up(
    session: Session, unit_ids: Sequence[int], as_of: date, run_id: str, catalog: Catalog
) -> BatchResult:
    """Bill the units, then again for units still due (several cycles behind), in one go.

    ``units`` and ``billed`` count bill units, not cycles: a unit billed three times counts once.
    """
    result = bill_units(session, unit_ids, as_of, run_id, catalog)
    units, billed = result.units, result.billed
    for _ in range(MAX_CYCLES_PER_BATCH):
        remaining = [i for i in unit_ids if i not in result.failed_units]
        again = bill_units(session, remaining, as_of, run_id, catalog)
        if not again.units:
            break
        result = result.merge(again)
        billed -= len(again.failed_units)
    result.units, result.billed = units, billed
    return result


class _DryRun(Exception):
    def __init__(self, result: BatchResult):
        self.result = result


def bill_batch(
    engine: Engine,
    unit_ids: Sequence[int],
    as_of: date,
    run_id: str,
    *,
    dry_run: bool = False,
    slice_units: int = SLICE_UNITS,
) -> BatchResult:
    """Bill a batch in one transaction, in slices; a unit that breaks the batch is retried alone.

    Transient database errors (``OperationalError``: lost connection, serialization failure,
    busy SQLite) propagate so the caller can retry. ``dry_run`` computes and rolls back.
    """
    try:
        with unit_of_work(engine, isolation="REPEATABLE READ") as session:
            result = bill_slices(session, unit_ids, as_of, run_id, slice_units=slice_units)
            failpoint("billrun.before_commit")
            if dry_run:
                raise _DryRun(result)
        return result
    except _DryRun as done:
        return done.result
    except OperationalError:
        raise
    except (DBAPIError, BillingError) as error:
        if len(unit_ids) == 1:
            return _record_unit_failure(engine, unit_ids[0], as_of, run_id, error, dry_run)
        merged = BatchResult()
        for unit_id in unit_ids:
            merged = merged.merge(bill_batch(engine, [unit_id], as_of, run_id, dry_run=dry_run))
        return merged


def _record_unit_failure(
    engine: Engine, unit_id: int, as_of: date, run_id: str, error: Exception, dry_run: bool
) -> BatchResult:
    reason = f"{type(error).__name__}: {str(error).splitlines()[0][:500]}"
    if dry_run:
        return BatchResult(units=1, failed={f"bill unit {unit_id}": reason}, failed_units={unit_id})
    with unit_of_work(engine) as session:
        units = _claim(session, [unit_id], as_of)
        record_failures(session, units, {unit_id: reason}, run_id, as_of, STEP)
        ref = units[0].account_ref if units else f"bill unit {unit_id}"
    return BatchResult(units=1, failed={ref: reason}, failed_units={unit_id})
