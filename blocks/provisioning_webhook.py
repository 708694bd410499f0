"""The provisioning hook's endpoint (BRM's agent): told when an account changes status."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field


class ProvisioningWebhook(Block):
    _block_type_name = "Provisioning Webhook"
    _description = "HTTP endpoint that receives account status changes."

    url: str = Field(description="URL that receives a JSON POST per run.")
    timeout_seconds: float = Field(10, gt=0)
