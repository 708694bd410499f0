"""The legal mentions of an invoice (``billing.domain.legal_mentions``) as printed text, and
the check that refuses to issue an invoice whose page lacks one."""

from __future__ import annotations

from collections.abc import Callable

from markupsafe import escape

from billing.documents.errors import InvoiceValidationError
from billing.documents.formatting import Formatter
from billing.domain.legal_mentions import Mention

# Literal keys, so the translation guard (tests/billing/test_translations.py) finds them.
TEXTS: dict[str, Callable[[Formatter], str]] = {
    "late_penalty_fr": lambda f: f.text("legal_late_penalty_fr"),
    "recovery_indemnity_fr": lambda f: f.text("legal_recovery_indemnity_fr"),
    "early_discount_fr": lambda f: f.text("legal_early_discount_fr"),
    "late_interest_pt": lambda f: f.text("legal_late_interest_pt"),
    "recovery_indemnity_pt": lambda f: f.text("legal_recovery_indemnity_pt"),
    "late_interest_de": lambda f: f.text("legal_late_interest_de"),
    "recovery_flat_fee_de": lambda f: f.text("legal_recovery_flat_fee_de"),
}


def mention_texts(found: tuple[Mention, ...], f: Formatter) -> list[str]:
    """The mentions' texts in the invoice's language, in order."""
    return [TEXTS[mention.id](f) for mention in found]


def check_mentions(bill_no: str, html: str, found: tuple[Mention, ...], f: Formatter) -> None:
    """Refuse an invoice whose HTML lacks a mandatory mention (a template that lost them)."""
    missing = [
        f"{mention.id}: {mention.source}"
        for mention, text in zip(found, mention_texts(found, f), strict=True)
        if str(escape(text)) not in html
    ]
    if missing:
        raise InvoiceValidationError(f"invoice {bill_no}: mandatory legal mentions", missing)
