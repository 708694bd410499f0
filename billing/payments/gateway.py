"""The seam where a card processor plugs in: ``PaymentGateway`` and what it answers.

A gateway call carries an idempotency key. The processor keeps the result of each key and
replays it when the key comes again, so a caller that crashed after the charge and before
recording it simply asks again with the same key and gets the same charge back.

A gateway that can take many requests in one call (``BatchGateway``) is asked a chunk at a
time; any other gateway is asked one request after the other.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from billing.payments.errors import GatewayUnavailable, IdempotencyConflict


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


@dataclass(frozen=True)
class GatewayRequest:
    """One charge or refund to ask for: ``amount`` on ``card_token`` under ``key``."""

    key: str
    card_token: str
    amount: Decimal
    currency: str


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


def ask_gateway(
    request: Callable[[str, str, Decimal, str], GatewayResult],
    key: str,
    card_token: str,
    amount: Decimal,
    currency: str,
) -> GatewayResult:
    """Call ``gateway.charge`` or ``gateway.refund``; an outage or a refused key is an answer.

    Unreachable is a transient error (the pending row is resumed later); a key reused for a
    different request is a decline, as a processor would answer it.
    """
    try:
        return request(key, card_token, amount, currency)
    except GatewayUnavailable as error:
        return GatewayResult(GatewayStatus.TRANSIENT_ERROR, "", amount, currency, str(error))
    except IdempotencyConflict as error:
        return GatewayResult(GatewayStatus.DECLINED, "", amount, currency, str(error)[:200])


@runtime_checkable
class BatchGateway(Protocol):
    """A processor that answers many requests in one call, in order.

    A key reused for another request is answered with its ``IdempotencyConflict`` in place of
    a result; an outage raises ``GatewayUnavailable`` for the whole call.
    """

    def charge_many(
        self, requests: Sequence[GatewayRequest]
    ) -> list[GatewayResult | IdempotencyConflict]: ...

    def refund_many(
        self, requests: Sequence[GatewayRequest]
    ) -> list[GatewayResult | IdempotencyConflict]: ...


def ask_gateway_many(
    gateway: PaymentGateway, kind: Literal["charge", "refund"], requests: Sequence[GatewayRequest]
) -> list[GatewayResult]:
    """``ask_gateway`` for many requests: one call to a ``BatchGateway``, else one by one."""
    if not isinstance(gateway, BatchGateway):
        single = gateway.charge if kind == "charge" else gateway.refund
        return [ask_gateway(single, r.key, r.card_token, r.amount, r.currency) for r in requests]
    many = gateway.charge_many if kind == "charge" else gateway.refund_many
    try:
        answers = many(requests)
    except GatewayUnavailable as error:
        return [
            GatewayResult(GatewayStatus.TRANSIENT_ERROR, "", r.amount, r.currency, str(error))
            for r in requests
        ]
    return [
        GatewayResult(GatewayStatus.DECLINED, "", r.amount, r.currency, str(a)[:200])
        if isinstance(a, IdempotencyConflict)
        else a
        for r, a in zip(requests, answers, strict=True)
    ]


@dataclass
class SortedAnswers:
    """A chunk's answers by outcome: transient ids stay pending, the others are recorded."""

    transient: list[int]
    settled: dict[int, str | None]  # id -> the processor's reference
    declined: dict[int, str]  # id -> reason

    @property
    def final(self) -> bool:
        return bool(self.settled or self.declined)


def sort_answers(
    ids: Sequence[int], answers: Sequence[GatewayResult], declined_reason: str
) -> SortedAnswers:
    """Sort the answers to the requests with these payment (or refund) ids by outcome."""
    out = SortedAnswers([], {}, {})
    for row_id, answer in zip(ids, answers, strict=True):
        if answer.status is GatewayStatus.TRANSIENT_ERROR:
            out.transient.append(row_id)
        elif answer.succeeded:
            out.settled[row_id] = answer.reference
        else:
            out.declined[row_id] = answer.reason or declined_reason
    return out
