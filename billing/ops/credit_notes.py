"""A credit note issued by hand on an issued invoice (``billing credit-note``).

The invoice is never edited. The credit note is a bill of its own in the ``CN`` series, type
381, whose lines credit lines of the invoice (``billing.domain.credit_notes.plan_credit``):
each line is a charge (``crl:{credited charge}:{n}``, kind ``adjustment``) naming the charge
it credits (``corrects_charge_id``), so the same rule that names the invoice a correction
corrects names it here, and what remains to credit on a line counts every correction of it,
whoever wrote it. Voiding an invoice is a credit note of all its lines (``--all``).

In one transaction, under the account's and the invoice's row locks: the bill, its charges
(which are its lines, each written once), its number (``CN`` alone, gapless), the balance
moved by its gross, and the credit applied to the account's open bills, the corrected invoice
first. What is left is credit on the account (a negative balance), refunded by the refund
step of the next bill day per the payment rules (docs/payments.md). Its documents (Factur-X
PDF, XML) and e-mail are made by the next bill day's documents step, which takes every
numbered bill never queued, or at once by ``billing run render-invoices --bill-no CN-...``.
Anything refused raises ``CreditNoteError`` naming the invoice and the line, and writes
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain import charge_keys
from billing.domain.charge_keys import KeyKind
from billing.domain.corrections import CorrectedBill, line_description
from billing.domain.credit_notes import (
    CREDIT_NOTE,
    CREDIT_NOTE_SERIES,
    Creditable,
    CreditNoteError,
    plan_credit,
)
from billing.domain.enums import BillStatus, ChargeKind, ChargeStatus
from billing.domain.money import exact_sum
from billing.ops.numbering import assign_bill_numbers
from billing.payments.ledger import bill_issued, lock_account
from billing.store.models import LINE_COLUMNS, Bill, Charge, billed_line
from billing.store.sqlkit import bulk_insert, lock_for_update

REASON_LENGTH = 500


@dataclass(frozen=True)
class IssuedCreditNote:
    """What ``issue_credit_note`` issued; amounts as the credit note states them (positive)."""

    bill_id: int
    bill_no: str
    invoice_no: str
    account_ref: str
    currency: str
    lines: int
    net: Decimal
    tax: Decimal
    gross: Decimal
    applied: Decimal
    """How much of it went to the account's open bills; the rest is credit to refund."""


def issue_credit_note(
    session: Session,
    *,
    invoice_no: str,
    lines: Mapping[int, Decimal | None] | None,
    reason: str,
    as_of: date,
) -> IssuedCreditNote:
    """Credit ``lines`` of invoice ``invoice_no`` (position -> net amount, None: what remains
    of it; ``lines=None``: everything that remains, i.e. void it). Never commits."""
    reason = " ".join(reason.split())
    if not reason:
        raise CreditNoteError(f"a credit note on invoice {invoice_no} needs a reason")
    if len(reason) > REASON_LENGTH:
        raise CreditNoteError(f"the reason is longer than {REASON_LENGTH} characters")
    account_id = session.scalar(select(Bill.account_id).where(Bill.bill_no == invoice_no))
    if account_id is None:
        raise CreditNoteError(f"no invoice numbered {invoice_no}")
    account = lock_account(session, account_id)  # first, as payments lock: account, then bills
    invoice = session.scalars(
        lock_for_update(session, select(Bill).where(Bill.bill_no == invoice_no)),
        execution_options={"populate_existing": True},
    ).one()
    if invoice.type_code == CREDIT_NOTE:
        raise CreditNoteError(f"{invoice_no} is a credit note; only an invoice is credited")
    if as_of < invoice.bill_date:
        raise CreditNoteError(
            f"a credit note dated {as_of} cannot precede invoice {invoice_no} "
            f"of {invoice.bill_date}"
        )
    billed = _creditable(session, invoice)
    credits = plan_credit(invoice_no, invoice.currency, [c for c, _ in billed], lines)
    items = {c.charge_id: item for c, item in billed}
    number = 1 + (
        session.scalar(
            select(func.count())
            .select_from(Bill)
            .where(Bill.bill_key.like(f"{charge_keys.prefix(KeyKind.CREDIT_NOTE)}{invoice.id}:%"))
        )
        or 0
    )
    net = exact_sum(c.net for c in credits)
    tax = exact_sum(c.tax for c in credits)
    gross = net + tax
    (bill_id,) = bulk_insert(
        session,
        Bill.__table__,
        [
            {
                "bill_key": charge_keys.credit_note(invoice.id, number),
                "account_id": invoice.account_id,
                "bill_unit_id": invoice.bill_unit_id,
                "series_code": CREDIT_NOTE_SERIES,
                "type_code": CREDIT_NOTE,
                "status": BillStatus.BILLED,
                "bill_date": as_of,
                "due_date": as_of,
                "period_start": min(c.period_start for c in credits),
                "period_end": max(c.period_end for c in credits),
                "currency": invoice.currency,
                "net": net,
                "tax": tax,
                "gross": gross,
                "amount_paid": Decimal(0),
                "note": reason,
            }
        ],
        returning=("id",),
    )[0]
    corrected = CorrectedBill(invoice_no, invoice.bill_date)
    # Each line of the credit note is its own charge, written once, open on it.
    charge_rows = [
        {
            "charge_key": charge_keys.credit_line(c.charge_id, number),
            "account_id": invoice.account_id,
            "bill_unit_id": invoice.bill_unit_id,
            "contract_item_id": items[c.charge_id],
            "kind": ChargeKind.ADJUSTMENT,
            "description": line_description(c.description, corrected),
            "period_start": c.period_start,
            "period_end": c.period_end,
            "bill_on": as_of,
            "quantity": Decimal(1),
            "unit_price": c.net,
            "amount": c.net,
            "currency": invoice.currency,
            "tax_category": c.tax_category,
            "status": ChargeStatus.OPEN,
            "bill_id": bill_id,
            "line_no": position,
            "tax_rate": c.tax_rate,
            "tax": c.tax,
            "vat_category": c.vat_category,
            "immediate": False,
            "created_on": as_of,
            "corrects_charge_id": c.charge_id,
        }
        for position, c in enumerate(credits, start=1)
    ]
    bulk_insert(session, Charge.__table__, charge_rows)
    assign_bill_numbers(session, [CREDIT_NOTE_SERIES])
    applied = bill_issued(session, account.id, gross, first_bill_id=invoice.id)
    bill_no = session.scalar(select(Bill.bill_no).where(Bill.id == bill_id))
    return IssuedCreditNote(
        bill_id=bill_id,
        bill_no=bill_no or "",
        invoice_no=invoice_no,
        account_ref=account.ref,
        currency=invoice.currency,
        lines=len(credits),
        net=-net,
        tax=-tax,
        gross=-gross,
        applied=applied,
    )


def _creditable(session: Session, invoice: Bill) -> list[tuple[Creditable, int | None]]:
    """The invoice's lines with what remains of each (its net plus every correction naming its
    charge that is not cancelled, billed or not), and each line's contract item."""
    rows = [
        (billed_line(row), row.contract_item_id, row.kind == ChargeKind.DISCOUNT)
        for row in session.execute(
            select(*LINE_COLUMNS, Charge.contract_item_id, Charge.kind)
            .where(Charge.bill_id == invoice.id)
            .order_by(Charge.line_no)
        )
    ]
    charge_ids = [line.charge_id for line, _, _ in rows]
    corrections: dict[int | None, Decimal] = {
        corrected: amount
        for corrected, amount in session.execute(
            select(Charge.corrects_charge_id, func.sum(Charge.amount))
            .where(
                Charge.corrects_charge_id.in_(charge_ids),
                Charge.status != ChargeStatus.CANCELLED,
            )
            .group_by(Charge.corrects_charge_id)
        )
    }
    return [
        (
            Creditable(
                position=line.position,
                charge_id=line.charge_id,
                description=line.description,
                period_start=line.period_start,
                period_end=line.period_end,
                net=line.net,
                remaining=line.net + (corrections.get(line.charge_id) or Decimal(0)),
                tax_rate=line.tax_rate,
                tax_category=line.tax_category,
                vat_category=line.vat_category,
                discount=discount,
            ),
            item,
        )
        for line, item, discount in rows
    ]
