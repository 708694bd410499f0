"""Words, numbers, amounts and dates in the account's language (Babel), for the documents.

Labels exist in English, French and Portuguese (and Spanish and German); any other language
falls back to English words with that language's number and date formats when Babel knows it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "invoice": "Invoice",
        "number": "Invoice number",
        "date": "Invoice date",
        "due": "Due date",
        "period": "Billing period",
        "customer": "Customer",
        "account": "Account",
        "vat_id": "VAT number",
        "description": "Description",
        "line_period": "Period",
        "quantity": "Quantity",
        "unit_price": "Unit price",
        "vat": "VAT",
        "amount": "Amount",
        "tax_summary": "VAT summary",
        "rate": "Rate",
        "base": "Taxable amount",
        "total_net": "Total excl. VAT",
        "total_tax": "Total VAT",
        "total_gross": "Total incl. VAT",
        "payment": "Payment",
        "terms": "Payable within {days} days, by {due}.",
        "transfer": "Please pay by bank transfer to",
        "reference": "Reference",
        "direct_debit": "The amount will be collected by SEPA direct debit from",
        "mandate": "Mandate",
        "creditor_id": "Creditor identifier",
        "card": "The amount will be charged to your card on file.",
        "page": "Page",
        "of": "of",
        "continued": "continued",
        "email_subject": "Invoice {number}",
        "email_body": "Dear {name},\n\nPlease find attached invoice {number} of {date} "
        "for {amount}, due on {due}.\n\nKind regards,\n{seller}",
    },
    "fr": {
        "invoice": "Facture",
        "number": "Numéro de facture",
        "date": "Date de facture",
        "due": "Date d'échéance",
        "period": "Période de facturation",
        "customer": "Client",
        "account": "Compte",
        "vat_id": "N° TVA",
        "description": "Désignation",
        "line_period": "Période",
        "quantity": "Quantité",
        "unit_price": "Prix unitaire",
        "vat": "TVA",
        "amount": "Montant HT",
        "tax_summary": "Récapitulatif TVA",
        "rate": "Taux",
        "base": "Base HT",
        "total_net": "Total HT",
        "total_tax": "Total TVA",
        "total_gross": "Total TTC",
        "payment": "Paiement",
        "terms": "Payable sous {days} jours, au plus tard le {due}.",
        "transfer": "Merci de régler par virement sur le compte",
        "reference": "Référence",
        "direct_debit": "Le montant sera prélevé par prélèvement SEPA sur le compte",
        "mandate": "Mandat",
        "creditor_id": "Identifiant créancier SEPA",
        "card": "Le montant sera débité de votre carte enregistrée.",
        "page": "Page",
        "of": "sur",
        "continued": "suite",
        "email_subject": "Facture {number}",
        "email_body": "Bonjour {name},\n\nVeuillez trouver ci-joint la facture {number} du "
        "{date} d'un montant de {amount}, échéance le {due}.\n\nCordialement,\n{seller}",
    },
    "pt": {
        "invoice": "Fatura",
        "number": "Número da fatura",
        "date": "Data da fatura",
        "due": "Data de vencimento",
        "period": "Período de faturação",
        "customer": "Cliente",
        "account": "Conta",
        "vat_id": "NIF",
        "description": "Descrição",
        "line_period": "Período",
        "quantity": "Quantidade",
        "unit_price": "Preço unitário",
        "vat": "IVA",
        "amount": "Valor",
        "tax_summary": "Resumo do IVA",
        "rate": "Taxa",
        "base": "Base tributável",
        "total_net": "Total sem IVA",
        "total_tax": "Total IVA",
        "total_gross": "Total com IVA",
        "payment": "Pagamento",
        "terms": "Pagável em {days} dias, até {due}.",
        "transfer": "Por favor pague por transferência bancária para",
        "reference": "Referência",
        "direct_debit": "O valor será cobrado por débito direto SEPA na conta",
        "mandate": "Mandato",
        "creditor_id": "Identificador de credor",
        "card": "O valor será debitado no seu cartão registado.",
        "page": "Página",
        "of": "de",
        "continued": "continuação",
        "email_subject": "Fatura {number}",
        "email_body": "Caro(a) {name},\n\nEm anexo a fatura {number} de {date} no valor de "
        "{amount}, com vencimento em {due}.\n\nCom os melhores cumprimentos,\n{seller}",
    },
}
LABELS["es"] = {
    **LABELS["en"],
    "invoice": "Factura",
    "number": "Número de factura",
    "date": "Fecha de factura",
    "due": "Fecha de vencimiento",
    "total_net": "Total sin IVA",
    "total_tax": "Total IVA",
    "total_gross": "Total con IVA",
    "vat": "IVA",
    "email_subject": "Factura {number}",
}
LABELS["de"] = {
    **LABELS["en"],
    "invoice": "Rechnung",
    "number": "Rechnungsnummer",
    "date": "Rechnungsdatum",
    "due": "Fällig am",
    "total_net": "Summe netto",
    "total_tax": "Summe USt.",
    "total_gross": "Summe brutto",
    "vat": "USt.",
    "email_subject": "Rechnung {number}",
}


HOME_LOCALES = {"pt": "pt_PT", "fr": "fr_FR", "de": "de_DE", "es": "es_ES"}
"""Where a language meets a country Babel has no locale for (pt + GB), the European variant
(Babel's bare ``pt`` is Brazilian)."""


@cache
def locale_for(language: str, country: str) -> Locale:
    """The Babel locale of an account: ``fr`` + ``BE`` gives fr_BE; unknown ones give en."""
    language = (language or "en").replace("-", "_").split("_")[0].lower()
    for candidate in (f"{language}_{country.upper()}", HOME_LOCALES.get(language), language):
        if candidate is None:
            continue
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


@dataclass(frozen=True)
class Formatter:
    """Formats values for one account: labels, amounts, quantities, rates and dates."""

    locale: Locale
    currency: str

    @classmethod
    def for_account(cls, language: str, country: str, currency: str) -> Formatter:
        return cls(locale_for(language, country), currency)

    @property
    def labels(self) -> dict[str, str]:
        return LABELS.get(self.locale.language, LABELS["en"])

    @property
    def lang(self) -> str:
        """A BCP 47 tag for the document (``fr-FR``)."""
        return str(self.locale).replace("_", "-")

    def money(self, amount: Decimal) -> str:
        """An amount with its currency symbol, in the currency's minor units."""
        return format_currency(amount, self.currency, locale=self.locale)

    def price(self, amount: Decimal) -> str:
        """A unit price: at least the currency's decimals, up to six when the price has them."""
        digits = max(-amount.normalize().as_tuple().exponent, 2)  # type: ignore[operator]
        pattern = self.locale.currency_formats["standard"].pattern.split(";")[0]
        pattern = pattern.replace("0.00", "0." + "0" * min(digits, 6))
        return format_currency(
            amount, self.currency, format=pattern, locale=self.locale, currency_digits=False
        )

    def number(self, value: Decimal) -> str:
        """A quantity, without trailing zeros."""
        return format_decimal(value.normalize(), format="#,##0.######", locale=self.locale)

    def percent(self, rate: Decimal) -> str:
        """A tax rate like ``20 %`` (``0.20``) or ``5,5 %``."""
        return format_decimal((rate * 100).normalize(), format="#,##0.##", locale=self.locale) + (
            "\u00a0%" if self.locale.language in ("fr", "de", "pt", "es") else "%"
        )

    def date(self, value: dt.date) -> str:
        """A date in the locale's medium form (``1 févr. 2027``)."""
        return format_date(value, format="medium", locale=self.locale)

    def long_date(self, value: dt.date) -> str:
        return format_date(value, format="long", locale=self.locale)
