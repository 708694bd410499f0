"""The ``discounts`` section of an import file (issue #21): discounts and applied coupons.

Each record is a discount of one account (``billing.store.models_terms.Discount``), keyed by
``ref`` like every other record: a re-imported ref with the same values is ``unchanged``, one
with a different value refuses the file, naming the record and the field. References resolve
against the file (imported first) and the database: ``account`` by ref, ``item`` by contract
item ref, ``price_plan`` by plan code.

What is refused, naming the record and the field:

- a scope without its target, or with another scope's (``item`` needs ``item`` and no
  ``price_plan``; ``plan`` needs ``price_plan`` and no ``item``; ``bill`` takes neither);
- an item that is not the account's, a price plan in another currency than the account's
  (its items could never be the account's);
- a percentage that is not above 0 and at most 100; a fixed amount that is not above 0 or not
  in the account's currency's minor units (a fixed amount is in the account's currency);
- a reason code outside EN 16931's list of UNTDID 5189 allowance reasons
  (``billing.domain.discounts.ALLOWANCE_REASONS``);
- an ``end_date`` on or before ``start_date``.

docs/data-formats.md documents the fields; ``billing.ingest.export_terms`` writes the same
format (``billing export terms``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from billing.domain.discounts import ALLOWANCE_REASONS, DEFAULT_REASON_CODE
from billing.domain.enums import DiscountKind, DiscountScope
from billing.domain.money import LINE_ROUNDING, minor_unit, quantize_money
from billing.ingest.importer import _no_duplicates, _Record, _records, _resolve, _stored
from billing.store.models import Account, ContractItem, PricePlan
from billing.store.models_terms import Discount

if TYPE_CHECKING:
    from billing.ingest.importer import _Import

SECTION = "discounts"
TARGETS = {DiscountScope.ITEM: "item", DiscountScope.PLAN: "price_plan"}
"""The field naming each scope's target (a bill discount has none)."""


def import_discounts(job: _Import, items: Sequence[Mapping[str, Any]]) -> None:
    """Discounts by ref, on accounts, items and price plans of the file or the database."""
    session = job.session
    records = _records(SECTION, items)
    _no_duplicates(records, lambda r: r.data["ref"], "ref")
    accounts = job._accounts_by_ref(records)
    known_items = job._items_by_ref(
        r.data["item"] for r in records if isinstance(r.data.get("item"), str)
    )
    plans = _stored(
        session,
        PricePlan,
        PricePlan.code,
        [r.data["price_plan"] for r in records if isinstance(r.data.get("price_plan"), str)],
    )
    stored = _stored(session, Discount, Discount.ref, [r.data["ref"] for r in records])
    for record in records:
        values = discount_values(record, accounts, known_items, plans)
        if job.keep(SECTION, record, stored.get(values["ref"]), values):
            session.add(Discount(**values))
    session.flush()


def discount_values(
    record: _Record,
    accounts: Mapping[str, Account],
    items: Mapping[str, ContractItem],
    plans: Mapping[str, PricePlan],
) -> dict[str, Any]:
    """Column values of a discount, checked (the module's rules)."""
    data = record.data
    account = _resolve(record, "account", accounts, "account")
    scope = DiscountScope(data["scope"])
    for target_scope, name in TARGETS.items():
        given = data.get(name) is not None
        if target_scope == scope and not given:
            raise record.fail(f"a discount of scope {scope.value!r} needs its {name}", name)
        if target_scope != scope and given:
            raise record.fail(f"a discount of scope {scope.value!r} takes no {name}", name)
    item_id = plan_id = None
    if scope == DiscountScope.ITEM:
        item = _resolve(record, "item", items, "contract item")
        if item.contract.account_id != account.id:
            raise record.fail(
                f"contract item {item.ref!r} is not an item of account {account.ref!r}", "item"
            )
        item_id = item.id
    elif scope == DiscountScope.PLAN:
        plan = _resolve(record, "price_plan", plans, "price plan")
        if plan.currency != account.currency:
            raise record.fail(
                f"price plan {plan.code!r} is in {plan.currency}, the account {account.ref!r} "
                f"is billed in {account.currency}",
                "price_plan",
            )
        plan_id = plan.id
    kind = DiscountKind(data["kind"])
    value = record.amount("value")
    if value is None:  # the schema requires it
        raise record.fail("a discount needs a value", "value")
    _check_value(record, kind, value, account.currency)
    reason = data.get("reason_code", DEFAULT_REASON_CODE)
    if reason not in ALLOWANCE_REASONS:
        known = ", ".join(sorted(ALLOWANCE_REASONS, key=int))
        raise record.fail(
            f"reason code {reason!r} is not an EN 16931 allowance reason (UNTDID 5189: {known})",
            "reason_code",
        )
    start, end = record.day("start_date"), record.day("end_date")
    if start is not None and end is not None and end <= start:
        raise record.fail(f"end_date {end} is not after start_date {start}", "end_date")
    return {
        "ref": data["ref"],
        "account_id": account.id,
        "scope": scope,
        "contract_item_id": item_id,
        "price_plan_id": plan_id,
        "kind": kind,
        "value": value,
        "coupon_code": data.get("coupon_code"),
        "description": data["description"],
        "reason_code": reason,
        "start_date": start,
        "cycles": data.get("cycles"),
        "end_date": end,
        "priority": data.get("priority", 0),
        "stackable": data.get("stackable", True),
    }


def _check_value(record: _Record, kind: DiscountKind, value: Any, currency: str) -> None:
    """A percentage in (0, 100]; a fixed amount above 0 in the currency's minor units."""
    if kind == DiscountKind.PERCENT:
        if not 0 < value <= 100:
            raise record.fail(f"a percentage is above 0 and at most 100, not {value}", "value")
        return
    if value <= 0:
        raise record.fail(f"a fixed discount is above 0, not {value}", "value")
    if quantize_money(value, currency, LINE_ROUNDING) != value:
        raise record.fail(
            f"{value} is not an amount in {currency} (the account's currency, in steps of "
            f"{minor_unit(currency)})",
            "value",
        )
