"""The legal mentions an invoice must carry, by the seller's country (data, not template).

Each mention names its source. They apply between businesses (the buyer has a VAT id, as at
import: ``billing.domain.buyers``); the documents print them in the invoice's language and
refuse to issue an invoice whose page lacks one (``billing.documents.legal``).

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


def required_mentions(seller_country: str, buyer_vat_id: str | None) -> tuple[Mention, ...]:
    """The mentions an invoice from a seller in ``seller_country`` must print; a buyer with
    a VAT id is a business (the mentions above apply between businesses only)."""
    if not (buyer_vat_id or "").strip():
        return ()
    return MENTIONS.get(seller_country.upper(), ())
