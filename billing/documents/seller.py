"""Who issues the invoices: the seller's identity, bank details and logo (configuration).

``Seller`` is a plain value so that billing/ stays free of Prefect: the flows turn the
``SellerIdentity`` block into one, and ``DEFAULT_SELLER`` serves local runs and tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from billing.domain.vat import DEFAULT_SELLER_COUNTRY


@dataclass(frozen=True)
class Seller:
    """The issuer of every invoice (EN 16931 BG-4) and where customers pay it."""

    name: str
    address_line: str
    postal_code: str
    city: str
    country: str
    vat_id: str
    legal_id: str = ""
    legal_form: str = ""
    email: str = ""
    phone: str = ""
    website: str = ""
    iban: str = ""
    bic: str = ""
    creditor_id: str = ""
    logo_path: str = ""

    @property
    def mail_domain(self) -> str:
        """The domain of the invoice e-mails' Message-IDs: the seller's e-mail domain."""
        return self.email.rpartition("@")[2] or "openbill.invalid"

    def to_dict(self) -> dict[str, Any]:
        """Plain values, to hand the seller to worker processes or flows."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Seller:
        """Build a seller from ``to_dict`` output (or a block's fields)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known and v is not None})


DEFAULT_SELLER = Seller(
    name="Openbill Demo SAS",
    address_line="10 rue de la Paix",
    postal_code="75002",
    city="Paris",
    country=DEFAULT_SELLER_COUNTRY,
    vat_id="FR11123456782",
    legal_id="123456782",
    legal_form="SAS au capital de 10 000 EUR - RCS Paris 123 456 782",
    email="billing@openbill.example",
    phone="+33 1 23 45 67 89",
    website="https://openbill.example",
    iban="FR7630006000011234567890189",
    bic="AGRIFRPP",
    creditor_id="FR72ZZZ123456",
)
"""A fictitious French seller for local runs, demos and tests (logo: the packaged one)."""
