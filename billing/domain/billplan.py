"""The bill run's plan: what one pass over a batch of bill units bills, computed from a snapshot.

Pure: values in (a ``Snapshot`` the bill run read), values out (a ``Plan`` it then writes).
No database, no clock: the same snapshot always gives the same plan. A unit whose computation
raises becomes a failure in the plan (``UnitPlan.failure``), never an exception: the rest of
the batch is billed.

For each unit a cycle pass is due for, the plan schedules the cycle's fees, takes the usage
the bill run rated, decides which of those charges are new (their key is not stored yet) and
which stored usage charges are re-priced in place, then drafts one bill from the unit's stored
``calculated`` charges and its new ones. New charges carry provisional ids, above every stored
id of the snapshot and in insertion order: the writer maps them, in order, onto the ids it
takes, so bill lines keep their (period start, charge id) order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import chain
from typing import Any, NamedTuple

from billing.domain import charge_keys
from billing.domain.commercial import UnitTerms, term_specs
from billing.domain.corrections import CorrectedBill, line_description
from billing.domain.errors import BillingError
from billing.domain.invoice import ChargeIn, DraftBill, generate_invoice
from billing.domain.periods import Period, add_cycles
from billing.domain.schedule import ChargeSpec, CycleGrid, ItemTerms, scheduled_charges
from billing.domain.vat import LineTax


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
    business: bool = False
    """A business buyer (B2B), as imported: where its supplies are taxed depends on it."""
    usage_through_id: int = 0
    """The usage watermark its last closed cycle was rated up to (``billing.store.usage``)."""

    def cycle_due(self, as_of: date) -> bool:
        return self.next_bill_date <= as_of

    def bill_date(self, as_of: date) -> date:
        return self.next_bill_date if self.cycle_due(as_of) else as_of

    @property
    def grid(self) -> CycleGrid:
        return CycleGrid(self.next_bill_date, self.billing_day, self.cycle)


@dataclass(frozen=True)
class Item:
    """A contract item as the schedule reads it, with the reference an error names."""

    ref: str
    terms: ItemTerms


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
    kind: str = "recurring"
    contract_item_id: int | None = None
    """What the commercial terms read: which kind of charge, of which item."""


REPRICED = ("quantity", "unit_price", "amount", "period_end")
"""What re-pricing a stored usage charge that is still calculated changes."""


@dataclass(frozen=True)
class Snapshot:
    """What one pass over a batch reads before it computes anything.

    ``usage`` holds the usage charge rows rating priced (by key; a row's ``bill_unit_id``
    names its unit), ``usage_failures`` the units whose usage could not be priced.
    ``stored`` holds each unit's stored ``calculated`` charges due by ``as_of``, in id order;
    ``existing_keys`` the keys among the pass's candidate charges that are stored already;
    ``taxes`` each unit's VAT by tax category on its bill date (``billing.domain.vat``), or
    why it has none (a unit billing such a category fails, naming it).
    """

    as_of: date
    units: tuple[Unit, ...]
    items: Mapping[int, tuple[Item, ...]] = field(default_factory=dict)
    usage: tuple[Mapping[str, Any], ...] = ()
    usage_failures: Mapping[int, str] = field(default_factory=dict)
    stored: Mapping[int, tuple[Billable, ...]] = field(default_factory=dict)
    existing_keys: frozenset[str] = frozenset()
    taxes: Mapping[int, Mapping[str, LineTax | str]] = field(default_factory=dict)
    corrected: Mapping[int, CorrectedBill] = field(default_factory=dict)
    """The bills of the charges that new rows correct (a late usage delta names the usage
    charge of its cycle), by corrected charge id: the line names that bill."""
    late_records: Mapping[str, int] = field(default_factory=dict)
    """Late usage records rating attached in this pass, per delta key
    (``billing.domain.late_usage``)."""
    late_held: int = 0
    """Late usage records rating held in this pass (beyond their plan's window)."""
    fees: tuple[Mapping[int, Sequence[Mapping[str, Any]]], Mapping[int, str]] | None = None
    """The cycle units' fee rows and fee failures as ``scheduled_fees`` computes them from
    ``items``, when the reader computed them already (it needs their keys); None: the plan
    computes them."""
    terms: Mapping[int, UnitTerms] = field(default_factory=dict)
    """The commercial terms of the units that have any, by unit id
    (``billing.domain.commercial``): their cycle bills get discount and shortfall lines."""


@dataclass(frozen=True)
class PlannedBill:
    """A bill to insert: its draft (lines on provisional or stored charge ids) and period."""

    draft: DraftBill
    period_start: date
    period_end: date


@dataclass(frozen=True)
class UnitPlan:
    """Everything one pass writes for one unit.

    ``new_charges`` are charge rows to insert (with a provisional ``id``; the bill's lines name
    those ids), ``repriced`` stored usage charges to re-price in place. A failed unit keeps its
    new charges (they are inserted ``calculated``) but gets no bill and its cycle does not
    advance; ``failure`` is the reason its billing issue records.
    """

    unit: Unit
    new_charges: tuple[Mapping[str, Any], ...] = ()
    repriced: tuple[Mapping[str, Any], ...] = ()
    bill: PlannedBill | None = None
    failure: str | None = None

    def writes(self) -> bool:
        return self.failure is None or bool(self.new_charges or self.repriced)


@dataclass(frozen=True)
class Plan:
    """A pass's plan, unit by unit in the snapshot's order."""

    as_of: date
    units: tuple[UnitPlan, ...]
    late_records: Mapping[str, int] = field(default_factory=dict)
    """The snapshot's late usage records per delta key (what the pass bills late)."""
    late_held: int = 0

    @property
    def failures(self) -> dict[int, str]:
        return {p.unit.id: p.failure for p in self.units if p.failure is not None}

    @property
    def provisional_ids(self) -> list[int]:
        """The new charges' provisional ids, ascending (the order their ids are taken in)."""
        return sorted(row["id"] for p in self.units for row in p.new_charges)


def fee_specs(
    unit: Unit, items: Sequence[Item], through: date, timing: str | None = None
) -> list[ChargeSpec]:
    """The scheduled fees of ``unit``'s items billable by ``through`` (``timing``: only the
    plans with that timing). Raises ``BillingError`` when an item cannot be charged."""
    specs: list[ChargeSpec] = []
    for item in items:
        plan = item.terms.plan
        if timing is not None and plan.timing != timing:
            continue
        if plan.currency != unit.currency:
            raise BillingError(
                f"item {item.ref}: price plan {plan.code} is in "
                f"{plan.currency}, the account bills in {unit.currency}"
            )
        specs.extend(scheduled_charges(item.terms, unit.grid, through, unit.last_bill_date))
    return specs


def new_charge(spec: ChargeSpec, unit: Unit, as_of: date) -> dict[str, Any]:
    """A scheduled fee as a charge row of ``unit`` (the writer sets its status). A scheduled
    fee corrects nothing (``corrects_charge_id`` None); its row has the columns of the usage
    rows written beside it."""
    row = {
        **spec.__dict__,
        "account_id": unit.account_id,
        "bill_unit_id": unit.id,
        "currency": unit.currency,
        "immediate": False,
        "created_on": as_of,
        "usage_through_id": None,
        "usage_since": None,
        "usage_before": None,
    }
    return row


def reason_of(error: Exception) -> str:
    """A failure's reason: a billing error's message, or any other error with its type."""
    if isinstance(error, BillingError):
        return str(error)
    first_line = (str(error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line[:500]}"


def scheduled_fees(
    snapshot: Snapshot, units: Sequence[Unit]
) -> tuple[dict[int, list[dict[str, Any]]], dict[int, str]]:
    """Each cycle unit's scheduled fee rows for the cycle that closes, and the units whose fees
    cannot be computed (with the reason)."""
    rows: dict[int, list[dict[str, Any]]] = {}
    failed: dict[int, str] = {}
    for unit in units:
        found: list[dict[str, Any]] = []
        rows[unit.id] = found
        try:  # item by item: the fees of the items before a bad one are still written
            for item in snapshot.items.get(unit.id, ()):
                specs = fee_specs(unit, [item], unit.next_bill_date)
                found.extend(new_charge(s, unit, snapshot.as_of) for s in specs)
        except Exception as error:  # a unit's failure is data: the batch goes on
            failed[unit.id] = reason_of(error)
    return rows, failed


def plan_bills(snapshot: Snapshot) -> Plan:
    """The plan of one pass: new charges, re-priced ones, bills and failures, unit by unit."""
    as_of = snapshot.as_of
    cycle_units = [u for u in snapshot.units if u.cycle_due(as_of)]
    if snapshot.fees is None:
        scheduled, failed = scheduled_fees(snapshot, cycle_units)
    else:  # the rows are the snapshot's: the plan sets ids on copies
        scheduled = {unit: [dict(r) for r in rows] for unit, rows in snapshot.fees[0].items()}
        failed = dict(snapshot.fees[1])
    for unit in cycle_units:
        if unit.id not in failed and unit.id in snapshot.usage_failures:
            failed[unit.id] = snapshot.usage_failures[unit.id]
    usage = [dict(row) for row in snapshot.usage]
    repriced = {
        row["charge_key"]: row for row in usage if row["charge_key"] in snapshot.existing_keys
    }

    # New charges, in the order an insert would have taken them: scheduled fees, then usage.
    first_id = 1 + max((c.id for cs in snapshot.stored.values() for c in cs), default=0)
    seen = set(snapshot.existing_keys)
    fresh: dict[int, list[dict[str, Any]]] = defaultdict(list)
    in_order = chain.from_iterable(scheduled.get(u.id, ()) for u in cycle_units)
    for row in chain(in_order, usage):
        if row["charge_key"] not in seen:
            seen.add(row["charge_key"])
            row["id"] = first_id
            first_id += 1
            fresh[row["bill_unit_id"]].append(row)

    by_unit: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for row in repriced.values():
        by_unit[row["bill_unit_id"]].append(row)
    plans = []
    for unit in snapshot.units:
        bill = None
        if unit.id not in failed:
            try:
                due = _due(snapshot, unit, fresh.get(unit.id, ()), repriced)
                terms = _term_rows(snapshot, unit, due, first_id)
                first_id += len(terms)
                due.extend(_billable(snapshot, row) for row in terms)
                bill = _bill(snapshot, unit, due)
                fresh[unit.id].extend(terms)
            except Exception as error:  # a unit's failure is data: the batch goes on
                failed[unit.id] = reason_of(error)
        plans.append(
            UnitPlan(
                unit=unit,
                new_charges=tuple(fresh.pop(unit.id, ())),
                repriced=tuple(by_unit.pop(unit.id, ())),
                bill=bill,
                failure=failed.get(unit.id),
            )
        )
    # Usage of an account's other bill unit (not in this pass): written, not billed here.
    if fresh or by_unit:
        first = plans[0]
        plans[0] = UnitPlan(
            unit=first.unit,
            new_charges=first.new_charges + tuple(chain.from_iterable(fresh.values())),
            repriced=first.repriced + tuple(chain.from_iterable(by_unit.values())),
            bill=first.bill,
            failure=first.failure,
        )
    return Plan(as_of, tuple(plans), snapshot.late_records, snapshot.late_held)


def _due(
    snapshot: Snapshot,
    unit: Unit,
    fresh: Sequence[Mapping[str, Any]],
    repriced: Mapping[str, Mapping[str, Any]],
) -> list[Billable]:
    """The unit's charges this pass bills: stored (re-priced where rating re-priced them) and
    new, in id order (new ids come after every stored one)."""
    as_of = snapshot.as_of
    bill_date = unit.bill_date(as_of)
    charges = []
    for charge in snapshot.stored.get(unit.id, ()):
        new = repriced.get(charge.charge_key)
        charges.append(charge._replace(**{k: new[k] for k in REPRICED}) if new else charge)
    charges.extend(_billable(snapshot, row) for row in fresh if row["bill_on"] <= as_of)
    return [c for c in charges if c.bill_on <= bill_date and (unit.cycle_due(as_of) or c.immediate)]


def _term_rows(
    snapshot: Snapshot, unit: Unit, due: Sequence[Billable], first_id: int
) -> list[dict[str, Any]]:
    """The discount and shortfall charges of a unit's cycle bill, as new charge rows with
    provisional ids from ``first_id`` (``billing.domain.commercial``)."""
    terms = snapshot.terms.get(unit.id)
    if not terms or not unit.cycle_due(snapshot.as_of):
        return []
    start = add_cycles(unit.next_bill_date, -1, unit.billing_day, unit.cycle)
    specs = term_specs(terms, unit.grid, Period(start, unit.next_bill_date), due, unit.currency)
    rows = [new_charge(spec, unit, snapshot.as_of) for spec in specs]
    for offset, row in enumerate(rows):
        row["id"] = first_id + offset
    return rows


def _billable(snapshot: Snapshot, row: Mapping[str, Any]) -> Billable:
    """A new charge row as billing reads it; a correction's line names the bill it corrects."""
    charge = Billable(*(row[name] for name in Billable._fields))
    corrected = snapshot.corrected.get(row.get("corrects_charge_id") or 0)
    if corrected is None:
        return charge
    return charge._replace(description=line_description(charge.description, corrected))


def _bill(snapshot: Snapshot, unit: Unit, charges: Sequence[Billable]) -> PlannedBill | None:
    if not charges:
        return None
    bill_date = unit.bill_date(snapshot.as_of)
    for charge in charges:
        if charge.currency != unit.currency:
            raise BillingError(
                f"charge {charge.charge_key} is in {charge.currency}, "
                f"the account bills in {unit.currency}"
            )
    draft = generate_invoice(
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
        taxes=dict(snapshot.taxes.get(unit.id, {})),
        bill_date=bill_date,
        payment_terms_days=unit.terms,
    )
    if unit.cycle_due(snapshot.as_of):
        start = add_cycles(unit.next_bill_date, -1, unit.billing_day, unit.cycle)
        return PlannedBill(draft, start, unit.next_bill_date)
    return PlannedBill(draft, draft.period_start, draft.period_end)


def bill_key(unit: Unit, draft: DraftBill, as_of: date) -> str:
    """Cycle bills are unique per unit and bill date; immediate ones per run date and content."""
    if unit.cycle_due(as_of):
        return charge_keys.cycle_bill(unit.id, draft.bill_date)
    first_charge = min(line.charge_id for line in draft.lines)
    return charge_keys.immediate_bill(unit.id, draft.bill_date, first_charge)
