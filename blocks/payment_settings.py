"""How collection retries and refunds behave (BRM pin_collect / pin_refund knobs)."""

from __future__ import annotations

from decimal import Decimal

from prefect.blocks.core import Block
from pydantic import Field


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
    debit_horizon_days: int | None = Field(
        None,
        ge=0,
        description="Send a debit at most this many calendar days before its collection date "
        "(the rulebook's 14); later bill days send the rest. Empty: every open debit on its "
        "bill day.",
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
