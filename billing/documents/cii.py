"""The invoice as a UN/CEFACT Cross-Industry-Invoice (CII D16B), Factur-X EN 16931 profile.

Built with lxml and embedded into the PDF (Factur-X / ZUGFeRD). Periods in the engine are
half-open ``[start, end)``; EN 16931 periods are inclusive, so the last day is ``end - 1``.
The VAT breakdown (BG-23) sums the lines' rounded taxes, exactly as the bill does; see
docs/documents.md for how that meets BR-S-09 / BR-CO-14.

A discount line (``Line.is_allowance``) is no invoice line (BG-25) but a document-level
allowance (BG-20): its amount (BT-92, what it takes off, so positive on an invoice), its text
(BT-97), its reason code (BT-98) and the VAT category and rate of what it reduces (BT-95,
BT-96). The totals are then BT-106 the sum of the invoice lines, BT-107 the sum of the
allowances and BT-109 = BT-106 - BT-107, the bill's net; each category's base in the breakdown
(BT-116) is its lines less its allowances (BR-S-08), its tax still the sum of every line's
rounded tax, the allowances' included.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from lxml import etree

from billing.documents.errors import InvoiceValidationError
from billing.documents.formatting import Formatter, unsigned_zero
from billing.documents.legal import exemption_text
from billing.documents.model import Invoice, Line
from billing.documents.seller import Seller
from billing.domain.credit_notes import INVOICE
from billing.domain.money import LINE_ROUNDING, exact_product, exact_sum, quantize_money
from billing.domain.pricing import UNIT_PRICE_PLACES
from billing.domain.tax import TaxLine, tax_summary
from billing.domain.vat import VatCategory
from billing.store.models import PaymentMethod

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}
EN16931 = "urn:cen.eu:en16931:2017"
COMMERCIAL_INVOICE = INVOICE  # BT-3 of an invoice; a credit note's is CREDIT_NOTE (381)
PRICE_STEP = Decimal(1).scaleb(-UNIT_PRICE_PLACES)  # the finest net price written as BT-146 alone
UNIT_ONE = "C62"  # UN/ECE Recommendation 20: "one" (a unit without dimension)
PAYMENT_MEANS = {  # UNCL 4461
    PaymentMethod.INVOICE: "58",  # SEPA credit transfer
    PaymentMethod.CARD: "48",  # bank card
    PaymentMethod.DIRECT_DEBIT: "59",  # SEPA direct debit
}


def inclusive_end(start: date, end: date) -> date:
    """The last day of a half-open period ``[start, end)`` (a one-day period ends on start)."""
    return max(start, end - timedelta(days=1))


def _amount(value: Decimal, currency: str) -> str:
    return format(unsigned_zero(quantize_money(value, currency, LINE_ROUNDING)), "f")


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text not in ("-0", "") else "0"


def _percent(rate: Decimal) -> str:
    return _number(rate * 100)


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    prefix, name = tag.split(":")
    element = etree.SubElement(parent, f"{{{NSMAP[prefix]}}}{name}", attrs)
    if text is not None:
        element.text = text
    return element


def _date(parent: etree._Element, tag: str, value: date) -> None:
    _el(_el(parent, tag), "udt:DateTimeString", value.strftime("%Y%m%d"), format="102")


def _party(
    parent: etree._Element, tag: str, name: str, address: tuple[str, ...], **ids: str
) -> None:
    party = _el(parent, tag)
    _el(party, "ram:Name", name)
    if ids.get("legal_id"):
        _el(
            _el(party, "ram:SpecifiedLegalOrganization"), "ram:ID", ids["legal_id"], schemeID="0002"
        )
    postal_code, line_one, city, country = address
    postal = _el(party, "ram:PostalTradeAddress")
    if postal_code:
        _el(postal, "ram:PostcodeCode", postal_code)
    if line_one:
        _el(postal, "ram:LineOne", line_one)
    if city:
        _el(postal, "ram:CityName", city)
    _el(postal, "ram:CountryID", country)
    if ids.get("email"):
        _el(_el(party, "ram:URIUniversalCommunication"), "ram:URIID", ids["email"], schemeID="EM")
    if ids.get("vat_id"):
        _el(_el(party, "ram:SpecifiedTaxRegistration"), "ram:ID", ids["vat_id"], schemeID="VA")


def line_price(
    quantity: Decimal, unit_price: Decimal, net: Decimal, line: Line | None = None
) -> tuple[Decimal, Decimal, Decimal | None]:
    """A line's billed quantity (BT-129), net price (BT-146) and price base quantity (BT-149,
    None: 1) such that ``quantity x price / basis == net`` exactly.

    The stored unit price is kept when it multiplies out. It is an average for tiered, volume,
    package and prorated lines, so otherwise the price is ``net / quantity`` when that division
    ends within ``UNIT_PRICE_PLACES`` decimals, and else the line's net per its whole quantity
    (price ``net``, base quantity ``quantity``: 196.50 per 99 250). BR-27: the price is never
    negative, so a credit bills a negative quantity; a base quantity is always positive.
    """
    if exact_product(quantity, unit_price) == net:
        return (quantity, unit_price, None) if unit_price >= 0 else (-quantity, -unit_price, None)
    if quantity == 0:
        where = f"line {line.position}" if line is not None else "a line"
        raise InvoiceValidationError(
            f"CII {where}", [f"quantity 0 cannot bill a net of {net} (BT-129 x BT-146)"]
        )
    exact = Fraction(net) / Fraction(quantity)
    price = Decimal(exact.numerator) / Decimal(exact.denominator)
    if price == price.quantize(PRICE_STEP) and exact_product(quantity, price) == net:
        return (quantity, price, None) if price >= 0 else (-quantity, -price, None)
    return (abs(quantity) if net >= 0 else -abs(quantity)), abs(net), abs(quantity)


def _line(parent: etree._Element, line: Line, currency: str) -> None:
    item = _el(parent, "ram:IncludedSupplyChainTradeLineItem")
    _el(_el(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(line.position))
    _el(_el(item, "ram:SpecifiedTradeProduct"), "ram:Name", line.description)
    quantity, price, basis = line_price(
        line.quantity, line.unit_price, quantize_money(line.net, currency, LINE_ROUNDING), line
    )
    agreement = _el(item, "ram:SpecifiedLineTradeAgreement")
    net_price = _el(agreement, "ram:NetPriceProductTradePrice")
    _el(net_price, "ram:ChargeAmount", _number(price))
    if basis is not None:  # BT-149, in BT-129's unit (BT-150 = BT-130)
        _el(net_price, "ram:BasisQuantity", _number(basis), unitCode=UNIT_ONE)
    delivery = _el(item, "ram:SpecifiedLineTradeDelivery")
    _el(delivery, "ram:BilledQuantity", _number(quantity), unitCode=UNIT_ONE)
    settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
    tax = _el(settlement, "ram:ApplicableTradeTax")
    _el(tax, "ram:TypeCode", "VAT")
    _el(tax, "ram:CategoryCode", line.vat.value)
    if line.vat != VatCategory.OUTSIDE_SCOPE:  # BR-O-05: an O line has no VAT rate
        _el(tax, "ram:RateApplicablePercent", _percent(line.tax_rate))
    period = _el(settlement, "ram:BillingSpecifiedPeriod")
    _date(period, "ram:StartDateTime", line.period_start)
    _date(period, "ram:EndDateTime", inclusive_end(line.period_start, line.period_end))
    summation = _el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
    _el(summation, "ram:LineTotalAmount", _amount(line.net, currency))


def _allowance(parent: etree._Element, line: Line, currency: str) -> None:
    """A discount line as a document-level allowance (BG-20), in the XSD's element order."""
    allowance = _el(parent, "ram:SpecifiedTradeAllowanceCharge")
    _el(_el(allowance, "ram:ChargeIndicator"), "udt:Indicator", "false")
    _el(allowance, "ram:ActualAmount", _amount(-line.net, currency))  # BT-92
    _el(allowance, "ram:ReasonCode", line.allowance_code or "")  # BT-98
    _el(allowance, "ram:Reason", line.description)  # BT-97
    tax = _el(allowance, "ram:CategoryTradeTax")
    _el(tax, "ram:TypeCode", "VAT")
    _el(tax, "ram:CategoryCode", line.vat.value)  # BT-95
    if line.vat != VatCategory.OUTSIDE_SCOPE:  # BR-O-06: an O allowance has no VAT rate
        _el(tax, "ram:RateApplicablePercent", _percent(line.tax_rate))  # BT-96


def tax_breakdown(invoice: Invoice) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """(category, rate, base, tax) per VAT category and rate, from the lines' rounded taxes."""
    rows = tax_summary(
        TaxLine(line.vat.value, line.tax_rate, line.net, line.tax) for line in invoice.lines
    )
    return [(row.category, row.rate, row.base, row.tax) for row in rows]


def _exemptions(
    invoice: Invoice, seller_country: str, f: Formatter
) -> dict[str, tuple[str, str | None]]:
    """Each category's exemption reason text and VATEX code (one per breakdown row: exempt
    lines of several tax classes join their reasons)."""
    found: dict[str, tuple[list[str], str | None]] = {}
    for line in invoice.lines:
        text = exemption_text(line, seller_country, f)
        if text is None:
            continue
        texts, code = found.setdefault(line.vat.value, ([], line.vatex))
        if text not in texts:
            texts.append(text)
    return {category: ("; ".join(texts), code) for category, (texts, code) in found.items()}


def check_tax_breakdown(invoice: Invoice) -> None:
    """Fail as BR-S-09 and BR-CO-17 would: each category's tax (summed from rounded lines) must
    stay within one currency unit of its base times its rate (the Schematron's tolerance)."""
    for category, rate, base, tax in tax_breakdown(invoice):
        expected = quantize_money(base * rate, invoice.currency, LINE_ROUNDING)
        if category == "S" and abs(abs(tax) - abs(expected)) >= 1:
            raise InvoiceValidationError(
                f"invoice {invoice.bill_no}",
                [
                    f"[BR-S-09, BR-CO-17] VAT {_percent(rate)} %: the lines' rounded taxes "
                    f"sum to {tax}, {abs(tax - expected)} away from base {base} x rate = {expected}"
                    " (tolerance: under 1 currency unit)"
                ],
            )


def build_cii(invoice: Invoice, seller: Seller) -> etree._Element:
    """The CII XML tree of an invoice (Factur-X EN 16931 profile)."""
    cur = invoice.currency
    f = Formatter.for_account(invoice.language, invoice.buyer.country, invoice.currency)
    categories = {line.vat for line in invoice.lines}
    outside_scope = VatCategory.OUTSIDE_SCOPE in categories  # BR-O-02: no VAT ids at all
    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=NSMAP)
    context = _el(root, "rsm:ExchangedDocumentContext")
    _el(_el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931)
    document = _el(root, "rsm:ExchangedDocument")
    _el(document, "ram:ID", invoice.bill_no)
    _el(document, "ram:TypeCode", invoice.type_code)  # BT-3: 380 invoice, 381 credit note
    _date(document, "ram:IssueDateTime", invoice.bill_date)
    if seller.legal_form:
        note = _el(document, "ram:IncludedNote")
        _el(note, "ram:Content", seller.legal_form)
        _el(note, "ram:SubjectCode", "REG")
    if invoice.note:  # BT-22: why a credit note was issued by hand
        _el(_el(document, "ram:IncludedNote"), "ram:Content", invoice.note)

    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    items = [line for line in invoice.lines if not line.is_allowance]
    allowances = [line for line in invoice.lines if line.is_allowance]
    for line in items:
        _line(transaction, line, cur)

    agreement = _el(transaction, "ram:ApplicableHeaderTradeAgreement")
    _el(agreement, "ram:BuyerReference", invoice.account_ref)
    _party(
        agreement,
        "ram:SellerTradeParty",
        seller.name,
        (seller.postal_code, seller.address_line, seller.city, seller.country),
        legal_id=seller.legal_id,
        email=seller.email,
        vat_id="" if outside_scope else seller.vat_id,
    )
    buyer = invoice.buyer
    _party(
        agreement,
        "ram:BuyerTradeParty",
        buyer.name,
        (buyer.postal_code, buyer.address_line, buyer.city, buyer.country),
        email=buyer.email,
        vat_id="" if outside_scope else buyer.vat_id or "",
    )
    delivery = _el(transaction, "ram:ApplicableHeaderTradeDelivery")  # must not be empty
    if categories & {VatCategory.INTRA_COMMUNITY, VatCategory.EXPORT}:  # BR-IC-12: BT-80
        ship_to = _el(_el(delivery, "ram:ShipToTradeParty"), "ram:PostalTradeAddress")
        _el(ship_to, "ram:CountryID", buyer.country)
    _date(
        _el(delivery, "ram:ActualDeliverySupplyChainEvent"),
        "ram:OccurrenceDateTime",
        invoice.bill_date,
    )

    settlement = _el(transaction, "ram:ApplicableHeaderTradeSettlement")
    payment = invoice.payment
    credit_note = invoice.is_credit_note
    # A credit note is not collected: no mandate, no debit, no account to pay to (BG-16 is
    # optional); its terms (BT-20) say how the credit is settled.
    direct_debit = payment.method == PaymentMethod.DIRECT_DEBIT and not credit_note
    if direct_debit and seller.creditor_id:
        _el(settlement, "ram:CreditorReferenceID", seller.creditor_id)
    _el(settlement, "ram:PaymentReference", invoice.bill_no)
    _el(settlement, "ram:InvoiceCurrencyCode", cur)
    if not credit_note:
        means = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        _el(means, "ram:TypeCode", PAYMENT_MEANS[payment.method])
        if direct_debit and payment.iban:
            _el(_el(means, "ram:PayerPartyDebtorFinancialAccount"), "ram:IBANID", payment.iban)
        elif payment.method == PaymentMethod.INVOICE and seller.iban:
            _el(_el(means, "ram:PayeePartyCreditorFinancialAccount"), "ram:IBANID", seller.iban)
            if seller.bic:
                institution = _el(means, "ram:PayeeSpecifiedCreditorFinancialInstitution")
                _el(institution, "ram:BICID", seller.bic)
    reasons = _exemptions(invoice, seller.country, f)
    for category, rate, base, tax in tax_breakdown(invoice):
        trade_tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(trade_tax, "ram:CalculatedAmount", _amount(tax, cur))
        _el(trade_tax, "ram:TypeCode", "VAT")
        text, code = reasons.get(category, (None, None))
        if text:  # BT-120 (BR-E-10, BR-AE-10, BR-IC-10, BR-G-10, BR-O-10)
            _el(trade_tax, "ram:ExemptionReason", text)
        _el(trade_tax, "ram:BasisAmount", _amount(base, cur))
        _el(trade_tax, "ram:CategoryCode", category)
        if code:  # BT-121, a VATEX code
            _el(trade_tax, "ram:ExemptionReasonCode", code)
        if category != VatCategory.OUTSIDE_SCOPE:
            _el(trade_tax, "ram:RateApplicablePercent", _percent(rate))
    period = _el(settlement, "ram:BillingSpecifiedPeriod")  # BG-14: as the PDF header prints it
    _date(period, "ram:StartDateTime", invoice.lines_span[0])
    _date(period, "ram:EndDateTime", inclusive_end(*invoice.lines_span))
    for line in allowances:  # BG-20, after BG-14 and before the payment terms
        _allowance(settlement, line, cur)
    terms = _el(settlement, "ram:SpecifiedTradePaymentTerms")
    if credit_note:
        _el(terms, "ram:Description", f.text("credit_note_terms"))  # BT-20
    else:
        _el(terms, "ram:Description", f.terms(payment.terms_days, invoice.due_date))  # BT-20
        _date(terms, "ram:DueDateDateTime", invoice.due_date)
    if direct_debit and payment.mandate_ref:
        _el(terms, "ram:DirectDebitMandateID", payment.mandate_ref)
    totals = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _el(totals, "ram:LineTotalAmount", _amount(exact_sum(line.net for line in items), cur))
    if allowances:  # BT-107
        total = exact_sum(-line.net for line in allowances)
        _el(totals, "ram:AllowanceTotalAmount", _amount(total, cur))
    _el(totals, "ram:TaxBasisTotalAmount", _amount(invoice.net, cur))  # BT-106 - BT-107
    _el(totals, "ram:TaxTotalAmount", _amount(invoice.tax, cur), currencyID=cur)
    _el(totals, "ram:GrandTotalAmount", _amount(invoice.gross, cur))
    _el(totals, "ram:DuePayableAmount", _amount(invoice.gross, cur))
    for preceding in invoice.corrects:  # BG-3: BT-25 the invoice corrected, BT-26 its date
        reference = _el(settlement, "ram:InvoiceReferencedDocument")
        _el(reference, "ram:IssuerAssignedID", preceding.bill_no)
        issued = _el(reference, "ram:FormattedIssueDateTime")
        _el(issued, "qdt:DateTimeString", preceding.bill_date.strftime("%Y%m%d"), format="102")
    return root


def cii_bytes(invoice: Invoice, seller: Seller) -> bytes:
    """The CII XML document as UTF-8 bytes with an XML declaration."""
    return etree.tostring(build_cii(invoice, seller), xml_declaration=True, encoding="UTF-8")
