"""Through which processor cards are charged: gateway choice and its secrets.

The SEPA creditor (name, account, creditor identifier) is the seller: the Seller Identity
block, the one identity printed on the invoices and written into their XML and the SEPA files.
"""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class PaymentGateway(Block):
    """The card processor of pin_collect and pin_refund.

    The default is the sandbox processor: fine for tests and the demo, to be replaced by a
    saved block in production.
    """

    _block_type_name = "Payment Gateway"
    _description = "Card processor (sandbox for now); the SEPA creditor is the Seller Identity."

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
