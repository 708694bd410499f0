"""The invoice XML export (``urn:openbill:invoice:1``, schemas/invoice.xsd), written streamed.

``write_invoices_xml`` writes one ``<invoices>`` document invoice by invoice with
``lxml.etree.xmlfile``: only the invoice being written is in memory, so a million invoices
stream through. ``invoice_xml`` gives the same document with one invoice (stored per bill).
Amounts carry the currency's minor units; quantities, prices and rates their own decimals.
Periods are half-open, as in the engine: ``end`` is the first day after the period.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from io import BytesIO
from typing import IO

from lxml import etree
from lxml.builder import ElementMaker

from billing.documents.model import Invoice, Party
from billing.documents.seller import Seller
from billing.domain.money import LINE_ROUNDING, quantize_money
from billing.domain.tax import TaxLine, tax_summary

NAMESPACE = "urn:openbill:invoice:1"
E = ElementMaker(namespace=NAMESPACE, nsmap={None: NAMESPACE})


def _number(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _party(tag: str, party: Party | Seller, **attrs: str) -> etree._Element:
    element = E(
        tag,
        E.name(party.name),
        E.address(
            E.line(party.address_line),
            E.postalCode(party.postal_code),
            E.city(party.city),
            E.country(party.country),
        ),
        **attrs,
    )
    if party.vat_id:
        element.append(E.vatId(party.vat_id))
    if party.email:
        element.append(E.email(party.email))
    return element


def invoice_element(invoice: Invoice) -> etree._Element:
    """One ``<invoice>`` element."""
    cur = invoice.currency

    def money(value: Decimal) -> str:
        return format(quantize_money(value, cur, LINE_ROUNDING), "f")

    payment = invoice.payment
    pay = E.payment(method=str(payment.method), termsDays=str(payment.terms_days))
    if payment.iban:
        pay.append(E.iban(payment.iban))
    if payment.bic:
        pay.append(E.bic(payment.bic))
    if payment.mandate_ref:
        mandate = E.mandate(ref=payment.mandate_ref)
        if payment.mandate_date:
            mandate.set("date", payment.mandate_date.isoformat())
        pay.append(mandate)
    summary = tax_summary(
        TaxLine(li.tax_category, li.tax_rate, li.net, li.tax) for li in invoice.lines
    )
    return E.invoice(
        E.billDate(invoice.bill_date.isoformat()),
        E.dueDate(invoice.due_date.isoformat()),
        E.period(start=invoice.period_start.isoformat(), end=invoice.period_end.isoformat()),
        E.currency(cur),
        E.language(invoice.language),
        _party("buyer", invoice.buyer, ref=invoice.account_ref),
        pay,
        E.lines(
            *(
                E.line(
                    E.description(line.description),
                    E.period(start=line.period_start.isoformat(), end=line.period_end.isoformat()),
                    E.quantity(_number(line.quantity)),
                    E.unitPrice(_number(line.unit_price)),
                    E.net(money(line.net)),
                    E.taxCategory(line.tax_category),
                    E.vatCategory(line.vat.value),
                    E.taxRate(_number(line.tax_rate)),
                    E.tax(money(line.tax)),
                    E.gross(money(line.gross)),
                    position=str(line.position),
                )
                for line in invoice.lines
            )
        ),
        E.taxSummary(
            *(
                E.tax(
                    E.base(money(row.base)),
                    E.amount(money(row.tax)),
                    category=row.category,
                    rate=_number(row.rate),
                )
                for row in summary
            )
        ),
        E.totals(
            E.net(money(invoice.net)), E.tax(money(invoice.tax)), E.gross(money(invoice.gross))
        ),
        number=invoice.bill_no,
        series=invoice.series,
        **(
            {"type": invoice.type_code, "corrects": " ".join(p.bill_no for p in invoice.corrects)}
            if invoice.is_credit_note
            else {}
        ),
    )


def write_invoices_xml(invoices: Iterable[Invoice], seller: Seller, out: IO[bytes]) -> int:
    """Stream an ``<invoices>`` document to ``out``, one invoice at a time; return the count."""
    count = 0
    with etree.xmlfile(out, encoding="UTF-8") as xf:
        xf.write_declaration()
        with xf.element(f"{{{NAMESPACE}}}invoices", nsmap={None: NAMESPACE}):
            xf.write(_party("seller", seller))
            for invoice in invoices:
                xf.write(invoice_element(invoice))
                xf.flush()
                count += 1
    return count


def invoice_xml(invoice: Invoice, seller: Seller) -> bytes:
    """The export document of a single invoice."""
    buffer = BytesIO()
    write_invoices_xml([invoice], seller, buffer)
    return buffer.getvalue()
