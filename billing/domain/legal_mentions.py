"""The legal mentions an invoice must carry, by the seller's country (data, not template).

Each mention names its source. They apply between businesses (the account's
``customer_type``: ``billing.domain.buyers``); the documents print them in the invoice's
language and refuse to issue an invoice whose page lacks one (``billing.documents.legal``).

- FR, Code de commerce art. L441-9 I and L441-10 II: the rate of late-payment penalties, the
  EUR 40 fixed indemnity for recovery costs (art. D441-5), and the conditions of an early
  payment discount (escompte), stated even when there is none.
- PT, Decreto-Lei n.º 62/2013 (late payment in commercial transactions, Directive 2011/7/EU):
  late interest at the statutory commercial rate (art. 4.º) and EUR 40 for recovery costs
  (art. 7.º).
- DE, BGB § 288: default interest 9 points above the base rate between businesses (Abs. 2)
  and the EUR 40 flat-rate compensation (Abs. 5).

A seller country without an entry has no mention required here (documented, not guessed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mention:
    """One mandatory mention: its id (the text's key in the documents) and its legal source."""

    id: str
    source: str


MENTIONS: dict[str, tuple[Mention, ...]] = {
    "FR": (
        Mention("late_penalty_fr", "Code de commerce, art. L441-10 II"),
        Mention("recovery_indemnity_fr", "Code de commerce, art. L441-10 II and D441-5"),
        Mention("early_discount_fr", "Code de commerce, art. L441-9 I"),
    ),
    "PT": (
        Mention("late_interest_pt", "Decreto-Lei n.º 62/2013, art. 4.º"),
        Mention("recovery_indemnity_pt", "Decreto-Lei n.º 62/2013, art. 7.º"),
    ),
    "DE": (
        Mention("late_interest_de", "BGB § 288 Abs. 2"),
        Mention("recovery_flat_fee_de", "BGB § 288 Abs. 5"),
    ),
}


def required_mentions(seller_country: str, business: bool) -> tuple[Mention, ...]:
    """The mentions an invoice from a seller in ``seller_country`` must print to a buyer; the
    mentions above apply between businesses only."""
    if not business:
        return ()
    return MENTIONS.get(seller_country.upper(), ())


# --- VAT: what an invoice whose VAT is not charged must say, and why -----------------------


@dataclass(frozen=True)
class VatMention:
    """The words a seller's law requires on an invoice of a VAT category where no VAT is
    charged (``billing.domain.vat``), in that law's language, and the source requiring them.

    Printed after the category's name in the invoice's language, and sent as the VAT
    exemption reason (EN 16931 BT-120) beside its VATEX code (BT-121)."""

    category: str
    wording: str
    source: str


_DIRECTIVE = "Council Directive 2006/112/EC"

VAT_MENTIONS: dict[str, dict[str, VatMention]] = {
    "FR": {
        "AE": VatMention(
            "AE",
            "Autoliquidation (art. 283-2 du CGI ; art. 196 de la directive 2006/112/CE)",
            "CGI art. 242 nonies A, I-13°: the words « Autoliquidation »",
        ),
        "K": VatMention(
            "K",
            "Exonération de TVA, article 262 ter, I du CGI",
            "CGI art. 242 nonies A, I-12°: the exempting provision",
        ),
        "G": VatMention(
            "G",
            "Exonération de TVA, article 262, I du CGI",
            "CGI art. 242 nonies A, I-12°: the exempting provision",
        ),
        "O": VatMention(
            "O",
            "TVA non applicable, article 259-1 du CGI",
            "CGI art. 259-1 (place of supply at the buyer) and 242 nonies A, I-13°",
        ),
    },
    "PT": {
        "AE": VatMention(
            "AE", "IVA - autoliquidação", "CIVA art. 36.º, n.º 13: the words «IVA - autoliquidação»"
        ),
        "K": VatMention(
            "K",
            "Isento nos termos do artigo 14.º do RITI",
            "CIVA art. 36.º, n.º 5, al. e): the exempting provision",
        ),
        "G": VatMention(
            "G",
            "Isento nos termos da alínea a) do n.º 1 do artigo 14.º do CIVA",
            "CIVA art. 36.º, n.º 5, al. e): the exempting provision",
        ),
        "O": VatMention(
            "O",
            "IVA - não sujeito, artigo 6.º, n.º 6, alínea a) do CIVA",
            "CIVA art. 6.º, n.º 6, al. a) (place of supply at the buyer)",
        ),
    },
    "DE": {
        "AE": VatMention(
            "AE",
            "Steuerschuldnerschaft des Leistungsempfängers (§ 13b UStG)",
            "UStG § 14a Abs. 5: the words „Steuerschuldnerschaft des Leistungsempfängers“",
        ),
        "K": VatMention(
            "K",
            "Steuerfreie innergemeinschaftliche Lieferung (§ 4 Nr. 1 Buchst. b, § 6a UStG)",
            "UStG § 14 Abs. 4 Nr. 8 and § 14a Abs. 3",
        ),
        "G": VatMention(
            "G",
            "Steuerfreie Ausfuhrlieferung (§ 4 Nr. 1 Buchst. a, § 6 UStG)",
            "UStG § 14 Abs. 4 Nr. 8",
        ),
        "O": VatMention(
            "O",
            "Nicht im Inland steuerbare Leistung (§ 3a Abs. 2 UStG)",
            "UStG § 3a Abs. 2 (place of supply at the buyer)",
        ),
    },
}
"""By seller country, then VAT category: the mention its law requires."""

EU_VAT_MENTIONS: dict[str, VatMention] = {
    "AE": VatMention(
        "AE", f"Reverse charge ({_DIRECTIVE}, art. 196)", f"{_DIRECTIVE} art. 226(11a)"
    ),
    "K": VatMention(
        "K", f"Exempt intra-community supply ({_DIRECTIVE}, art. 138)", f"{_DIRECTIVE} art. 226(11)"
    ),
    "G": VatMention("G", f"Exempt export ({_DIRECTIVE}, art. 146)", f"{_DIRECTIVE} art. 226(11)"),
    "O": VatMention(
        "O",
        f"Outside the scope of VAT: supplied where the buyer is ({_DIRECTIVE}, art. 44)",
        f"{_DIRECTIVE} art. 44",
    ),
}
"""A seller country without its own entry: the Directive's wording (art. 226(11) and (11a))."""


def vat_mention(seller_country: str, category: str) -> VatMention | None:
    """The mention a line of ``category`` needs on an invoice from ``seller_country``; None
    for a category that charges VAT (S) or is zero rated (Z). Exempt (E) lines print their
    tax class's own legal basis instead (the catalogue's ``exemption_reason``)."""
    return VAT_MENTIONS.get(seller_country.upper(), EU_VAT_MENTIONS).get(category)
