"""The seam where a card processor plugs in: ``PaymentGateway`` and what it answers.

A gateway call carries an idempotency key. The processor keeps the result of each key and
replays it when the key comes again, so a caller that crashed after the charge and before
recording it simply asks again with the same key and gets the same charge back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


class GatewayStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    TRANSIENT_ERROR = "transient_error"


@dataclass(frozen=True)
class GatewayResult:
    """What the processor did with one request; ``reference`` is its id (``ch_...``)."""

    status: GatewayStatus
    reference: str
    amount: Decimal
    currency: str
    reason: str | None = None
    replayed: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status is GatewayStatus.SUCCEEDED


class PaymentGateway(Protocol):
    """A card processor: charges and refunds a stored card token, idempotently by key."""

    def charge(
        self, idempotency_key: str, card_token: str, amount: Decimal, currency: str
    ) -> GatewayResult:
        """Charge ``amount`` to the card; the same key returns the first answer again."""
        ...

    def refund(
        self, idempotency_key: str, card_token: str, amount: Decimal, currency: str
    ) -> GatewayResult:
        """Pay ``amount`` back to the card; the same key returns the first answer again."""
        ...
