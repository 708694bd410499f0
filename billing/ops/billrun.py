"""Close due charges into bills: BRM ``pin_bill_accts``, and the Cn285 Billing daemon.

One code path serves both: ``bill_units`` bills a batch of bill units as of a date, set-based.
- A unit whose ``next_bill_date`` is on or before ``as_of`` closes that cycle: its scheduled
  fees are materialized, its usage before midnight of the bill date is rated, and every
  ``calculated`` charge with ``bill_on`` up to the bill date becomes a line of one bill.
- A unit with ``immediate`` charges due (Cn285 UTI) gets a bill for those, dated ``as_of``.

Idempotence: the batch claims its units with a conditional UPDATE, charges are keyed, and
``bills.bill_key`` is unique, so a rerun, a crash or a concurrent run never bills twice.

Each pass is read, plan, write: ``read_snapshot`` reads what the claimed units need (items,
rated usage, stored charges, existing keys, VAT rates), ``billing.domain.billplan.plan_bills``
computes the bills, lines, charges and failures from it (pure), and ``write_plan`` writes them
in the batch's transaction. A unit the database refuses is isolated by bisection with
savepoints (``_write_bisecting``); the others are billed. A batch is billed in slices inside its
one transaction (``bill_slices``), and the charges a pass creates are written once, already
open on their bill.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, exists, or_, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from billing.domain.billplan import (
    Billable,
    Plan,
    Snapshot,
    Unit,
    UnitPlan,
    bill_key,
    plan_bills,
    scheduled_fees,
)
from billing.domain.charge_keys import KeyKind
from billing.domain.corrections import CorrectedBill, line_description
from billing.domain.credit_notes import document_for
from billing.domain.errors import BillingError
from billing.domain.invoice import DraftBill
from billing.domain.money import add_to_total
from billing.domain.results import Mergeable
from billing.domain.usage import RatingScope, midnight
from billing.domain.vat import DEFAULT_SELLER_COUNTRY
from billing.failpoints import failpoint
from billing.ops.catalog import PlanInfo, TaxTable, load_plans, load_tax_table
from billing.ops.charging import load_units, record_failures, unit_items
from billing.ops.commercial import load_terms
from billing.ops.rating import (
    LateUsage,
    price_late_usage,
    price_usage_for,
    upsert_usage_charges,
)
from billing.ops.thresholds import net_of_thresholds
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillingState,
    BillStatus,
    BillUnit,
    Charge,
    ChargeStatus,
    ItemType,
)
from billing.store.sqlkit import (
    bulk_insert,
    bulk_update,
    id_in,
    key_in,
    take_ids,
)
from billing.store.usage import watermark

STEP = "bill_accounts"


@dataclass
class BatchResult(Mergeable):
    """What a batch did; results of several batches merge."""

    units: int = 0
    billed: int = 0
    bills: int = 0
    empty_cycles: int = 0  # cycles closed with nothing to bill: no bill, the cycle advances
    usage_collected: int = 0
    late_usage_billed: int = 0
    """Late usage records (of cycles already billed) billed as deltas of their cycle."""
    late_usage_held: int = 0
    """Late usage records held: older than their plan's window (``billing issues``)."""
    late_usage_amounts: dict[str, Decimal] = field(default_factory=dict)
    """The late usage deltas' amounts (net) per currency."""
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
    """Bill one pass over a batch of bill units as of ``as_of`` (never commits; the caller does).

    Claim the due units, read a snapshot, compute the plan (pure), write it.
    """
    units = _claim(session, unit_ids, as_of)
    if not units:
        return BatchResult()
    failpoint("billrun.after_claim")
    snapshot, rated = read_snapshot(session, units, as_of, catalog or Catalog())
    return write_plan(session, plan_bills(snapshot), run_id, rated)


class Catalog:
    """The price plans and VAT rates, read once per batch when its first units are claimed,
    and the country of the seller whose VAT rules apply (``billing.domain.vat``)."""

    def __init__(self, seller_country: str | None = None) -> None:
        self.seller_country = seller_country or DEFAULT_SELLER_COUNTRY
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


# -- read: the snapshot a pass computes its plan from -------------------------------------


@dataclass(frozen=True)
class Rated:
    """What a pass's rating read: the usage records it priced per account, and the watermark
    it rated up to (the units whose cycle closes keep it: ``billing.store.usage``)."""

    records: dict[int, int] = field(default_factory=dict)
    through: int = 0


def read_snapshot(
    session: Session, units: Sequence[Unit], as_of: date, catalog: Catalog
) -> tuple[Snapshot, Rated]:
    """The claimed units' items, rated usage, stored charges, existing keys and VAT rates.

    Returns the snapshot and what rating read. The fees are scheduled here (purely, as the
    plan would) to know which keys to look up and which units' usage to rate (a unit whose
    fees cannot be computed is not rated), and handed to the plan in the snapshot.
    """
    plans, taxes = catalog.load(session)
    cycle_units = [u for u in units if u.cycle_due(as_of)]
    items = unit_items(session, cycle_units, plans)
    scheduled, failed = scheduled_fees(Snapshot(as_of, tuple(units), items), cycle_units)
    usage, rated, bad, late = _rate_usage(
        session, [u for u in cycle_units if u.id not in failed], plans, as_of
    )
    keys = [row["charge_key"] for rows in scheduled.values() for row in rows]
    keys += [row["charge_key"] for row in usage]
    corrects = [row["corrects_charge_id"] for row in usage]
    snapshot = Snapshot(
        as_of=as_of,
        units=tuple(units),
        items=items,
        usage=tuple(usage),
        usage_failures=bad,
        stored=_stored_billable(session, units, as_of),
        existing_keys=frozenset(_existing_keys(session, keys)),
        taxes={
            u.id: taxes.taxes_for(catalog.seller_country, u.country, u.business, u.bill_date(as_of))
            for u in units
        },
        corrected=_corrected_bills(session, corrects),
        late_records=late.records,
        late_held=late.held,
        fees=(scheduled, failed),
        terms=load_terms(session, cycle_units),
    )
    return snapshot, rated


def _rate_usage(
    session: Session, units: Sequence[Unit], plans: dict[int, PlanInfo], as_of: date
) -> tuple[list[dict[str, Any]], Rated, dict[int, str], LateUsage]:
    """Rate usage before midnight of each unit's bill date into that bill's charge rows.

    Late usage first (``billing.domain.late_usage``): records of cycles a unit already closed
    that arrived after they were rated go to delta charges of their own cycle, or are held
    beyond their plan's window; the rest, stamped from the unit's last bill date on, is the
    cycle's usage, less what the cycle's threshold charges billed early for each item
    (``billing.ops.thresholds``). Everything is rated up to one watermark, read once. Returns
    the rows, unwritten (the plan decides which are new, the writer writes them), what rating
    read, the units whose usage could not be priced, and what late usage rating did.
    """
    through = watermark(session)
    by_cycle: dict[tuple[date, date | None], list[Unit]] = defaultdict(list)
    for unit in units:
        by_cycle[(unit.next_bill_date, unit.last_bill_date)].append(unit)
    rows: list[dict[str, Any]] = []
    records: dict[int, int] = defaultdict(int)
    failed: dict[int, str] = {}
    late = LateUsage()
    types = (ItemType.USAGE, ItemType.UTI)
    for (bill_date, last), group in by_cycle.items():
        before = price_late_usage(session, group, bill_date, plans, as_of, types, through)
        scope = RatingScope(
            account_ids=[u.account_id for u in group],
            cutoff=midnight(bill_date),
            key_prefix=KeyKind.USAGE,
            bill_on=bill_date,
            item_types=types,
        )
        since = None if last is None else midnight(last)
        counts, priced, bad = price_usage_for(session, scope, plans, as_of, through, since)
        priced, netted = net_of_thresholds(session, group, bill_date, priced, plans, as_of, through)
        bad = {**netted, **bad}
        rows.extend(before.rows)
        rows.extend(priced)
        for row in priced:
            records[row["account_id"]] += counts.get(row["charge_key"], 0)
        for row in before.rows:
            records[row["account_id"]] += before.records[row["charge_key"]]
        late.records.update(before.records)
        late.held += before.held
        for unit in group:
            reason = before.failed.get(unit.account_id) or bad.get(unit.account_id)
            if reason is not None:
                failed[unit.id] = reason
    return rows, Rated(dict(records), through), failed, late


CHARGE_KEYS_PER_QUERY = 10_000


def _existing_keys(session: Session, keys: Sequence[str]) -> set[str]:
    """The keys among ``keys`` that some charge already has."""
    found: set[str] = set()
    for start in range(0, len(keys), CHARGE_KEYS_PER_QUERY):
        part = keys[start : start + CHARGE_KEYS_PER_QUERY]
        query = select(Charge.charge_key).where(key_in(session, Charge.charge_key, part))
        found.update(session.scalars(query))
    return found


_BILLABLE = [getattr(Charge, name) for name in Billable._fields]


def _stored_billable(
    session: Session, units: Sequence[Unit], as_of: date
) -> dict[int, tuple[Billable, ...]]:
    """The units' stored calculated charges due by ``as_of``, in id order.

    Sorted here rather than by ORDER BY id: on statistics of a table that was empty (the first
    bill day, or charges written earlier in this transaction), the planner walks the whole
    primary key for that order instead of the (bill unit, status, bill on) index.
    """
    rows = session.execute(
        select(*_BILLABLE, Charge.corrects_charge_id).where(
            id_in(session, Charge.bill_unit_id, [u.id for u in units]),
            Charge.status == ChargeStatus.CALCULATED,
            Charge.bill_on <= as_of,
        )
    ).all()
    corrected = _corrected_bills(session, [r.corrects_charge_id for r in rows])
    found: dict[int, list[Billable]] = defaultdict(list)
    for *charge, corrects in sorted(rows, key=lambda row: row.id):
        billable = Billable(*charge)
        if corrects in corrected:  # a correction's line names the bill it corrects
            text = line_description(billable.description, corrected[corrects])
            billable = billable._replace(description=text)
        found[billable.bill_unit_id].append(billable)
    return {unit_id: tuple(charges) for unit_id, charges in found.items()}


def _corrected_bills(
    session: Session, charge_ids: Sequence[int | None]
) -> dict[int, CorrectedBill]:
    """The bills of the charges that corrections correct, by corrected charge id (a charge not
    on a bill yet is billed with its correction, which then names nothing)."""
    ids = sorted({i for i in charge_ids if i is not None})
    if not ids:
        return {}
    rows = session.execute(
        select(Charge.id, Bill.bill_no, Bill.bill_date)
        .join(Bill, Bill.id == Charge.bill_id)
        .where(id_in(session, Charge.id, ids))
    )
    return {r.id: CorrectedBill(r.bill_no, r.bill_date) for r in rows}


# -- write: the plan in the batch's transaction, a poisoned unit isolated by bisection ------


def write_plan(
    session: Session, plan: Plan, run_id: str, rated: Rated | None = None
) -> BatchResult:
    """Write a pass's plan; when the write fails, find the unit(s) that break it by bisection.

    The whole plan is written in one savepoint. If the database refuses it (a constraint, a
    charge someone else inserted), it is split in halves, each written in its own savepoint,
    and the failing half is split again, down to the units that fail alone: 1 bad unit among
    n costs about 2 log2(n) writes, not n. The healthy units are billed; the bad ones, like the
    units the plan could not compute, are marked failed with a billing issue.
    """
    as_of = plan.as_of
    rated = rated or Rated()
    provisional = plan.provisional_ids
    ids = dict(zip(provisional, take_ids(session, Charge.__table__, len(provisional)), strict=True))
    result, poisoned = _write_bisecting(
        session, [p for p in plan.units if p.writes()], ids, run_id, as_of, rated.through
    )
    failed = {**plan.failures, **poisoned}
    units = [p.unit for p in plan.units]
    record_failures(session, units, failed, run_id, as_of, STEP)
    billed = [u for u in units if u.id not in failed]
    with_bill = {p.unit.id for p in plan.units if p.bill is not None}
    result.units = len(units)
    written = [u for u in units if u.id not in poisoned]  # a failed plan still writes charges
    result.usage_collected = sum(rated.records.get(u.account_id, 0) for u in written)
    result.billed = len(billed)
    result.empty_cycles = sum(1 for u in billed if u.cycle_due(as_of) and u.id not in with_bill)
    result.failed = {u.account_ref: failed[u.id] for u in units if u.id in failed}
    result.failed_units = set(failed)
    _count_late_usage(result, plan, failed)
    return result


def _count_late_usage(result: BatchResult, plan: Plan, failed: dict[int, str]) -> None:
    """The late usage the pass billed (its delta charges on units that did not fail: their
    records and amounts) and held."""
    result.late_usage_held = plan.late_held
    for part in plan.units:
        if part.unit.id in failed:
            continue
        for row in (*part.new_charges, *part.repriced):
            records = plan.late_records.get(row["charge_key"])
            if records:
                result.late_usage_billed += records
                add_to_total(result.late_usage_amounts, row["currency"], row["amount"])


def _write_bisecting(
    session: Session,
    parts: Sequence[UnitPlan],
    ids: dict[int, int],
    run_id: str,
    as_of: date,
    through: int = 0,
) -> tuple[BatchResult, dict[int, str]]:
    """Write ``parts`` in a savepoint; if that fails, each half in its own, recursively.

    Returns what was written and the units that failed alone, with the reason.
    """
    if not parts:
        return BatchResult(), {}
    try:
        with session.begin_nested():
            failpoint("billrun.write")
            return _write_units(session, parts, ids, run_id, as_of, through), {}
    except OperationalError:
        raise  # transient (lost connection, serialization, busy): the caller retries the batch
    except (DBAPIError, BillingError) as error:
        if len(parts) == 1:
            return BatchResult(), {parts[0].unit.id: error_reason(error)}
    half = len(parts) // 2
    first, first_failed = _write_bisecting(session, parts[:half], ids, run_id, as_of, through)
    second, second_failed = _write_bisecting(session, parts[half:], ids, run_id, as_of, through)
    return first.merge(second), {**first_failed, **second_failed}


def error_reason(error: Exception) -> str:
    """A unit's failure reason for a database or billing error that broke its write."""
    return f"{type(error).__name__}: {str(error).splitlines()[0][:500]}"


def _bill_key(unit: Unit, draft: DraftBill, ids: dict[int, int], as_of: date) -> str:
    """The bill's key; an immediate bill's names its first charge, by the id taken for it."""
    return bill_key(unit, draft if unit.cycle_due(as_of) else _with_ids(draft, ids), as_of)


def _with_ids(draft: DraftBill, ids: dict[int, int]) -> DraftBill:
    """The draft with its new charges' provisional ids replaced by the ids taken for them."""
    lines = tuple(
        replace(line, charge_id=ids.get(line.charge_id, line.charge_id)) for line in draft.lines
    )
    return replace(draft, lines=lines)


def _write_units(
    session: Session,
    parts: Sequence[UnitPlan],
    ids: dict[int, int],
    run_id: str,
    as_of: date,
    through: int = 0,
) -> BatchResult:
    """Write the units' part of the plan: re-price stored usage charges, insert the bills and
    the new charges (open on their bill as its lines, or calculated), make the stored charges
    the bills take lines of them (calculated to open), add to balances and close the billed
    cycles. A line is its charge: no row is written twice."""
    result = BatchResult()
    upsert_usage_charges(session, [dict(row) for p in parts for row in p.repriced])
    fresh = [{**row, "id": ids[row["id"]]} for p in parts for row in p.new_charges]
    bills = [(p.unit, p.bill.draft, p.bill) for p in parts if p.bill is not None]
    if bills:
        rows = []
        for unit, draft, planned in bills:
            # A negative total is a credit note (its own series, type 381), never a negative
            # invoice; a bill mixing fees and corrections stays an invoice with negative lines.
            series_code, type_code = document_for(unit.series_code, draft.gross)
            rows.append(
                {
                    "bill_key": _bill_key(unit, draft, ids, as_of),
                    "account_id": unit.account_id,
                    "bill_unit_id": unit.id,
                    "series_code": series_code,
                    "type_code": type_code,
                    "status": BillStatus.BILLED,
                    "bill_date": draft.bill_date,
                    "due_date": draft.due_date,
                    "period_start": planned.period_start,
                    "period_end": planned.period_end,
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
        # Each line is its charge: the columns the line adds to it, by charge id.
        lines = {
            ids.get(line.charge_id, line.charge_id): {
                "bill_id": bill_of_unit[unit.id],
                "line_no": position,
                "tax_rate": line.tax_rate,
                "tax": line.tax,
                "vat_category": line.vat_category,
                "description": line.description,
            }
            for unit, draft, _ in bills
            for position, line in enumerate(draft.lines, start=1)
        }
        _insert_new_charges(session, fresh, lines)
        for row in fresh:
            lines.pop(row["id"], None)
        _open_charges(session, lines)
        new_gross: dict[int, Decimal] = defaultdict(Decimal)
        for unit, draft, _ in bills:
            new_gross[unit.account_id] += draft.gross
        _add_to_balances(session, new_gross)
        result.bills = len(inserted)
    else:
        _insert_new_charges(session, fresh, {})
    billed = [p.unit for p in parts if p.failure is None]
    _close_cycles(session, [u for u in billed if u.cycle_due(as_of)], through)
    _set_state(session, [u.id for u in billed if not u.cycle_due(as_of)], BillingState.BILLED)
    return result


class ConcurrentBillingError(BillingError):
    """A charge was billed by someone else between reading and writing it."""


LINE_OF_CHARGE = ("bill_id", "line_no", "tax_rate", "tax", "vat_category")
"""What a bill sets on a charge it takes, besides its status and its line's description."""


def _insert_new_charges(
    session: Session, fresh: list[dict[str, Any]], lines: dict[int, dict[str, Any]]
) -> None:
    """Insert the pass's new charges once: open on their bill, as its lines, when a bill took
    them (``lines``: by charge id), else calculated."""
    for row in fresh:
        line = lines.get(row["id"])
        if line is None:
            row.update(dict.fromkeys(LINE_OF_CHARGE))
            row["status"] = ChargeStatus.CALCULATED
        else:
            row.update({name: line[name] for name in LINE_OF_CHARGE})
            row["description"] = line["description"]
            row["status"] = ChargeStatus.OPEN
    inserted = bulk_insert(
        session, Charge.__table__, fresh, on_conflict="nothing", returning=("id",)
    )
    if len(inserted) != len(fresh):
        raise ConcurrentBillingError(
            f"expected to insert {len(fresh)} charges, inserted {len(inserted)}"
        )


def _open_charges(session: Session, lines: dict[int, dict[str, Any]]) -> None:
    """Move the stored charges the bills take from calculated to open, each made a line of its
    bill in the same statement: position, VAT and the line's description (the charge's own,
    except a correction's, which names the bill it corrects: ``line_description``)."""
    rows = [
        {"id": charge_id, **{name: line[name] for name in (*LINE_OF_CHARGE, "description")}}
        for charge_id, line in lines.items()
    ]
    charges = Charge.__table__
    opened = bulk_update(
        session,
        charges,
        rows,
        values=lambda src: {
            "status": ChargeStatus.OPEN,
            **{name: src.c[name] for name in LINE_OF_CHARGE},
            "description": src.c.description,
        },
        where=charges.c.status == ChargeStatus.CALCULATED,
        returning=("id",),
    )
    if len(opened) != len(lines):
        raise ConcurrentBillingError(f"expected to open {len(lines)} charges, opened {len(opened)}")


def _add_to_balances(session: Session, gross_by_account: dict[int, Decimal]) -> None:
    """The account balance grows by the gross of each new bill."""
    bulk_update(
        session,
        Account.__table__,
        [{"id": account_id, "balance": gross} for account_id, gross in gross_by_account.items()],
        values=lambda src: {"balance": Account.__table__.c.balance + src.c.balance},
    )


def _close_cycles(session: Session, units: Sequence[Unit], through: int) -> None:
    """Advance each billed unit by one cycle, in one statement, keeping the usage watermark
    its cycle was rated up to (late usage is looked for above it)."""
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
            "usage_through_id": through,
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
    seller_country: str | None = None,
) -> BatchResult:
    """Bill a batch ``slice_units`` units at a time, in the session's transaction, under the
    VAT rules of a seller in ``seller_country`` (by default the demo seller's).

    The slices follow the units' next bill dates: rating runs its statements once per bill
    date of a slice, so a slice of units that share a date needs one round of them, where
    slices in id order would each need one per day of the month.
    """
    if slice_units < 1:
        raise ValueError(f"slice_units must be 1 or more, got {slice_units}")
    ordered = _in_bill_date_order(session, unit_ids)
    catalog = Catalog(seller_country)
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
    seller_country: str | None = None,
    read_back: Callable[[Session], None] | None = None,
) -> BatchResult:
    """Bill a batch in one transaction, in slices (VAT: ``bill_slices``).

    A unit whose plan cannot be computed, or whose write the database refuses, fails alone
    inside the transaction (``write_plan``). Transient database errors (``OperationalError``:
    lost connection, serialization failure, busy SQLite) propagate so the caller can retry.
    Any other error that breaks the batch outside a write (at commit, say) is isolated by
    bisection too: each half is billed in its own transaction, down to the unit that fails
    alone. ``dry_run`` computes and rolls back; ``read_back`` (dry run only) is given the
    session just before the rollback, to read what the batch would have written (the shadow
    bill run reads its bills: ``billing.ops.shadow``).
    """
    try:
        with unit_of_work(engine, isolation="REPEATABLE READ") as session:
            result = bill_slices(
                session,
                unit_ids,
                as_of,
                run_id,
                slice_units=slice_units,
                seller_country=seller_country,
            )
            failpoint("billrun.before_commit")
            if dry_run:
                if read_back is not None:
                    read_back(session)
                raise _DryRun(result)
        return result
    except _DryRun as done:
        return done.result
    except OperationalError:
        raise
    except (DBAPIError, BillingError) as error:
        if len(unit_ids) == 1:
            return _record_unit_failure(engine, unit_ids[0], as_of, run_id, error, dry_run)
        half = len(unit_ids) // 2
        result = BatchResult()
        for part in (unit_ids[:half], unit_ids[half:]):
            result = result.merge(
                bill_batch(
                    engine,
                    part,
                    as_of,
                    run_id,
                    dry_run=dry_run,
                    slice_units=slice_units,
                    seller_country=seller_country,
                    read_back=read_back,
                )
            )
        return result


def _record_unit_failure(
    engine: Engine, unit_id: int, as_of: date, run_id: str, error: Exception, dry_run: bool
) -> BatchResult:
    reason = error_reason(error)
    if dry_run:
        return BatchResult(units=1, failed={f"bill unit {unit_id}": reason}, failed_units={unit_id})
    with unit_of_work(engine) as session:
        units = _claim(session, [unit_id], as_of)
        record_failures(session, units, {unit_id: reason}, run_id, as_of, STEP)
        ref = units[0].account_ref if units else f"bill unit {unit_id}"
    return BatchResult(units=1, failed={ref: reason}, failed_units={unit_id})
