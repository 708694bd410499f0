"""The pure buyer rules (``billing.domain.buyers``): which fields an invoice's buyer needs."""

from __future__ import annotations

import pytest

from billing.domain.buyers import (
    Buyer,
    CustomerType,
    buyer_problems,
    default_customer_type,
    vat_id_problem,
    vat_id_required,
)

B2B, B2C = CustomerType.BUSINESS, CustomerType.CONSUMER
PARIS = {"address_line": "8 passage des Récollets", "postal_code": "75010", "city": "Paris"}


def fields(problems):
    return [p.field for p in problems]


def test_a_business_needs_every_address_field_a_consumer_none():
    assert fields(buyer_problems(Buyer(B2B, "FR"), "FR")) == [
        "address_line", "postal_code", "city",
    ]  # fmt: skip
    assert fields(buyer_problems(Buyer(B2B, ""), "FR")) == [
        "address_line", "postal_code", "city", "country",
    ]  # fmt: skip
    assert buyer_problems(Buyer(B2C, "FR"), "FR") == []
    assert buyer_problems(Buyer(B2B, "FR", **PARIS), "FR") == []


@pytest.mark.parametrize(
    ("buyer_country", "seller_country", "customer_type", "required"),
    [
        ("DE", "FR", B2B, True),  # intra-community: art. 138 / 226(4)
        ("GR", "FR", B2B, True),
        ("FR", "FR", B2B, False),  # domestic
        ("DE", "FR", B2C, False),  # a consumer has no VAT id
        ("JP", "FR", B2B, False),  # outside the EU
        ("GB", "FR", B2B, False),  # no longer a member state
        ("FR", "CH", B2B, False),  # the seller outside the EU: no intra-community supply
    ],
)
def test_when_the_vat_id_is_required(buyer_country, seller_country, customer_type, required):
    buyer = Buyer(customer_type, buyer_country, **PARIS)

    assert (vat_id_required(buyer, seller_country) is not None) is required
    assert (fields(buyer_problems(buyer, seller_country)) == ["vat_id"]) is required


def test_a_reverse_charge_supply_needs_the_vat_id_even_at_home():
    buyer = Buyer(B2B, "FR", **PARIS)

    reason = vat_id_required(buyer, "FR", reverse_charge=True)

    assert reason is not None and "art. 196" in reason
    assert fields(buyer_problems(buyer, "FR", reverse_charge=True)) == ["vat_id"]


@pytest.mark.parametrize(
    ("vat_id", "country", "problem"),
    [
        ("FR40303265045", "FR", None),
        ("FR 40 303 265 045", "FR", None),
        ("FR40303265046", "FR", "(check digits)"),
        ("EL094259216", "GR", None),
        ("GR094259216", "GR", "starts with 'GR'"),
        ("DE812345673", "DE", None),
        ("DE812345673", "AT", "starts with 'DE'"),
        ("812345673", "DE", "has no country prefix"),
        ("PT567890120", "PT", None),
        ("XI980780684", "GB", None),  # Northern Ireland
        ("GB980780684", "GB", None),
        ("GB980780685", "GB", "(check digits)"),
        ("CHE-116.281.710 MWST", "CH", None),
        ("T1234567890123", "JP", None),  # no VAT number python-stdnum knows: accepted
        ("FR40303265045", "JP", "starts with 'FR'"),
    ],
)
def test_vat_id_problem(vat_id, country, problem):
    found = vat_id_problem(vat_id, country)

    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_vat_id_makes_a_business_by_default():
    assert default_customer_type("FR40303265045") == B2B
    assert default_customer_type(None) == default_customer_type("  ") == B2C
