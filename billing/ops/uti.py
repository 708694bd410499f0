"""Cn285 *Usage Triggered Invoicing (UTI) Schedule Generator*: collect UTI usage into charges.

A thin use of ``billing.ops.rating``: pending usage on ``uti`` items stamped before *Process Now*
goes Pending -> Collected into one ``calculated`` Invoicing Schedule line per item, marked
``immediate`` so the next Billing daemon (or bill day) run invoices it without waiting for
the cycle. The charge key is ``uti:{item id}:{process now}``; a rerun with the same Process
Now finds nothing pending before it, so it adds nothing. Later usage waits for a later run.
A record older than its plan's late usage window (``late_usage_days`` before Process Now's
date) is held with its reason instead (``billing.domain.late_usage``), and counted.

Usage thresholds (progressive billing, ``billing.ops.thresholds``): the same run, for each
account of the batch with a ``usage_threshold``, bills its usage items' usage of the open cycle
early once its unbilled amount reaches the threshold, as immediate ``thr:`` charges.

An account whose usage cannot be rated (a plan that does not price) is left pending, recorded
as a billing issue with its reason, and the other accounts go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from billing.domain.charge_keys import KeyKind
from billing.domain.results import Mergeable
from billing.domain.usage import uti_scope
from billing.ops.catalog import load_plans
from billing.ops.rating import RatingScope, hold_stale_usage, rate_usage_for, uncovered
from billing.ops.thresholds import bill_thresholds, threshold_accounts
from billing.store.db import unit_of_work
from billing.store.models import (
    BillingIssue,
    Charge,
    Contract,
    ContractItem,
    ItemType,
    UsageRecord,
    UsageStatus,
)
from billing.store.sqlkit import id_in

STEP = "uti_schedule_generator"
KEY_PREFIX = KeyKind.UTI  # the kind of its charge keys (billing.domain.charge_keys)


@dataclass
class UtiResult(Mergeable):
    """What a run (or a batch) collected; results merge."""

    accounts: int = 0
    collected: int = 0
    charges: int = 0
    held: int = 0
    """Records held: older than their plan's late usage window (``billing.domain.late_usage``)."""
    failed: dict[int, str] = field(default_factory=dict)
    threshold_accounts: int = 0
    """Accounts whose unbilled usage reached their threshold, billed early
    (``billing.ops.thresholds``)."""
    threshold_charges: int = 0
    threshold_records: int = 0
    threshold_amounts: dict[str, Decimal] = field(default_factory=dict)
    """The threshold charges' amounts (net) per currency."""


def pending_uti_accounts(session: Session, process_now: datetime) -> list[int]:
    """Accounts with pending usage on a UTI item stamped before ``process_now``, in id order."""
    return list(
        session.scalars(
            select(Contract.account_id)
            .distinct()
            .join(ContractItem, ContractItem.contract_id == Contract.id)
            .join(UsageRecord, UsageRecord.contract_item_id == ContractItem.id)
            .where(
                ContractItem.item_type == ItemType.UTI,
                UsageRecord.status == UsageStatus.PENDING,
                UsageRecord.occurred_at < process_now,
                uncovered(),
            )
            .order_by(Contract.account_id)
        )
    )


def accounts_to_process(session: Session, process_now: datetime) -> list[int]:
    """The run's accounts, in id order: those with pending UTI usage stamped before
    ``process_now``, and those with a usage threshold and usage not priced yet."""
    uti = pending_uti_accounts(session, process_now)
    return sorted(set(uti).union(threshold_accounts(session, process_now)))


def collect_uti_usage(
    session: Session, account_ids: Sequence[int], process_now: datetime
) -> UtiResult:
    """Collect the accounts' UTI usage into immediate calculated charges, then bill early the
    usage of those past their threshold (never commits)."""
    scope = uti_scope(account_ids, process_now)
    plans = load_plans(session)
    held = hold_stale_usage(session, scope, plans, process_now.date())
    collected, failed = rate_usage_for(session, scope, plans, process_now.date())
    charges = _charges_of_run(session, account_ids, scope) if collected else 0
    early = bill_thresholds(
        session, [a for a in account_ids if a not in failed], process_now, plans
    )
    return UtiResult(
        len(account_ids),
        collected,
        charges,
        held,
        {**failed, **early.failed},
        threshold_accounts=early.accounts,
        threshold_charges=early.charges,
        threshold_records=early.records,
        threshold_amounts=early.amounts,
    )


def _charges_of_run(session: Session, account_ids: Sequence[int], scope: RatingScope) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Charge)
            .where(
                id_in(session, Charge.account_id, account_ids),
                Charge.charge_key.like(scope.key_pattern),
            )
        )
        or 0
    )


class _Failed(Exception):
    def __init__(self, failed: dict[int, str]):
        self.failed = failed


def uti_batch(
    engine: Engine, account_ids: Sequence[int], process_now: datetime, run_id: str
) -> UtiResult:
    """One batch in one transaction; accounts that cannot be rated are recorded and skipped."""
    if not account_ids:
        return UtiResult()
    try:
        with unit_of_work(engine) as session:
            result = collect_uti_usage(session, account_ids, process_now)
            if result.failed:
                raise _Failed(result.failed)
            return result
    except _Failed as error:
        rest = [a for a in account_ids if a not in error.failed]
        result = uti_batch(engine, rest, process_now, run_id)
        _record_issues(engine, error.failed, process_now.date(), run_id)
        return result.merge(UtiResult(accounts=len(error.failed), failed=error.failed))


def _record_issues(engine: Engine, failed: dict[int, str], as_of: date, run_id: str) -> None:
    with unit_of_work(engine) as session:
        session.add_all(
            BillingIssue(run_id=run_id, step=STEP, account_id=a, as_of=as_of, reason=reason)
            for a, reason in sorted(failed.items())
        )
