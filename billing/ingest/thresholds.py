"""Usage thresholds in and out of the engine: the export of the accounts' thresholds.

The import is ``accounts[].usage_threshold`` in the JSON master file
(``billing.ingest.importer``, docs/data-formats.md); ``export_thresholds`` gives the same field
back, one entry per account that has one, so that an export imports again unchanged.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.money import LINE_ROUNDING, quantize_money
from billing.store.models import Account


def export_thresholds(session: Session) -> list[dict[str, Any]]:
    """``[{"account": ref, "usage_threshold": "250.00"}, ...]`` in account ref order: every
    account with a usage threshold, the amount as a string (never a float) with its currency's
    minor units, or all its decimals where it has more."""
    rows = session.execute(
        select(Account.ref, Account.usage_threshold, Account.currency)
        .where(Account.usage_threshold.is_not(None))
        .order_by(Account.ref)
    )
    return [
        {"account": ref, "usage_threshold": amount_text(threshold, currency)}
        for ref, threshold, currency in rows
    ]


def amount_text(value: Decimal, currency: str) -> str:
    """``250.00`` for 250 in EUR; ``0.125`` stays ``0.125`` (the stored value, exactly)."""
    money = quantize_money(value, currency, LINE_ROUNDING)
    return format(money if money == value else value.normalize(), "f")
