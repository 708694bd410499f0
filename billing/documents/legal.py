"""The legal mentions of an invoice (``billing.domain.legal_mentions``) as printed text, the
VAT exemption reasons of its lines, and the checks that refuse to issue an invoice whose page
lacks one or whose VAT categories break an EN 16931 rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from markupsafe import escape

from billing.documents.errors import InvoiceValidationError
from billing.documents.formatting import Formatter
from billing.domain.legal_mentions import Mention, vat_mention
from billing.domain.vat import VatCategory

if TYPE_CHECKING:
    from billing.documents.model import Invoice, Line

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


# The name of each category that charges no VAT, in the invoice's language (literal keys).
CATEGORY_NAMES: dict[str, Callable[[Formatter], str]] = {
    "E": lambda f: f.text("vat_exempt"),
    "AE": lambda f: f.text("vat_reverse_charge"),
    "K": lambda f: f.text("vat_intra_community"),
    "G": lambda f: f.text("vat_export"),
    "O": lambda f: f.text("vat_outside_scope"),
}


def exemption_text(line: Line, seller_country: str, f: Formatter) -> str | None:
    """Why a line charges no VAT (EN 16931 BT-120), as printed: the category's name in the
    invoice's language, then the words the seller's law requires (an exempt line, or a line
    outside the scope of VAT by its class, prepaid credits: its tax class's legal basis); None
    for S and Z lines."""
    category = line.vat.value
    if category == VatCategory.EXEMPT or _outside_scope_by_class(line):
        wording = (line.exemption_reason or "").strip()
    else:
        mention = vat_mention(seller_country, category)
        wording = mention.wording if mention else ""
    if category not in CATEGORY_NAMES or not wording:
        return None
    name = CATEGORY_NAMES[category](f)
    return wording if name.casefold() in wording.casefold() else f"{name}: {wording}"


def _outside_scope_by_class(line: Line) -> bool:
    """An O line whose tax class itself is outside the scope of VAT and says why (prepaid
    credits, a multi-purpose voucher: ``billing.domain.wallets``), wherever the buyer is; an O
    line of another class is a service supplied abroad (its class gives no reason)."""
    return line.vat == VatCategory.OUTSIDE_SCOPE and bool((line.exemption_reason or "").strip())


def exemption_texts(invoice: Invoice, seller_country: str, f: Formatter) -> dict[str, str]:
    """Each exemption reason of the invoice by its (category, text), in line order: the
    VAT breakdown (BG-23) and the page print them once each."""
    found: dict[str, str] = {}
    for line in invoice.lines:
        text = exemption_text(line, seller_country, f)
        if text is not None:
            found.setdefault(text, line.vat.value)
    return found


def vat_problems(invoice: Invoice, seller_country: str) -> list[str]:
    """What in the invoice's VAT categories an EN 16931 rule or the seller's law refuses."""
    categories = {line.vat for line in invoice.lines}
    problems = []
    if VatCategory.OUTSIDE_SCOPE in categories and len(categories) > 1:
        others = ", ".join(sorted(c.value for c in categories - {VatCategory.OUTSIDE_SCOPE}))
        problems.append(
            f"[BR-O-11..14] a line outside the scope of VAT (O) cannot share an invoice with "
            f"{others} lines: bill them separately"
        )
    needs_buyer_id = {
        VatCategory.REVERSE_CHARGE: "BR-AE-03",
        VatCategory.INTRA_COMMUNITY: "BR-IC-03",
    }
    for category, rule in needs_buyer_id.items():
        if category in categories and not (invoice.buyer.vat_id or "").strip():
            problems.append(
                f"[{rule}] a {category.value} line needs the buyer's VAT id: account "
                f"{invoice.account_ref} has none (vat_id)"
            )
    abroad_only = {line.vat for line in invoice.lines if not _outside_scope_by_class(line)} & {
        VatCategory.REVERSE_CHARGE,
        VatCategory.INTRA_COMMUNITY,
        VatCategory.EXPORT,
        VatCategory.OUTSIDE_SCOPE,
    }
    if abroad_only and invoice.buyer.country == seller_country:
        problems.append(
            f"{', '.join(sorted(c.value for c in abroad_only))} lines to a buyer in the seller's "
            f"own country {seller_country}: the bill was made under another seller's VAT rules"
        )
    for line in invoice.lines:
        if line.vat == VatCategory.EXEMPT and not (line.exemption_reason and line.exemption_code):
            problems.append(
                f"[BR-E-10] line {line.position} is exempt (E) but its tax class "
                f"{line.tax_category!r} gives no exemption_code and exemption_reason"
            )
    return problems


def check_vat(invoice: Invoice, seller_country: str) -> None:
    """Refuse an invoice whose VAT categories cannot be issued (``vat_problems``)."""
    problems = vat_problems(invoice, seller_country)
    if problems:
        raise InvoiceValidationError(f"invoice {invoice.bill_no}: VAT categories", problems)


def mention_texts(found: tuple[Mention, ...], f: Formatter) -> list[str]:
    """The mentions' texts in the invoice's language, in order."""
    return [TEXTS[mention.id](f) for mention in found]


def check_mentions(
    bill_no: str,
    html: str,
    found: tuple[Mention, ...],
    f: Formatter,
    exemptions: dict[str, str] | None = None,
) -> None:
    """Refuse an invoice whose HTML lacks a mandatory mention or VAT exemption reason (a
    template that lost them)."""
    missing = [
        f"{mention.id}: {mention.source}"
        for mention, text in zip(found, mention_texts(found, f), strict=True)
        if str(escape(text)) not in html
    ]
    missing += [
        f"VAT {category} exemption reason {text!r}"
        for text, category in (exemptions or {}).items()
        if str(escape(text)) not in html
    ]
    if missing:
        raise InvoiceValidationError(f"invoice {bill_no}: mandatory legal mentions", missing)
