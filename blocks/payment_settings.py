"""How collection retries and refunds behave (BRM pin_collect / pin_refund knobs)."""

from __future__ import annotations

from decimal import Decimal

from prefect.blocks.core import Block
from pydantic import Field, field_validator

from billing.domain.direct_debit import DEBIT_HORIZON_DAYS


class PaymentSettings(Block):
    _block_type_name = "Payment Settings"
    _description = (
        "Retry schedule of failed collections, debit lead time, smallest refund, SEPA file size."
    )

    retry_days: list[int] = Field(
        [3, 7, 14],
        description="Days after a bill's first failed collection on which it is retried; "
        "after the last one fails the account enters dunning.",
    )
    debit_lead_days: int = Field(
        2,
        ge=0,
        description="TARGET2 business days the bank needs between receiving a debit file and "
        "the collection date (the rulebook's 1 at least). A debit is collected on its "
        "invoice's due date, moved to a TARGET2 business day, never sooner than this.",
    )
    debit_horizon_days: int = Field(
        DEBIT_HORIZON_DAYS,
        ge=0,
        description="Send a debit at most this many calendar days before its collection date; "
        "later bill days send the rest. Default 14: the EPC SDD Core rulebook presents a "
        "collection at most 14 calendar days before its due date (chapter 4, time cycle). "
        "Higher only if your bank holds files longer before presenting them.",
    )

    min_refund: Decimal = Field(
        Decimal("0.01"), gt=0, description="Smallest credit balance that is refunded."
    )
    card_chunk: int = Field(
        500,
        ge=1,
        description="Card payments stored, charged and recorded per transaction (one commit "
        "each way per chunk).",
    )
    page_size: int = Field(
        10_000,
        ge=1,
        description="Accounts planned at a time by collection and refunds (memory stays flat).",
    )
    file_transactions: int = Field(
        10_000,
        ge=1,
        description="Most transactions in one SEPA file (pain.008 debits, pain.001 refunds); "
        "a run with more writes several files. Set it to your bank's limit if that is lower.",
    )

    @field_validator("debit_horizon_days", mode="before")
    @classmethod
    def _no_unbounded_horizon(cls, value: object) -> object:
        """A block saved when the field could be empty (no horizon) loads with the rulebook's
        14 days: an unbounded horizon sent debits two months ahead."""
        return DEBIT_HORIZON_DAYS if value is None else value
