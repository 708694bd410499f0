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
        "preview": "PREVIEW",
        "preview_mark": "PREVIEW — not an invoice",
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
        "discount_line": "Discount",
        "discount_reversal_line": "Discount given back",
        "commitment_line": "Minimum commitment",
        "prepayment_line": "Prepaid credits",
        "prorated_days": "{days} of {cycle} days",
        "tier_units": "Units {low} – {high}",
        "volume_tier": "All units at the {low} – {high} tier",
        "volume_tier_from": "All units at the tier from {low}",
        "packages_of": "Packages of {size}",
        "tier_flat_fee": "Tier flat fee",
        "line_period": "Period",
        "quantity": "Quantity",
        "unit_price": "Unit price",
        "vat": "VAT",
        "amount": "Amount",
        "tax_summary": "VAT summary",
        "vat_exempt": "VAT exempt",
        "vat_reverse_charge": "Reverse charge",
        "vat_intra_community": "Exempt intra-community supply",
        "vat_export": "Exempt export",
        "vat_outside_scope": "Not subject to VAT",
        "rate": "Rate",
        "base": "Taxable amount",
        "total_net": "Total excl. VAT",
        "total_tax": "Total VAT",
        "total_gross": "Total incl. VAT",
        "line_cancelled": "{name} (cancelled on {date})",
        "line_changed": "{name} (changed on {date})",
        "line_renewed": "{name} (renewed on {date})",
        "line_corrects": "{line}, corrects invoice {invoice}",
        "line_corrects_bill_of": "{line}, corrects the invoice of {date}",
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
        "legal_late_penalty_fr": (
            "Late payment penalties: the European Central Bank's rate on its most recent "
            "refinancing operation plus 10 percentage points (French Commercial Code, art. "
            "L441-10)."
        ),
        "legal_recovery_indemnity_fr": (
            "Fixed compensation for recovery costs in case of late payment: EUR 40 (French "
            "Commercial Code, art. L441-10 and D441-5)."
        ),
        "legal_early_discount_fr": "No discount for early payment.",
        "legal_late_interest_pt": (
            "Late payment interest at the statutory rate for commercial transactions "
            "(Portuguese Decree-Law 62/2013, art. 4)."
        ),
        "legal_recovery_indemnity_pt": (
            "Compensation for recovery costs: EUR 40 (Portuguese Decree-Law 62/2013, art. 7)."
        ),
        "legal_late_interest_de": (
            "Default interest: 9 percentage points above the base rate (German Civil Code, § "
            "288(2))."
        ),
        "legal_recovery_flat_fee_de": (
            "Flat-rate compensation for late payment: EUR 40 (German Civil Code, § 288(5))."
        ),
        "mandate": "Mandate",
        "creditor_id": "Creditor identifier",
        "card": "The amount will be charged to your card on file.",
        # e-mail
        # credit notes
        "credit_note": "Credit note",
        "credit_note_number": "Credit note number",
        "credit_note_date": "Credit note date",
        "credit_note_corrects": "Corrects invoice {invoice} of {date}.",
        "credit_note_reason": "Reason: {reason}",
        "credit_note_terms": (
            "This credit is applied to your open invoices; what remains is refunded to you."
        ),
        "pdf_description_credit_note": "Credit note {number} of {date}",
        "email_subject_credit_note": "Credit note {number}",
        "email_body_credit_note": "Dear {name},\n\nPlease find attached credit note {number} "
        "of {date} for {amount}. It is applied to your open invoices; what remains is refunded "
        "to you.\n\nKind regards,\n{seller}",
        "email_subject": "Invoice {number}",
        "email_body": "Dear {name},\n\nPlease find attached invoice {number} of {date} "
        "for {amount}, due on {due}.\n\nKind regards,\n{seller}",
        "email_body_on_receipt": "Dear {name},\n\nPlease find attached invoice {number} of "
        "{date} for {amount}, due on receipt.\n\nKind regards,\n{seller}",
    },
    "fr": {
        "invoice": "Facture",
        "preview": "APERÇU",
        "preview_mark": "APERÇU — ceci n’est pas une facture",
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
        "discount_line": "Remise",
        "discount_reversal_line": "Remise restituée",
        "commitment_line": "Minimum d'engagement",
        "prepayment_line": "Crédits prépayés",
        "prorated_days": "{days} jours sur {cycle}",
        "tier_units": "Unités {low} – {high}",
        "volume_tier": "Toutes les unités au palier {low} – {high}",
        "volume_tier_from": "Toutes les unités au palier à partir de {low}",
        "packages_of": "Paquets de {size}",
        "tier_flat_fee": "Forfait du palier",
        "line_period": "Période",
        "quantity": "Quantité",
        "unit_price": "Prix unitaire",
        "vat": "TVA",
        "amount": "Montant HT",
        "tax_summary": "Récapitulatif TVA",
        "vat_exempt": "Exonération de TVA",
        "vat_reverse_charge": "Autoliquidation",
        "vat_intra_community": "Livraison intracommunautaire exonérée",
        "vat_export": "Exportation exonérée",
        "vat_outside_scope": "Non soumis à la TVA",
        "rate": "Taux",
        "base": "Base HT",
        "total_net": "Total HT",
        "total_tax": "Total TVA",
        "total_gross": "Total TTC",
        "line_cancelled": "{name} (résilié le {date})",
        "line_changed": "{name} (modifié le {date})",
        "line_renewed": "{name} (renouvelé le {date})",
        "line_corrects": "{line}, rectifie la facture {invoice}",
        "line_corrects_bill_of": "{line}, rectifie la facture du {date}",
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
        "legal_late_penalty_fr": (
            "Pénalités de retard : taux de la plus récente opération de refinancement de la "
            "Banque centrale européenne majoré de 10 points (art. L441-10 du Code de "
            "commerce)."
        ),
        "legal_recovery_indemnity_fr": (
            "Indemnité forfaitaire pour frais de recouvrement en cas de retard de paiement : "
            "40 EUR (art. L441-10 et D441-5 du Code de commerce)."
        ),
        "legal_early_discount_fr": "Pas d'escompte pour paiement anticipé.",
        "legal_late_interest_pt": (
            "Intérêts de retard au taux légal des transactions commerciales (décret-loi "
            "portugais n° 62/2013, art. 4)."
        ),
        "legal_recovery_indemnity_pt": (
            "Indemnité pour frais de recouvrement : 40 EUR (décret-loi portugais n° 62/2013, "
            "art. 7)."
        ),
        "legal_late_interest_de": (
            "Intérêts de retard : 9 points au-dessus du taux de base (Code civil allemand, § "
            "288 al. 2)."
        ),
        "legal_recovery_flat_fee_de": (
            "Indemnité forfaitaire de retard : 40 EUR (Code civil allemand, § 288 al. 5)."
        ),
        "mandate": "Mandat",
        "creditor_id": "Identifiant créancier SEPA",
        "card": "Le montant sera débité de votre carte enregistrée.",
        # credit notes
        "credit_note": "Avoir",
        "credit_note_number": "Numéro d'avoir",
        "credit_note_date": "Date de l'avoir",
        "credit_note_corrects": "Rectifie la facture {invoice} du {date}.",
        "credit_note_reason": "Motif : {reason}",
        "credit_note_terms": (
            "Cet avoir est imputé sur vos factures ouvertes ; le solde vous est remboursé."
        ),
        "pdf_description_credit_note": "Avoir {number} du {date}",
        "email_subject_credit_note": "Avoir {number}",
        "email_body_credit_note": "Bonjour {name},\n\nVeuillez trouver ci-joint l'avoir "
        "{number} du {date} d'un montant de {amount}. Il est imputé sur vos factures ouvertes ; "
        "le solde vous est remboursé.\n\nCordialement,\n{seller}",
        "email_subject": "Facture {number}",
        "email_body": "Bonjour {name},\n\nVeuillez trouver ci-joint la facture {number} du "
        "{date} d'un montant de {amount}, échéance le {due}.\n\nCordialement,\n{seller}",
        "email_body_on_receipt": "Bonjour {name},\n\nVeuillez trouver ci-joint la facture "
        "{number} du {date} d'un montant de {amount}, payable à réception.\n\n"
        "Cordialement,\n{seller}",
    },
    "pt": {
        "invoice": "Fatura",
        "preview": "PRÉ-VISUALIZAÇÃO",
        "preview_mark": "PRÉ-VISUALIZAÇÃO — não é uma fatura",
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
        "discount_line": "Desconto",
        "discount_reversal_line": "Desconto devolvido",
        "commitment_line": "Compromisso mínimo",
        "prepayment_line": "Créditos pré-pagos",
        "prorated_days": "{days} de {cycle} dias",
        "tier_units": "Unidades {low} – {high}",
        "volume_tier": "Todas as unidades no escalão {low} – {high}",
        "volume_tier_from": "Todas as unidades no escalão a partir de {low}",
        "packages_of": "Pacotes de {size}",
        "tier_flat_fee": "Taxa fixa do escalão",
        "line_period": "Período",
        "quantity": "Quantidade",
        "unit_price": "Preço unitário",
        "vat": "IVA",
        "amount": "Valor",
        "tax_summary": "Resumo do IVA",
        "vat_exempt": "Isento de IVA",
        "vat_reverse_charge": "Autoliquidação",
        "vat_intra_community": "Transmissão intracomunitária isenta",
        "vat_export": "Exportação isenta",
        "vat_outside_scope": "Não sujeito a IVA",
        "rate": "Taxa",
        "base": "Base tributável",
        "total_net": "Total sem IVA",
        "total_tax": "Total do IVA",
        "total_gross": "Total com IVA",
        "line_cancelled": "{name} (cancelado em {date})",
        "line_changed": "{name} (alterado em {date})",
        "line_renewed": "{name} (renovado em {date})",
        "line_corrects": "{line}, retifica a fatura {invoice}",
        "line_corrects_bill_of": "{line}, retifica a fatura de {date}",
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
        "legal_late_penalty_fr": (
            "Penalidades por atraso: taxa da mais recente operação de refinanciamento do "
            "Banco Central Europeu acrescida de 10 pontos percentuais (Código Comercial "
            "francês, art. L441-10)."
        ),
        "legal_recovery_indemnity_fr": (
            "Indemnização fixa por custos de cobrança em caso de atraso no pagamento: 40 EUR "
            "(Código Comercial francês, art. L441-10 e D441-5)."
        ),
        "legal_early_discount_fr": "Sem desconto por pagamento antecipado.",
        "legal_late_interest_pt": (
            "Juros de mora à taxa legal aplicável às transações comerciais (Decreto-Lei n.º "
            "62/2013, art. 4.º)."
        ),
        "legal_recovery_indemnity_pt": (
            "Indemnização pelos custos de cobrança: 40 EUR (Decreto-Lei n.º 62/2013, art. 7.º)."
        ),
        "legal_late_interest_de": (
            "Juros de mora: 9 pontos percentuais acima da taxa de base (Código Civil alemão, "
            "§ 288, n.º 2)."
        ),
        "legal_recovery_flat_fee_de": (
            "Indemnização fixa por atraso no pagamento: 40 EUR (Código Civil alemão, § 288, n.º 5)."
        ),
        "mandate": "Mandato",
        "creditor_id": "Identificador de credor SEPA",
        "card": "O valor será debitado no seu cartão registado.",
        # credit notes
        "credit_note": "Nota de crédito",
        "credit_note_number": "Número da nota de crédito",
        "credit_note_date": "Data da nota de crédito",
        "credit_note_corrects": "Retifica a fatura {invoice} de {date}.",
        "credit_note_reason": "Motivo: {reason}",
        "credit_note_terms": (
            "Este crédito é imputado às suas faturas em aberto; o restante é-lhe reembolsado."
        ),
        "pdf_description_credit_note": "Nota de crédito {number} de {date}",
        "email_subject_credit_note": "Nota de crédito {number}",
        "email_body_credit_note": "Caro(a) {name},\n\nEnviamos em anexo a nota de crédito "
        "{number} de {date} no valor de {amount}. É imputada às suas faturas em aberto; o "
        "restante é-lhe reembolsado.\n\nCom os melhores cumprimentos,\n{seller}",
        "email_subject": "Fatura {number}",
        "email_body": "Caro(a) {name},\n\nEnviamos em anexo a fatura {number} de {date} no "
        "valor de {amount}, com vencimento em {due}.\n\nCom os melhores cumprimentos,\n{seller}",
        "email_body_on_receipt": "Caro(a) {name},\n\nEnviamos em anexo a fatura {number} de "
        "{date} no valor de {amount}, a pagar na receção da fatura.\n\n"
        "Com os melhores cumprimentos,\n{seller}",
    },
    "de": {
        "invoice": "Rechnung",
        "preview": "VORSCHAU",
        "preview_mark": "VORSCHAU — keine Rechnung",
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
        "discount_line": "Rabatt",
        "discount_reversal_line": "Rabatt zurückgegeben",
        "commitment_line": "Mindestumsatz",
        "prepayment_line": "Guthaben",
        "prorated_days": "{days} von {cycle} Tagen",
        "tier_units": "Einheiten {low} – {high}",
        "volume_tier": "Alle Einheiten zur Staffel {low} – {high}",
        "volume_tier_from": "Alle Einheiten zur Staffel ab {low}",
        "packages_of": "Pakete zu {size}",
        "tier_flat_fee": "Grundgebühr der Staffel",
        "line_period": "Zeitraum",
        "quantity": "Menge",
        "unit_price": "Einzelpreis",
        "vat": "USt.",
        "amount": "Betrag",
        "tax_summary": "Umsatzsteuer",
        "vat_exempt": "Steuerfrei",
        "vat_reverse_charge": "Steuerschuldnerschaft des Leistungsempfängers",
        "vat_intra_community": "Steuerfreie innergemeinschaftliche Lieferung",
        "vat_export": "Steuerfreie Ausfuhrlieferung",
        "vat_outside_scope": "Nicht steuerbar",
        "rate": "Satz",
        "base": "Nettobetrag",
        "total_net": "Zwischensumme",
        "total_tax": "USt. gesamt",
        "total_gross": "Gesamtbetrag",
        "line_cancelled": "{name} (gekündigt zum {date})",
        "line_changed": "{name} (geändert zum {date})",
        "line_renewed": "{name} (verlängert am {date})",
        "line_corrects": "{line}, berichtigt Rechnung {invoice}",
        "line_corrects_bill_of": "{line}, berichtigt die Rechnung vom {date}",
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
        "legal_late_penalty_fr": (
            "Verzugsstrafen: Zinssatz der jüngsten Refinanzierungsoperation der Europäischen "
            "Zentralbank zuzüglich 10 Prozentpunkten (frz. Handelsgesetzbuch, Art. L441-10)."
        ),
        "legal_recovery_indemnity_fr": (
            "Pauschale Entschädigung für Beitreibungskosten bei Zahlungsverzug: 40 EUR (frz. "
            "Handelsgesetzbuch, Art. L441-10 und D441-5)."
        ),
        "legal_early_discount_fr": "Kein Skonto bei vorzeitiger Zahlung.",
        "legal_late_interest_pt": (
            "Verzugszinsen zum gesetzlichen Satz für Handelsgeschäfte (portug. Gesetzesdekret"
            " 62/2013, Art. 4)."
        ),
        "legal_recovery_indemnity_pt": (
            "Entschädigung für Beitreibungskosten: 40 EUR (portug. Gesetzesdekret 62/2013, Art. 7)."
        ),
        "legal_late_interest_de": (
            "Verzugszinsen: 9 Prozentpunkte über dem Basiszinssatz (§ 288 Abs. 2 BGB)."
        ),
        "legal_recovery_flat_fee_de": "Verzugspauschale: 40 EUR (§ 288 Abs. 5 BGB).",
        "mandate": "Mandatsreferenz",
        "creditor_id": "Gläubiger-Identifikationsnummer",
        "card": "Der Betrag wird von Ihrer hinterlegten Karte abgebucht.",
        # credit notes
        "credit_note": "Gutschrift",
        "credit_note_number": "Gutschriftsnummer",
        "credit_note_date": "Gutschriftsdatum",
        "credit_note_corrects": "Korrigiert die Rechnung {invoice} vom {date}.",
        "credit_note_reason": "Grund: {reason}",
        "credit_note_terms": (
            "Die Gutschrift wird mit Ihren offenen Rechnungen verrechnet; der Rest wird Ihnen "
            "erstattet."
        ),
        "pdf_description_credit_note": "Gutschrift {number} vom {date}",
        "email_subject_credit_note": "Gutschrift {number}",
        "email_body_credit_note": "Guten Tag {name},\n\nanbei erhalten Sie die Gutschrift "
        "{number} vom {date} über {amount}. Sie wird mit Ihren offenen Rechnungen verrechnet; "
        "der Rest wird Ihnen erstattet.\n\nMit freundlichen Grüßen\n{seller}",
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
