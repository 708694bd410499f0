"""Deferred actions (BRM ``pin_deferred_act``): the names the engine executes and their params.

``billing.ops.deferred`` executes one handler per ``ActionKind``; an action with another name,
or params its handler cannot read, would be marked failed on its due date, long after it was
given. The importer refuses both up front with these rules (pure: no database). Whether an
``item_ref`` names an item of the action's account is checked by the importer, which can see
the items.

| action | params |
| --- | --- |
| ``set_account_status`` | ``status``: ``active``, ``inactive`` or ``closed`` |
| ``cancel_item`` | ``item_ref``: a contract item of the account |
| ``change_price`` | ``item_ref``: a contract item of the account; ``price``: a decimal >= 0 |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.domain.enums import AccountStatus, ActionKind

ACTION_PARAMS: dict[str, tuple[str, ...]] = {
    ActionKind.SET_ACCOUNT_STATUS.value: ("status",),
    ActionKind.CANCEL_ITEM.value: ("item_ref",),
    ActionKind.CHANGE_PRICE.value: ("item_ref", "price"),
}
"""Each action the engine executes, with the params it needs (all required, no others)."""

ACTIONS = tuple(ACTION_PARAMS)


def action_problem(action: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first problem of an action and its params as (field, message), or None.

    The field is ``action`` or ``params.<name>``.
    """
    if action not in ACTION_PARAMS:
        return "action", f"unknown action {action!r}; the engine executes {', '.join(ACTIONS)}"
    wanted = ACTION_PARAMS[action]
    for name in wanted:
        if name not in params:
            return f"params.{name}", f"{action} needs params.{name}"
    for name in params:
        if name not in wanted:
            return f"params.{name}", f"{action} takes no param {name!r}"
    if "status" in params and params["status"] not in {s.value for s in AccountStatus}:
        statuses = ", ".join(s.value for s in AccountStatus)
        return "params.status", f"{params['status']!r} is not an account status ({statuses})"
    if "item_ref" in params and not (isinstance(params["item_ref"], str) and params["item_ref"]):
        return "params.item_ref", f"{params['item_ref']!r} is not a contract item ref"
    return None
