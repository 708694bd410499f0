"""Commercial terms as JSON, in the import file's format (``billing export terms``).

``terms_document(session)`` is a document ``billing import`` reads back: one top-level section
per kind of term, each a list of records keyed by ``ref`` with their references by ref or code
(``account``, ``item``, ``price_plan``). Imported into a database holding the same accounts,
items and plans, it gives the same rows; imported into the database it came from, every record
is ``unchanged``. ``SECTIONS`` maps each section's name to the function that exports it: a new
kind of term adds one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from billing.domain.enums import DiscountScope
from billing.ingest.import_commitments import export_commitments
from billing.ingest.import_term_fields import export_trials
from billing.ingest.import_wallets import export_wallets
from billing.ingest.thresholds import export_thresholds
from billing.store.models import Account, ContractItem, PricePlan
from billing.store.models_terms import Discount

Record = dict[str, Any]


def decimal_text(value: Decimal) -> str:
    """A stored decimal as the import file writes it: ``"10"``, ``"12.5"``, ``"4.99"``."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def export_discounts(session: Session) -> list[Record]:
    """Every discount, in id order, as a ``discounts`` record of the import file."""
    item, plan = aliased(ContractItem), aliased(PricePlan)
    rows = session.execute(
        select(Discount, Account.ref, item.ref, plan.code)
        .join(Account, Account.id == Discount.account_id)
        .outerjoin(item, item.id == Discount.contract_item_id)
        .outerjoin(plan, plan.id == Discount.price_plan_id)
        .order_by(Discount.id)
    )
    records = []
    for discount, account, item_ref, plan_code in rows:
        record: Record = {
            "ref": discount.ref,
            "account": account,
            "scope": str(discount.scope),
        }
        if discount.scope == DiscountScope.ITEM:
            record["item"] = item_ref
        elif discount.scope == DiscountScope.PLAN:
            record["price_plan"] = plan_code
        record |= {
            "kind": str(discount.kind),
            "value": decimal_text(discount.value),
            "description": discount.description,
            "reason_code": discount.reason_code,
            "start_date": discount.start_date.isoformat(),
            "priority": discount.priority,
            "stackable": discount.stackable,
        }
        if discount.coupon_code is not None:
            record["coupon_code"] = discount.coupon_code
        if discount.cycles is not None:
            record["cycles"] = discount.cycles
        if discount.end_date is not None:
            record["end_date"] = discount.end_date.isoformat()
        records.append(record)
    return records


SECTIONS: dict[str, Callable[[Session], list[Record]]] = {
    "discounts": export_discounts,
    "commitments": export_commitments,
    "usage_thresholds": export_thresholds,
    "trials": export_trials,
    "wallets": export_wallets,
}
"""Each section of the terms document and the function that exports it."""


def terms_document(session: Session) -> dict[str, list[Record]]:
    """Every section of ``SECTIONS``, as one import document."""
    return {name: export(session) for name, export in SECTIONS.items()}
