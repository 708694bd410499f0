"""Who collects and through which processor: gateway choice, its secrets, the SEPA creditor."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class PaymentGateway(Block):
    """The card processor and the SEPA creditor identity of pin_collect and pin_refund.

    The defaults are the sandbox processor and a demo creditor: fine for tests and the demo,
    to be replaced by a saved block in production.
    """

    _block_type_name = "Payment Gateway"
    _description = "Card processor (sandbox for now) and SEPA creditor identity."

    gateway: Literal["sandbox"] = Field(
        "sandbox", description="The card processor; 'sandbox' is the test-mode processor."
    )
    api_key: SecretStr | None = Field(None, description="The processor's secret key.")
    sandbox_ledger: str = Field(
        "var/sandbox-gateway.sqlite3", description="The sandbox processor's ledger file."
    )
    sandbox_transient_failures: int = Field(
        2, ge=0, description="Calls per key that fail transiently for the tok_transient card."
    )
    creditor_name: str = Field("Openbill Demo SA", description="SEPA creditor name.")
    creditor_iban: str = Field("FR7630006000011234567890189", description="Creditor IBAN.")
    creditor_bic: str = Field("AGRIFRPP", description="Creditor BIC.")
    creditor_id: str = Field("FR72ZZZ123456", description="SEPA creditor identifier.")
