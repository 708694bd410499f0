"""Who issues the invoices: legal identity, address, VAT number, bank details and logo."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field


class SellerIdentity(Block):
    """The seller printed on every invoice and written into its Factur-X XML (EN 16931 BG-4)."""

    _block_type_name = "Seller Identity"
    _description = "Seller name, address, VAT and legal ids, bank account, SEPA creditor id, logo."

    name: str = Field(description="Legal name.")
    address_line: str = Field(description="Street and number.")
    postal_code: str
    city: str
    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. FR.", pattern="^[A-Z]{2}$")
    vat_id: str = Field(description="VAT identifier with its country prefix (FR11123456782).")
    legal_id: str = Field("", description="Registration number (SIREN in France).")
    legal_form: str = Field("", description="Legal mention printed in the footer.")
    email: str = ""
    phone: str = ""
    website: str = ""
    iban: str = Field("", description="Account customers pay into by transfer.")
    bic: str = ""
    creditor_id: str = Field("", description="SEPA creditor identifier, for direct debit.")
    logo_path: str = Field("", description="SVG, PNG or JPEG file; empty: the packaged logo.")
