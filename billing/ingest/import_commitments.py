"""Minimum commitments in and out of the JSON import format (issue #21).

``import_commitments`` is the ``commitments`` section of ``billing import FILE.json``
(``billing.ingest.importer`` dispatches to it): each record by ``ref``, its account, contract
or item resolved by ref among the file's and the database's records, the file refused at the
first bad field, naming the record and the field. A record already stored is counted
``unchanged`` if the fields it gives are the stored ones, and refused otherwise (the importer
never overwrites). ``export_commitments`` writes the stored commitments in the same format:
exporting and importing them again changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, selectinload

from billing.store.models import Account, Contract, ContractItem, TaxCategory
from billing.store.models_terms import Commitment

if TYPE_CHECKING:
    from billing.ingest.importer import _Import, _Record

SECTION = "commitments"


def import_commitments(job: _Import, items: Sequence[Mapping[str, Any]]) -> None:
    """The ``commitments`` section: minimum commitments by ref, on a contract or an item of
    their account, each with a tax category that exists."""
    from billing.ingest.importer import _no_duplicates, _records, _stored

    session = job.session
    records = _records(SECTION, items)
    _no_duplicates(records, lambda r: r.data["ref"], "ref")
    accounts = _stored(session, Account, Account.ref, [r.data["account"] for r in records])
    contracts = _stored(
        session,
        Contract,
        Contract.ref,
        [r.data["contract"] for r in records if "contract" in r.data],
    )
    targets = [r.data["item"] for r in records if "item" in r.data]
    item_rows = _stored(
        session, ContractItem, ContractItem.ref, targets, selectinload(ContractItem.contract)
    )
    categories = set(
        _stored(session, TaxCategory, TaxCategory.code, [r.data["tax_category"] for r in records])
    )
    stored = _stored(session, Commitment, Commitment.ref, [r.data["ref"] for r in records])
    for record in records:
        values = _values(record, accounts, contracts, item_rows, categories)
        if job.keep(SECTION, record, stored.get(values["ref"]), values):
            session.add(Commitment(**values))
    session.flush()


def _values(
    record: _Record,
    accounts: Mapping[str, Account],
    contracts: Mapping[str, Contract],
    items: Mapping[str, ContractItem],
    categories: set[str],
) -> dict[str, Any]:
    """Column values of a commitment; its target must be one contract or one item of its
    account, its tax category must exist, its end must come after its start."""
    from billing.ingest.importer import _check_order, _resolve

    data = record.data
    account = _resolve(record, "account", accounts, "account")
    if ("contract" in data) == ("item" in data):
        raise record.fail("give exactly one target: a contract or an item", "contract")
    contract_id = item_id = None
    if "contract" in data:
        contract = _resolve(record, "contract", contracts, "contract")
        if contract.account_id != account.id:
            raise record.fail(
                f"contract {contract.ref!r} is not a contract of account {account.ref!r}",
                "contract",
            )
        contract_id = contract.id
    else:
        item = _resolve(record, "item", items, "contract item")
        if item.contract.account_id != account.id:
            raise record.fail(
                f"contract item {item.ref!r} is not an item of account {account.ref!r}", "item"
            )
        item_id = item.id
    if data["tax_category"] not in categories:
        raise record.fail(f"unknown tax category {data['tax_category']!r}", "tax_category")
    amount = record.amount("amount")
    values = {
        "ref": data["ref"],
        "account_id": account.id,
        "contract_id": contract_id,
        "contract_item_id": item_id,
        "amount": amount,
        "tax_category": data["tax_category"],
        "description": data.get("description", f"Minimum commitment {data['ref']}"),
        "start_date": record.day("start_date"),
        "end_date": record.day("end_date"),
    }
    _check_order(record, values["start_date"], values["end_date"])
    if values["end_date"] is not None and values["end_date"] == values["start_date"]:
        raise record.fail(f"end_date {values['end_date']} is not after start_date", "end_date")
    return values


def trial_end_problem(data: Mapping[str, Any], start: date | None, end: date | None) -> str | None:
    """Why an item's ``trial_end_date`` cannot be (None: it can): only a recurring item's fee
    has a trial, and the trial ends after the item starts and no later than it ends."""
    trial_end = data.get("trial_end_date")
    if trial_end is None:
        return None
    if data["item_type"] != "recurring":
        return f"only a recurring item's fee has a trial, this item is {data['item_type']}"
    day = date.fromisoformat(trial_end)
    if start is not None and day <= start:
        return f"trial_end_date {day} is not after start_date {start}"
    if end is not None and day > end:
        return f"trial_end_date {day} is after end_date {end}"
    return None


def export_commitments(session: Session) -> list[dict[str, Any]]:
    """Every stored commitment as an import record (by ref, in ref order)."""
    item_of = aliased(ContractItem)
    rows = session.execute(
        select(Commitment, Account.ref, Contract.ref, item_of.ref)
        .join(Account, Account.id == Commitment.account_id)
        .outerjoin(Contract, Contract.id == Commitment.contract_id)
        .outerjoin(item_of, item_of.id == Commitment.contract_item_id)
        .order_by(Commitment.ref)
    ).all()
    records = []
    for commitment, account_ref, contract_ref, item_ref in rows:
        record: dict[str, Any] = {"ref": commitment.ref, "account": account_ref}
        if contract_ref is not None:
            record["contract"] = contract_ref
        else:
            record["item"] = item_ref
        record |= {
            "amount": _text(commitment.amount),
            "tax_category": commitment.tax_category,
            "description": commitment.description,
            "start_date": commitment.start_date.isoformat(),
            "end_date": commitment.end_date.isoformat() if commitment.end_date else None,
        }
        records.append(record)
    return records


def _text(amount: Decimal) -> str:
    """An amount as the import reads it: a decimal string without trailing zeros."""
    return format(amount.normalize(), "f")
