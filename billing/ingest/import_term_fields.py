"""Terms that are a field of an account or an item, as sections of their own (issue #21).

``billing export terms`` must give back every term, and an account's ``usage_threshold`` or
an item's ``trial_end_date`` are fields of records the terms document does not carry whole.
Two sections of the import file set them on records already stored:

- ``usage_thresholds``: ``{"account": ref, "usage_threshold": "10.00"}`` (exported by
  ``billing.ingest.thresholds.export_thresholds``);
- ``trials``: ``{"item": ref, "trial_end_date": "2027-02-15"}`` (a recurring item).

Like every section they never overwrite: a field still empty is set (``inserted``), the same
value is ``unchanged``, another value refuses the file naming the record and field (a trial
that moves after the fact is ``billing trial extend``: it corrects what was charged). A trial
is set only while the item has no recurring fee charged yet, for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from billing.domain.enums import ChargeKind, ItemType
from billing.ingest.import_commitments import trial_end_problem
from billing.store.models import Account, Charge, ContractItem

if TYPE_CHECKING:
    from billing.ingest.importer import _Import

THRESHOLDS = "usage_thresholds"
TRIALS = "trials"


def import_usage_thresholds(job: _Import, items: Sequence[Mapping[str, Any]]) -> None:
    """Set the accounts' usage thresholds (positive amounts) where none is set."""
    from billing.ingest.importer import (
        _no_duplicates,
        _records,
        _resolve,
        _stored,
        _usage_threshold,
    )

    records = _records(THRESHOLDS, items)
    _no_duplicates(records, lambda r: r.data["account"], "account")
    accounts = _stored(job.session, Account, Account.ref, [r.data["account"] for r in records])
    for record in records:
        account = _resolve(record, "account", accounts, "account")
        threshold = _usage_threshold(record)
        if account.usage_threshold is None:
            account.usage_threshold = threshold
            job.report.of(THRESHOLDS).inserted += 1
        elif account.usage_threshold == threshold:
            job.report.of(THRESHOLDS).unchanged += 1
        else:
            raise record.fail(
                f"account {account.ref} has usage threshold {account.usage_threshold}, the file "
                f"gives {threshold} (the import never overwrites)",
                "usage_threshold",
            )
    job.session.flush()


def import_trials(job: _Import, items: Sequence[Mapping[str, Any]]) -> None:
    """Set the items' trial ends where none is set and no fee was charged yet."""
    from billing.ingest.importer import _no_duplicates, _records, _resolve, _stored

    session = job.session
    records = _records(TRIALS, items)
    _no_duplicates(records, lambda r: r.data["item"], "item")
    stored = _stored(session, ContractItem, ContractItem.ref, [r.data["item"] for r in records])
    for record in records:
        item = _resolve(record, "item", stored, "contract item")
        day = record.day("trial_end_date")
        if item.trial_end_date == day:
            job.report.of(TRIALS).unchanged += 1
            continue
        if item.trial_end_date is not None:
            raise record.fail(
                f"item {item.ref} has a trial to {item.trial_end_date}, the file gives {day}: "
                "move it with 'billing trial extend', which corrects what was charged",
                "trial_end_date",
            )
        data = {"item_type": item.item_type.value, "trial_end_date": record.data["trial_end_date"]}
        problem = trial_end_problem(data, item.start_date, item.end_date)
        if problem:
            raise record.fail(f"item {item.ref}: {problem}", "trial_end_date")
        if _fee_charged(session, item.id):
            raise record.fail(
                f"item {item.ref} has recurring fees charged already: give it a trial with "
                "'billing trial extend', which corrects them",
                "trial_end_date",
            )
        item.trial_end_date = day
        job.report.of(TRIALS).inserted += 1
    session.flush()


def _fee_charged(session: Session, item_id: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    Charge.contract_item_id == item_id, Charge.kind == ChargeKind.RECURRING
                )
            )
        )
    )


def export_trials(session: Session) -> list[dict[str, Any]]:
    """Every recurring item with a trial, in ref order, as a ``trials`` record."""
    rows = session.execute(
        select(ContractItem.ref, ContractItem.trial_end_date)
        .where(
            ContractItem.trial_end_date.is_not(None),
            ContractItem.item_type == ItemType.RECURRING,
        )
        .order_by(ContractItem.ref)
    )
    return [{"item": ref, "trial_end_date": day.isoformat()} for ref, day in rows]
