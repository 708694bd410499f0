"""What an invoice needs to know about its buyer: pure rules, buyer and seller countries in.

A **business** buyer (B2B) must have a complete postal address: EN 16931 BT-50 (address
line), BT-53 (postal code), BT-52 (city) and BT-55 (country, mandatory for every buyer), and
French law (CGI art. 242 nonies A, I-2°) requires the buyer's name and address on a B2B invoice.

A buyer **VAT identification number** is required where the law needs it on the invoice
(Directive 2006/112/EC art. 226(4)):

- an intra-community supply: an EU business buyer in another member state than the seller
  (art. 138 for goods; for services art. 44 puts the place of supply at the buyer, who pays
  the VAT under art. 196);
- any reverse-charge supply (art. 196): the buyer accounts for the VAT.

Any VAT id that is given is checked, required or not: its prefix must be the buyer's country
(Greece writes ``EL``, Northern Ireland ``XI``) and, where python-stdnum knows the country's
number, its check digits must be right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import stdnum
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import InvalidChecksum, ValidationError


class _Validator(Protocol):
    def validate(self, number: str) -> str: ...


class CustomerType(StrEnum):
    """Whether a buyer is a business (B2B) or a consumer (B2C)."""

    BUSINESS = "business"
    CONSUMER = "consumer"


EU_MEMBER_STATES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)
"""ISO 3166-1 alpha-2 codes of the 27 member states (2020 onwards: without GB)."""

_VAT_PREFIX = {"GR": "EL"}
"""VAT prefixes that differ from the ISO country code (Directive 2006/112/EC art. 215)."""

ADDRESS_FIELDS = (
    ("address_line", "BT-50"),
    ("postal_code", "BT-53"),
    ("city", "BT-52"),
    ("country", "BT-55"),
)
"""A business buyer's address fields, with their EN 16931 business term."""


@dataclass(frozen=True)
class Buyer:
    """The buyer fields these rules read (an account, as imported)."""

    customer_type: CustomerType
    country: str
    address_line: str = ""
    postal_code: str = ""
    city: str = ""
    vat_id: str | None = None


@dataclass(frozen=True)
class BuyerProblem:
    """One thing wrong with a buyer: the field and what is wrong with it."""

    field: str
    message: str


def default_customer_type(vat_id: str | None) -> CustomerType:
    """A buyer with a VAT id is a business unless told otherwise; without one, a consumer."""
    return CustomerType.BUSINESS if vat_id and vat_id.strip() else CustomerType.CONSUMER


def vat_prefix(country: str) -> str:
    """The prefix of a country's VAT numbers: its ISO code, but ``EL`` for Greece."""
    return _VAT_PREFIX.get(country, country)


def is_eu(country: str) -> bool:
    """Whether ``country`` (ISO 3166-1 alpha-2) is an EU member state."""
    return country in EU_MEMBER_STATES


def vat_id_required(
    buyer: Buyer, seller_country: str, *, reverse_charge: bool = False
) -> str | None:
    """Why the law needs the buyer's VAT id on the invoice (the legal source), or None."""
    if reverse_charge:
        return "a reverse-charge supply (Directive 2006/112/EC art. 196 and 226(4))"
    if (
        buyer.customer_type == CustomerType.BUSINESS
        and is_eu(buyer.country)
        and is_eu(seller_country)
        and buyer.country != seller_country
    ):
        return (
            f"an intra-community supply from {seller_country} to a business buyer in "
            f"{buyer.country} (Directive 2006/112/EC art. 138 and 226(4))"
        )
    return None


def is_intra_community_b2b(buyer: Buyer, seller_country: str) -> bool:
    """An EU business buyer in another member state than an EU seller: VAT reverse-charged."""
    return vat_id_required(buyer, seller_country) is not None


def buyer_problems(
    buyer: Buyer, seller_country: str, *, reverse_charge: bool = False
) -> list[BuyerProblem]:
    """Everything missing or wrong in ``buyer`` for an invoice from ``seller_country``."""
    problems: list[BuyerProblem] = []
    if buyer.customer_type == CustomerType.BUSINESS:
        for name, term in ADDRESS_FIELDS:
            if not str(getattr(buyer, name) or "").strip():
                problems.append(
                    BuyerProblem(
                        name,
                        f"{name} is required for a business buyer "
                        f"(EN 16931 {term}; CGI art. 242 nonies A: the buyer's address)",
                    )
                )
    vat_id = buyer.vat_id.strip() if buyer.vat_id else ""
    if vat_id:
        problem = vat_id_problem(vat_id, buyer.country)
        if problem:
            problems.append(BuyerProblem("vat_id", problem))
    else:
        reason = vat_id_required(buyer, seller_country, reverse_charge=reverse_charge)
        if reason:
            problems.append(BuyerProblem("vat_id", f"vat_id is required for {reason}"))
    return problems


_SEPARATORS = re.compile(r"[\s.\-/]")


def vat_id_problem(vat_id: str, country: str) -> str | None:
    """What is wrong with a buyer's VAT id given the buyer's country, or None if it is valid.

    EU numbers (and ``XI`` for Northern Ireland) are checked with ``stdnum.eu.vat``; a non-EU
    country's with ``stdnum.<cc>.vat`` when python-stdnum has one (GB, CH, NO, ...), and only
    for its prefix otherwise.
    """
    number = _SEPARATORS.sub("", vat_id).upper()
    expected = vat_prefix(country)
    prefixes = (expected, "XI") if country == "GB" else (expected,)
    if not number[:2].isalpha():
        if is_eu(country):
            return (
                f"vat_id {vat_id!r} has no country prefix: "
                f"a VAT number of {country} starts with {expected}"
            )
        return _check_national(vat_id, number, country)
    if not number.startswith(prefixes):
        return (
            f"vat_id {vat_id!r} starts with {number[:2]!r}, not the prefix of the buyer's "
            f"country {country} ({' or '.join(repr(p) for p in prefixes)})"
        )
    if is_eu(country) or number.startswith("XI"):
        return _validated(vat_id, number, eu_vat)
    return _check_national(vat_id, number, country)


def _check_national(vat_id: str, number: str, country: str) -> str | None:
    """Check a non-EU VAT id with python-stdnum's module of the country, if it has one."""
    module = stdnum.get_cc_module(country.lower(), "vat")
    if module is None or getattr(module, "__name__", "") != f"stdnum.{country.lower()}.vat":
        return None  # no VAT number python-stdnum knows for this country: prefix only
    return _validated(vat_id, number, module)


def _validated(vat_id: str, number: str, module: _Validator) -> str | None:
    try:
        module.validate(number)
    except InvalidChecksum:
        return f"vat_id {vat_id!r} is not a valid VAT number (check digits)"
    except ValidationError as error:
        return f"vat_id {vat_id!r} is not a valid VAT number ({str(error).rstrip('.').lower()})"
    return None
