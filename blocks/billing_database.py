"""Where the billing data lives. The URL is a secret: it never shows in the UI or in logs."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class BillingDatabase(Block):
    """A SQLAlchemy URL: ``sqlite:///var/billing.db`` or ``postgresql+psycopg2://...``."""

    _block_type_name = "Billing Database"
    _description = "SQLAlchemy URL of the billing database (a secret)."

    url: SecretStr = Field(description="SQLAlchemy database URL.")
