"""The legal mentions an invoice must print, by seller country, and the refusal to issue an
invoice whose page lacks one (billing/domain/legal_mentions.py, billing/documents/legal.py)."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from billing.documents.errors import InvoiceValidationError
from billing.documents.pdf import TEMPLATES, InvoiceRenderer
from billing.documents.render import render_invoice
from billing.documents.seller import DEFAULT_SELLER
from billing.domain.legal_mentions import MENTIONS, required_mentions
from tests.billing.test_documents import invoice, pdf_text

# What each country's mentions must say on the page, whatever the invoice's language.
ON_THE_PAGE = {
    "FR": ["L441-10", "D441-5"],
    "PT": ["62/2013"],
    "DE": ["§ 288"],
}
INDEMNITY = {"fr": "40 EUR", "pt": "40 EUR", "de": "40 EUR", "en": "EUR 40"}
EARLY_DISCOUNT = {
    "fr": "Pas d'escompte",
    "en": "No discount for early payment",
    "pt": "Sem desconto",
    "de": "Kein Skonto",
}


def _text(seller_country: str, language: str, vat_id: str | None = "FR40303265045") -> str:
    seller = dataclasses.replace(DEFAULT_SELLER, country=seller_country)
    value = invoice(language, buyer=dataclasses.replace(invoice().buyer, vat_id=vat_id))
    documents = render_invoice(value, InvoiceRenderer(seller), schematron=False)
    return " ".join(pdf_text(documents.pdf).split())


@pytest.mark.parametrize("country", sorted(ON_THE_PAGE))
@pytest.mark.parametrize("language", ["fr", "pt", "de", "en"])
def test_a_business_invoice_prints_its_seller_countrys_mentions(country, language):
    text = _text(country, language)
    for fragment in [*ON_THE_PAGE[country], INDEMNITY[language]]:
        assert fragment in text, (country, language, fragment)
    if country == "FR":  # the escompte, stated even when there is none (L441-9)
        assert EARLY_DISCOUNT[language] in text
    others = set(ON_THE_PAGE) - {country}
    assert not any(ON_THE_PAGE[o][0] in text for o in others)


def test_a_consumer_invoice_carries_no_business_mentions():
    assert required_mentions("FR", False) == ()
    assert "L441-10" not in _text("FR", "fr", vat_id=None)


def test_a_seller_country_without_rules_requires_none():
    assert required_mentions("GB", True) == ()
    assert set(MENTIONS) == set(ON_THE_PAGE)


def test_a_template_that_lost_the_mentions_refuses_to_issue(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    page = templates / "invoice.html.j2"
    html = page.read_text(encoding="utf-8")
    start, end = (
        html.index("{% if legal or exemptions %}"),
        html.index("</section>\n{% endif %}", html.index("{% if legal or exemptions %}")),
    )
    page.write_text(html[:start] + html[end + len("</section>\n{% endif %}") :], encoding="utf-8")
    renderer = InvoiceRenderer(DEFAULT_SELLER, templates=templates)
    with pytest.raises(InvoiceValidationError) as refused:
        renderer.html(invoice("fr"))
    message = str(refused.value)
    assert "INV-00000002" in message
    assert "late_penalty_fr: Code de commerce, art. L441-10 II" in message
    assert "early_discount_fr" in message


def test_a_business_without_a_vat_id_gets_the_business_mentions():
    """A business outside the EU (no EU VAT id, ``customer_type`` business) is still a
    business: the Code de commerce's mentions apply to it."""
    buyer = dataclasses.replace(invoice().buyer, country="JP", vat_id=None, business=True)
    html = InvoiceRenderer(DEFAULT_SELLER).html(invoice("en", buyer=buyer))
    assert "L441-10" in html
    assert required_mentions("FR", True) == MENTIONS["FR"]
