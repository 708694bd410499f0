"""The one catalogue of every word the invoice documents and the invoice e-mail show.

Each language is a dict of the same keys; ``{name}`` placeholders are filled by
``str.format``. The template asks with ``t("key", ...)``, the Python code with
``Formatter.text("key", ...)`` or ``translate(language, "key", ...)``, always with a literal
key: ``tests/billing/test_translations.py`` finds the keys by parsing the template and the
sources, and fails when one lacks a translation in any of ``LANGUAGES``, is empty, or reads
the same as the English one without being listed in ``SAME_AS_ENGLISH``.

Adding a language: copy the ``"en"`` dict, translate every value, add the language to
``LANGUAGES`` (and a home locale to ``formatting.HOME_LOCALES`` and a date pattern to
``formatting.DATE_PATTERNS``), list the words that are really the same as in English in
``SAME_AS_ENGLISH``, and run the test. A language outside ``LANGUAGES`` gets the English
words with its own Babel number and date formats.
"""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "fr", "pt", "de")
"""The languages whose catalogue must be complete."""

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        # header, parties
        "invoice": "Invoice",
        "number": "Invoice number",
        "date": "Invoice date",
        "due": "Due date",
        "period": "Billing period",
        "account": "Account",
        "customer": "Customer",
        "vat_id": "VAT number",
        "continued": "continued",
        "page": "Page",
        "pdf_description": "Invoice {number} of {date}",
        "pdf_keywords": "Factur-X, EN 16931, invoice",
        # lines and totals
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
        "line_cancelled": "{name} (cancelled on {date})",
        "line_changed": "{name} (changed on {date})",
        "line_renewed": "{name} (renewed on {date})",
        # payment
        "payment": "Payment",
        "terms_on_receipt": "Due on receipt.",
        "terms_one_day": "Payable within 1 day, by {due}.",
        "terms_days": "Payable within {days} days, by {due}.",
        "transfer": "Please pay by bank transfer to",
        "iban": "IBAN",
        "bic": "BIC",
        "reference": "Reference",
        "direct_debit": "The amount will be collected by SEPA direct debit from",
        "prenotification": "Pre-notification: {amount} will be debited on {date}.",
        "mandate": "Mandate",
        "creditor_id": "Creditor identifier",
        "card": "The amount will be charged to your card on file.",
        # e-mail
        "email_subject": "Invoice {number}",
        "email_body": "Dear {name},\n\nPlease find attached invoice {number} of {date} "
        "for {amount}, due on {due}.\n\nKind regards,\n{seller}",
        "email_body_on_receipt": "Dear {name},\n\nPlease find attached invoice {number} of "
        "{date} for {amount}, due on receipt.\n\nKind regards,\n{seller}",
    },
    "fr": {
        "invoice": "Facture",
        "number": "Numéro de facture",
        "date": "Date de facture",
        "due": "Date d'échéance",
        "period": "Période de facturation",
        "account": "Compte client",
        "customer": "Client",
        "vat_id": "N° TVA",
        "continued": "suite",
        "page": "Page",
        "pdf_description": "Facture {number} du {date}",
        "pdf_keywords": "Factur-X, EN 16931, facture",
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
        "line_cancelled": "{name} (résilié le {date})",
        "line_changed": "{name} (modifié le {date})",
        "line_renewed": "{name} (renouvelé le {date})",
        "payment": "Paiement",
        "terms_on_receipt": "Payable à réception.",
        "terms_one_day": "Payable sous 1 jour, au plus tard le {due}.",
        "terms_days": "Payable sous {days} jours, au plus tard le {due}.",
        "transfer": "Merci de régler par virement sur le compte",
        "iban": "IBAN",
        "bic": "BIC",
        "reference": "Référence",
        "direct_debit": "Le montant sera prélevé par prélèvement SEPA sur le compte",
        "prenotification": "Pré-notification : {amount} seront prélevés le {date}.",
        "mandate": "Mandat",
        "creditor_id": "Identifiant créancier SEPA",
        "card": "Le montant sera débité de votre carte enregistrée.",
        "email_subject": "Facture {number}",
        "email_body": "Bonjour {name},\n\nVeuillez trouver ci-joint la facture {number} du "
        "{date} d'un montant de {amount}, échéance le {due}.\n\nCordialement,\n{seller}",
        "email_body_on_receipt": "Bonjour {name},\n\nVeuillez trouver ci-joint la facture "
        "{number} du {date} d'un montant de {amount}, payable à réception.\n\n"
        "Cordialement,\n{seller}",
    },
    "pt": {
        "invoice": "Fatura",
        "number": "Número da fatura",
        "date": "Data da fatura",
        "due": "Data de vencimento",
        "period": "Período de faturação",
        "account": "Conta",
        "customer": "Cliente",
        "vat_id": "NIF",
        "continued": "continuação",
        "page": "Página",
        "pdf_description": "Fatura {number} de {date}",
        "pdf_keywords": "Factur-X, EN 16931, fatura",
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
        "total_tax": "Total do IVA",
        "total_gross": "Total com IVA",
        "line_cancelled": "{name} (cancelado em {date})",
        "line_changed": "{name} (alterado em {date})",
        "line_renewed": "{name} (renovado em {date})",
        "payment": "Pagamento",
        "terms_on_receipt": "Pagamento na receção da fatura.",
        "terms_one_day": "Pagável no prazo de 1 dia, até {due}.",
        "terms_days": "Pagável no prazo de {days} dias, até {due}.",
        "transfer": "Por favor, pague por transferência bancária para",
        "iban": "IBAN",
        "bic": "BIC",
        "reference": "Referência",
        "direct_debit": "O valor será cobrado por débito direto SEPA na conta",
        "prenotification": "Pré-notificação: {amount} serão debitados em {date}.",
        "mandate": "Mandato",
        "creditor_id": "Identificador de credor SEPA",
        "card": "O valor será debitado no seu cartão registado.",
        "email_subject": "Fatura {number}",
        "email_body": "Caro(a) {name},\n\nEnviamos em anexo a fatura {number} de {date} no "
        "valor de {amount}, com vencimento em {due}.\n\nCom os melhores cumprimentos,\n{seller}",
        "email_body_on_receipt": "Caro(a) {name},\n\nEnviamos em anexo a fatura {number} de "
        "{date} no valor de {amount}, a pagar na receção da fatura.\n\n"
        "Com os melhores cumprimentos,\n{seller}",
    },
    "de": {
        "invoice": "Rechnung",
        "number": "Rechnungsnummer",
        "date": "Rechnungsdatum",
        "due": "Fällig am",
        "period": "Leistungszeitraum",
        "account": "Kundennummer",
        "customer": "Kunde",
        "vat_id": "USt-IdNr.",
        "continued": "Fortsetzung",
        "page": "Seite",
        "pdf_description": "Rechnung {number} vom {date}",
        "pdf_keywords": "Factur-X, EN 16931, Rechnung",
        "description": "Bezeichnung",
        "line_period": "Zeitraum",
        "quantity": "Menge",
        "unit_price": "Einzelpreis",
        "vat": "USt.",
        "amount": "Betrag",
        "tax_summary": "Umsatzsteuer",
        "rate": "Satz",
        "base": "Nettobetrag",
        "total_net": "Zwischensumme",
        "total_tax": "USt. gesamt",
        "total_gross": "Gesamtbetrag",
        "line_cancelled": "{name} (gekündigt zum {date})",
        "line_changed": "{name} (geändert zum {date})",
        "line_renewed": "{name} (verlängert am {date})",
        "payment": "Zahlung",
        "terms_on_receipt": "Zahlbar sofort nach Erhalt.",
        "terms_one_day": "Zahlbar innerhalb von 1 Tag ohne Abzug bis zum {due}.",
        "terms_days": "Zahlbar innerhalb von {days} Tagen ohne Abzug bis zum {due}.",
        "transfer": "Bitte überweisen Sie den Betrag auf das Konto",
        "iban": "IBAN",
        "bic": "BIC",
        "reference": "Verwendungszweck",
        "direct_debit": "Der Betrag wird per SEPA-Lastschrift eingezogen von",
        "prenotification": "Vorabankündigung: {amount} werden am {date} eingezogen.",
        "mandate": "Mandatsreferenz",
        "creditor_id": "Gläubiger-Identifikationsnummer",
        "card": "Der Betrag wird von Ihrer hinterlegten Karte abgebucht.",
        "email_subject": "Rechnung {number}",
        "email_body": "Guten Tag {name},\n\nanbei erhalten Sie die Rechnung {number} vom {date} "
        "über {amount}, fällig am {due}.\n\nMit freundlichen Grüßen\n{seller}",
        "email_body_on_receipt": "Guten Tag {name},\n\nanbei erhalten Sie die Rechnung {number} "
        "vom {date} über {amount}, zahlbar sofort nach Erhalt.\n\nMit freundlichen Grüßen\n"
        "{seller}",
    },
}

SAME_AS_ENGLISH: dict[str, frozenset[str]] = {
    "fr": frozenset({"iban", "bic", "page"}),
    "pt": frozenset({"iban", "bic"}),
    "de": frozenset({"iban", "bic"}),
}
"""Keys whose translation is genuinely the English word (the completeness test allows them)."""


def words(language: str) -> dict[str, str]:
    """The catalogue of ``language`` (``fr``, ``fr-BE``, ``fr_BE``); English when it has none."""
    base = (language or "en").replace("-", "_").split("_")[0].lower()
    return CATALOGUE.get(base, CATALOGUE["en"])


def translate(language: str, key: str, **params: Any) -> str:
    """The text of ``key`` in ``language``, its placeholders filled (a missing key raises)."""
    text = words(language)[key]
    return text.format(**params) if params else text
