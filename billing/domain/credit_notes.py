"""Credit notes: when a bill is one, and what a credit note issued by hand may credit (pure).

A correction that lowers what the customer owes is a **credit note**, never a negative
invoice: its own gapless series (``CN``), the document type 381 (UNTDID 1001, EN 16931 BT-3)
and a reference to the invoice(s) it corrects (BG-3: BT-25 number, BT-26 date).

- **Bill day.** A bill whose total (gross) is negative is issued as a credit note in the
  ``CN`` series (``document_for``). A bill whose total is zero or positive stays an invoice in
  its unit's series, with its corrections as negative lines (EN 16931 allows negative lines on
  an invoice; what the customer owes on it still goes up or stays).
- **By hand** (``billing credit-note``). Lines of one issued invoice are credited, each by at
  most what remains un-credited on it: its net, plus every correction naming its charge (a
  termination credit, an adjustment, an earlier credit note). ``plan_credit`` refuses
  anything more, naming the invoice and the line.
- **Discount lines** (negative, ``billing.domain.discounts``) are *reversed*: a credit note's
  line of a discount is positive (it gives back less), by at most what remains of the
  discount. Voiding an invoice (all its lines) reverses its discounts too, so the credit note
  is what the invoice charged, not its list prices; a credit note by hand reverses the
  discount lines it names. A credit note must still lower what is owed: one that would only
  reverse discounts is refused.

Storage keeps the ledger's one sign: a credit note's amounts are stored negative (what it
takes off the balance, as a negative bill did); its documents print them positive, as
EN 16931 wants a credit note to state them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.domain.errors import BillingError
from billing.domain.money import LINE_ROUNDING, minor_unit, quantize_money
from billing.domain.tax import line_tax

INVOICE = "380"
"""UNTDID 1001 "Commercial invoice"."""
CREDIT_NOTE = "381"
"""UNTDID 1001 "Credit note"."""
CREDIT_NOTE_SERIES = "CN"
"""The gapless series every credit note is numbered in (``CN-00000001``), migration 0008."""

ZERO = Decimal(0)


class CreditNoteError(BillingError):
    """A credit note that cannot be issued; the message names the bill and the line."""


def document_for(series_code: str, gross: Decimal) -> tuple[str, str]:
    """(series, document type) a bill of total ``gross`` is issued as: a negative total is a
    credit note in ``CN``; anything else an invoice in the bill unit's ``series_code``."""
    if gross < 0:
        return CREDIT_NOTE_SERIES, CREDIT_NOTE
    return series_code, INVOICE


@dataclass(frozen=True)
class Creditable:
    """A line of an issued invoice and what remains of it to credit.

    ``remaining`` is the line's net plus the net of every correction that names its charge
    (credits are negative): what a credit note may still take off it.
    """

    position: int
    charge_id: int
    description: str
    period_start: date
    period_end: date
    net: Decimal
    remaining: Decimal
    tax_rate: Decimal
    tax_category: str
    vat_category: str
    discount: bool = False
    """A discount line (negative): crediting it reverses it, a positive line."""

    @property
    def left(self) -> Decimal:
        """What may still be credited (a fee) or reversed (a discount), as a positive amount."""
        return -self.remaining if self.discount else self.remaining


@dataclass(frozen=True)
class CreditLine:
    """A line of a credit note, signed as stored (negative: it lowers what is owed).

    Printed as ``1 x amount``: a partial credit has no unit price of its own, and a whole
    line's tiers or proration were printed on the invoice it credits.
    """

    position: int
    """The position of the invoice line it credits."""
    charge_id: int
    """The charge of the invoice line it credits (``charges.corrects_charge_id``)."""
    description: str
    period_start: date
    period_end: date
    net: Decimal
    tax_rate: Decimal
    tax: Decimal
    tax_category: str
    vat_category: str

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax


def plan_credit(
    bill_no: str,
    currency: str,
    lines: Sequence[Creditable],
    wanted: Mapping[int, Decimal | None] | None,
) -> tuple[CreditLine, ...]:
    """The lines of a credit note on invoice ``bill_no``.

    ``wanted`` maps invoice line positions to the net amount to credit (positive; ``None``:
    all that remains of the line); ``None`` credits every line with something left. Refuses
    (``CreditNoteError``, naming the invoice and the line) an unknown line, an amount that is
    not positive or not in the currency's minor units, and more than what remains.
    """
    by_position = {line.position: line for line in lines}
    if wanted is None:
        chosen: list[tuple[Creditable, Decimal | None]] = [
            (line, None) for line in lines if line.left > 0
        ]
        if not chosen:
            raise CreditNoteError(f"invoice {bill_no} has nothing left to credit")
    else:
        if not wanted:
            raise CreditNoteError(f"no line of invoice {bill_no} to credit")
        chosen = []
        for position, amount in sorted(wanted.items()):
            line = by_position.get(position)
            if line is None:
                known = ", ".join(str(p) for p in sorted(by_position)) or "none"
                raise CreditNoteError(
                    f"invoice {bill_no} has no line {position} (its lines: {known})"
                )
            chosen.append((line, amount))
    credits = []
    for line, amount in chosen:
        where = f"line {line.position} of invoice {bill_no}"
        if line.left <= 0:
            raise CreditNoteError(
                f"{where} has nothing left to credit (billed {line.net}, "
                f"{line.remaining} remains after its credits)"
            )
        if amount is None:
            amount = line.left
        if amount <= 0:
            raise CreditNoteError(f"{where}: a credit is a positive amount, not {amount}")
        if quantize_money(amount, currency, LINE_ROUNDING) != amount:
            raise CreditNoteError(
                f"{where}: {amount} is not in {currency}'s minor units ({minor_unit(currency)})"
            )
        if amount > line.left:
            raise CreditNoteError(
                f"{where}: {amount} {currency} asked, only {line.left} {currency} remains "
                f"un-credited (billed {line.net})"
            )
        net = amount if line.discount else -amount  # a discount is reversed
        tax = line_tax(net, line.tax_rate, currency, LINE_ROUNDING)
        credits.append(
            CreditLine(
                position=line.position,
                charge_id=line.charge_id,
                description=line.description,
                period_start=line.period_start,
                period_end=line.period_end,
                net=net,
                tax_rate=line.tax_rate,
                tax=tax,
                tax_category=line.tax_category,
                vat_category=line.vat_category,
            )
        )
    if sum((c.net for c in credits), ZERO) >= 0:
        raise CreditNoteError(
            f"a credit note on invoice {bill_no} must lower what is owed: reversing discount "
            "lines alone would raise it"
        )
    return tuple(credits)


def parse_lines(text: str) -> dict[int, Decimal | None]:
    """``--lines`` of ``billing credit-note``: ``1,3`` (whole lines) or ``2=10.00`` (a net
    amount of line 2), comma separated; a line named twice is refused."""
    wanted: dict[int, Decimal | None] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        position_text, _, amount_text = part.partition("=")
        try:
            position = int(position_text)
            amount = Decimal(amount_text.strip()) if amount_text.strip() else None
        except (ValueError, ArithmeticError):
            raise CreditNoteError(
                f"--lines: {part!r} is not LINE or LINE=AMOUNT (e.g. 1,3 or 2=10.00)"
            ) from None
        if position < 1 or (amount is not None and not amount.is_finite()):
            raise CreditNoteError(f"--lines: {part!r} is not LINE or LINE=AMOUNT")
        if position in wanted:
            raise CreditNoteError(f"--lines: line {position} is named twice")
        wanted[position] = amount
    if not wanted:
        raise CreditNoteError("--lines names no line")
    return wanted
