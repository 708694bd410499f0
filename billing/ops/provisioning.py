"""The provisioning hook: tell an outside system that accounts changed status (BRM agent).

A plain HTTP webhook: one JSON POST per run with every change. Bill day skips it when
``simulate_agent`` is on, as the BRM seed's test runs do.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from billing.ops.deferred import StatusChange


def notify_status_changes(url: str, changes: Sequence[StatusChange], timeout: float = 10) -> int:
    """POST the changes to ``url``; returns how many were sent (raises on an HTTP error)."""
    if not changes:
        return 0
    payload = {
        "event": "account.status_changed",
        "changes": [
            {
                "account": c.account_ref,
                "from": c.old,
                "to": c.new,
                "effective": c.effective.isoformat(),
            }
            for c in changes
        ],
    }
    response = httpx.post(url, json=payload, timeout=timeout)
    response.raise_for_status()
    return len(changes)
