"""BRM ``pin_deferred_act``: execute the actions that fall due on or before ``as_of``.

Actions (``deferred_actions.action``, with ``params``):
- ``set_account_status``: ``{"status": "active" | "inactive" | "closed"}``;
- ``cancel_item``: ``{"item_ref": ...}``, sets the item's pending cancel date to the due date
  (``cycle_fees`` then cancels it and credits what was billed in advance);
- ``change_price``: ``{"item_ref": ..., "price": "12.50"}``, the item's price override from then on.

An action that cannot run is marked failed with its reason; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.enums import ActionKind
from billing.domain.errors import BillingError
from billing.store.models import (
    Account,
    AccountStatus,
    ActionStatus,
    ContractItem,
    DeferredAction,
)
from billing.store.types import to_storage


@dataclass(frozen=True)
class StatusChange:
    """An account whose status changed: what the provisioning hook is told."""

    account_ref: str
    old: str
    new: str
    effective: date


@dataclass
class DeferredResult:
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    status_changes: list[StatusChange] = field(default_factory=list)


def _item(session: Session, params: dict[str, Any]) -> ContractItem:
    ref = params.get("item_ref")
    item = session.scalar(select(ContractItem).where(ContractItem.ref == ref)) if ref else None
    if item is None:
        raise BillingError(f"params.item_ref: no contract item {ref!r}")
    return item


def _set_status(session: Session, action: DeferredAction, result: DeferredResult) -> None:
    account = session.get(Account, action.account_id)
    assert account is not None  # foreign key
    try:
        new = AccountStatus(str(action.params.get("status")))
    except ValueError:
        raise BillingError(
            f"params.status: {action.params.get('status')!r} is not a status"
        ) from None
    if account.status != new:
        result.status_changes.append(
            StatusChange(account.ref, account.status.value, new.value, action.due_on)
        )
        account.status = new


def _cancel_item(session: Session, action: DeferredAction, _result: DeferredResult) -> None:
    item = _item(session, action.params)
    if item.pending_cancel_date is None or action.due_on < item.pending_cancel_date:
        item.pending_cancel_date = action.due_on


def _change_price(session: Session, action: DeferredAction, _result: DeferredResult) -> None:
    item = _item(session, action.params)
    raw = action.params.get("price")
    try:
        price = Decimal(str(raw)) if isinstance(raw, str | int) else None
    except InvalidOperation:
        price = None
    if price is None or price < 0:
        raise BillingError(f"params.price: {raw!r} is not a price (a decimal string)")
    to_storage(price, "postgresql")
    item.price_override = price


HANDLERS: dict[str, Callable[[Session, DeferredAction, DeferredResult], None]] = {
    ActionKind.SET_ACCOUNT_STATUS: _set_status,
    ActionKind.CANCEL_ITEM: _cancel_item,
    ActionKind.CHANGE_PRICE: _change_price,
}


def run_deferred_actions(session: Session, as_of: date) -> DeferredResult:
    """Execute pending actions due by ``as_of``, oldest first (never commits)."""
    result = DeferredResult()
    due = session.scalars(
        select(DeferredAction)
        .where(DeferredAction.status == ActionStatus.PENDING, DeferredAction.due_on <= as_of)
        .order_by(DeferredAction.due_on, DeferredAction.id)
    ).all()
    for action in due:
        handler = HANDLERS.get(action.action)
        try:
            if handler is None:
                raise BillingError(f"action: unknown action {action.action!r}")
            with session.begin_nested():
                handler(session, action, result)
        except BillingError as error:
            action.status, action.reason = ActionStatus.FAILED, str(error)
            result.failed[action.ref] = str(error)
        else:
            action.status, action.done_on = ActionStatus.DONE, as_of
            result.done += 1
    session.flush()
    return result
