"""What an invoice document shows: immutable values loaded from the issued bills.

Issued bills are never edited, so a document built from the same bill is always the same.
A line's description is its product's name in the account's language when the catalogue has
one (``products.name_translations``), and the date suffixes the engine adds ("(cancelled
2027-01-15)") are worded in that language too.
``load_invoices`` streams bills with their account and lines; ``invoice_ids`` picks the bills
to render (by run, by dates or by bill numbers). Only numbered bills are invoices.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session, aliased

from billing.documents.formatting import Formatter
from billing.domain.charge_keys import KeyKind, parse_key
from billing.domain.credit_notes import CREDIT_NOTE, INVOICE
from billing.domain.direct_debit import DEFAULT_LEAD_DAYS, collection_date
from billing.domain.discounts import DEFAULT_REASON_CODE
from billing.domain.enums import ChargeKind
from billing.domain.errors import BillingError
from billing.domain.periods import Period, add_cycles, cycle_months
from billing.domain.pricing import PricePlan as PlanValue
from billing.domain.printed import PrintedLine, credit_line, negated, printed_line
from billing.domain.schedule import CycleGrid
from billing.domain.vat import VATEX, VatCategory
from billing.ops.catalog import load_plans
from billing.store.models import (
    LINE_COLUMNS,
    Account,
    Bill,
    BilledLine,
    BillUnit,
    Charge,
    ContractItem,
    OutboxMessage,
    PaymentMethod,
    PricePlan,
    Product,
    TaxCategory,
    billed_line,
)
from billing.store.models import Payment as PaymentRow
from billing.store.models_terms import Discount

_SUFFIX = re.compile(
    r"^(?P<name>.*) \((?P<what>cancelled|changed|renewed) (?P<on>\d{4}-\d{2}-\d{2})\)$"
)
"""The date suffixes billing.domain adds to a product's name (schedule, adjustments, terms)."""

_CORRECTS = re.compile(
    r"^(?P<line>.*), corrects "
    r"(?:invoice (?P<invoice>\S+)|the invoice of (?P<of>\d{4}-\d{2}-\d{2}))$"
)
"""The reference a correction's line ends with (``billing.domain.corrections``)."""


@dataclass(frozen=True)
class ProductName:
    """A line's product name and its translations, as the catalogue has them."""

    name: str
    translations: Mapping[str, str] | None = None


def line_description(description: str, product: ProductName | None, f: Formatter) -> str:
    """A bill line's description in the formatter's language.

    The product's translated name replaces its base name (kept when there is no translation
    or the line no longer starts with it), a date suffix is worded in the language, and so is
    the reference a correction ends with (the invoice it corrects).
    """
    corrects = _CORRECTS.match(description)
    if corrects is not None:
        line = line_description(corrects["line"], product, f)
        if corrects["invoice"] is not None:
            return f.text("line_corrects", line=line, invoice=corrects["invoice"])
        return f.text(
            "line_corrects_bill_of", line=line, date=f.date(date.fromisoformat(corrects["of"]))
        )
    match = _SUFFIX.match(description)
    name = match["name"] if match else description
    if product is not None and name == product.name:
        name = (product.translations or {}).get(f.locale.language) or name
    if match is None:
        return name
    on = f.date(date.fromisoformat(match["on"]))
    if match["what"] == "cancelled":
        return f.text("line_cancelled", name=name, date=on)
    if match["what"] == "changed":
        return f.text("line_changed", name=name, date=on)
    return f.text("line_renewed", name=name, date=on)


@dataclass(frozen=True)
class Party:
    """A seller or a buyer as printed on the invoice."""

    name: str
    address_line: str
    postal_code: str
    city: str
    country: str
    vat_id: str | None = None
    email: str = ""
    business: bool | None = None
    """A business buyer (B2B); None: one when it has a VAT id (as the importer defaults)."""

    @property
    def is_business(self) -> bool:
        """Whether the business-to-business mentions apply to this buyer."""
        if self.business is not None:
            return self.business
        return bool((self.vat_id or "").strip())


@dataclass(frozen=True)
class Line:
    """One invoice line (a frozen bill line)."""

    position: int
    description: str
    period_start: date
    period_end: date
    quantity: Decimal
    unit_price: Decimal
    net: Decimal
    tax_category: str
    tax_rate: Decimal
    tax: Decimal
    gross: Decimal
    printed: PrintedLine | None = None
    """How the lines table shows quantity, unit price, proration or tiers (``domain.printed``);
    None: the stored unit price, as for a line built by hand."""
    vat_category: str = ""
    """The EN 16931 VAT category billed (``billing.domain.vat``); empty for a line built by
    hand: S when its rate is positive, else Z."""
    exemption_reason: str | None = None
    """An exempt (E) line's legal basis, from its tax class (BT-120)."""
    exemption_code: str | None = None
    """An exempt (E) line's VATEX code, from its tax class (BT-121)."""
    allowance_code: str | None = None
    """A discount line (``billing.domain.discounts``), or a credit note's line that reverses
    one: the UNTDID 5189 reason code (BT-98) of the document-level allowance (BG-20) the CII
    states it as; None: an invoice line (BG-25)."""
    kind: str | None = None
    """The kind of its charge (``ChargeKind``): the PDF tags a commitment shortfall and a sale
    of prepaid credits in the buyer's language; None for a line built by hand."""

    @property
    def is_allowance(self) -> bool:
        """Whether the CII states this line as a document-level allowance (a discount)."""
        return self.allowance_code is not None

    @property
    def vat(self) -> VatCategory:
        """The line's VAT category."""
        if self.vat_category:
            return VatCategory(self.vat_category)
        return VatCategory.STANDARD if self.tax_rate > 0 else VatCategory.ZERO

    @property
    def vatex(self) -> str | None:
        """The VATEX code of the line's exemption (BT-121), None where there is none."""
        if self.vat == VatCategory.EXEMPT:
            return self.exemption_code
        return VATEX.get(self.vat)

    def shown(self, currency: str) -> PrintedLine:
        """The printed form of the line (the stored unit price checked when none was given)."""
        if self.printed is not None:
            return self.printed
        return printed_line(self.quantity, self.unit_price, self.net, currency)


@dataclass(frozen=True)
class LinePricing:
    """What a bill line's charge says of its pricing: kind, key, plan, override, bill unit."""

    kind: str | None = None
    charge_key: str | None = None
    plan: PlanValue | None = None
    price_override: Decimal | None = None
    billing_day: int | None = None
    cycle: str | None = None
    item_quantity: Decimal | None = None
    next_bill_date: date | None = None
    """The bill unit's next bill date: anchors its cycle grid (``schedule.CycleGrid``)."""
    allowance_code: str | None = None
    """The allowance reason code of a discount line (``discount_reason``)."""


def discount_reason(
    kind: str | None,
    charge_key: str | None,
    corrected: tuple[str | None, str | None],
    codes: Mapping[int, str],
) -> str | None:
    """The UNTDID 5189 reason code (BT-98) of a discount line, or of a line that corrects one
    (a credit note's line reversing a discount): the discount's ``reason_code``, named by the
    ``dsc:{discount id}:...`` key; ``codes`` holds the codes other than the default. None for
    any other line."""
    if kind != ChargeKind.DISCOUNT:
        kind, charge_key = corrected
        if kind != ChargeKind.DISCOUNT:
            return None
    try:
        key = parse_key(charge_key or "")
    except ValueError:
        return DEFAULT_REASON_CODE
    if key.kind is KeyKind.DISCOUNT_REVERSAL:  # a discount given back: an invoice line
        return None
    if key.kind is not KeyKind.DISCOUNT or not isinstance(key.owner, int):
        return DEFAULT_REASON_CODE
    return codes.get(key.owner, DEFAULT_REASON_CODE)


def discount_reason_codes(session: Session) -> dict[int, str]:
    """The discounts whose reason code is not the default (95, "discount"), by id: the few a
    document must look up."""
    query = select(Discount.id, Discount.reason_code).where(
        Discount.reason_code != DEFAULT_REASON_CODE
    )
    return {discount_id: code for discount_id, code in session.execute(query)}


def _credit_printed(line: BilledLine, pricing: LinePricing, currency: str) -> PrintedLine | None:
    """A cancellation credit (``cxl:{item}:{charged start}``) as ``quantity x -price x n / m``:
    the unused days of the cycle the credited fee belongs to, on the bill unit's cycle grid.
    None when the line is no such credit or its arithmetic does not check."""
    plan = pricing.plan
    if (
        pricing.kind != ChargeKind.ADJUSTMENT
        or not pricing.charge_key
        or plan is None
        or pricing.item_quantity is None
        or not pricing.billing_day
        or not pricing.cycle
        or pricing.next_bill_date is None
        or line.net >= 0
        or line.period_start >= line.period_end
    ):
        return None
    try:
        key = parse_key(pricing.charge_key)
    except ValueError:
        return None
    if key.kind is not KeyKind.CANCELLATION:
        return None
    price = pricing.price_override if pricing.price_override is not None else plan.unit_price
    if price is None:
        return None
    try:  # a billing day changed since: no cycle, the credit prints its stored amount
        grid = CycleGrid(pricing.next_bill_date, pricing.billing_day, pricing.cycle)
        cycle = next(grid.cycles_from(line.period_start))
        months = cycle_months(pricing.cycle)
    except BillingError:
        return None
    return credit_line(
        pricing.item_quantity,
        price,
        line.net,
        currency,
        plan=plan,
        cycle=cycle,
        period=Period(line.period_start, line.period_end),
        cycle_months=months,
    )


def line_printed(line: BilledLine, pricing: LinePricing, currency: str) -> PrintedLine:
    """The printed form of a bill line: tiers and packages recomputed from its plan, a
    prorated fee's days from its cycle (the charge key's cycle start, the bill unit's cycle), a
    cancellation credit's unused days from the cycle of its period on the bill unit's grid."""
    credit = _credit_printed(line, pricing, currency)
    if credit is not None:
        return credit
    if pricing.charge_key and pricing.charge_key.startswith(f"{KeyKind.CREDIT_LINE.value}:"):
        # a credit note's line issued by hand: 1 x its amount (its invoice printed the rest)
        return printed_line(line.quantity, line.unit_price, line.net, currency)
    plan = pricing.plan
    price = pricing.price_override
    if plan is not None and price is None:
        price = plan.unit_price
    cycle = None
    months = 1
    if (
        pricing.kind == ChargeKind.RECURRING
        and pricing.charge_key
        and pricing.billing_day
        and pricing.cycle
    ):
        try:
            key = parse_key(pricing.charge_key)
        except ValueError:
            key = None
        if key is not None and key.kind is KeyKind.RECURRING and key.on is not None:
            try:  # a billing day changed since: no cycle, the line prints without days
                end = add_cycles(key.on, 1, pricing.billing_day, pricing.cycle)
                cycle, months = Period(key.on, end), cycle_months(pricing.cycle)
            except BillingError:
                cycle = None
    period = (
        Period(line.period_start, line.period_end) if line.period_start < line.period_end else None
    )
    return printed_line(
        line.quantity,
        line.unit_price,
        line.net,
        currency,
        plan=plan,
        usage=pricing.kind == ChargeKind.USAGE,
        price=price,
        cycle=cycle,
        period=period,
        cycle_months=months,
    )


@dataclass(frozen=True)
class Payment:
    """How the buyer pays: method, terms and, for direct debit, the mandate."""

    method: PaymentMethod
    terms_days: int
    iban: str | None = None
    bic: str | None = None
    mandate_ref: str | None = None
    mandate_date: date | None = None
    # The SEPA pre-notification (EPC SDD Core rulebook PT-02.01): the amount and date of the
    # debit. The date is the one in the debit's file when it was sent (payments.collect_on);
    # before that, the date the rule gives for a file sent on the bill date.
    debit_amount: Decimal | None = None
    debit_on: date | None = None


@dataclass(frozen=True)
class PrecedingInvoice:
    """An invoice a credit note corrects (EN 16931 BG-3: BT-25 number, BT-26 date)."""

    bill_no: str
    bill_date: date


@dataclass(frozen=True)
class Invoice:
    """An issued, numbered bill with everything its documents print.

    A credit note (``type_code`` 381) holds its amounts as its documents state them, positive
    (EN 16931), though the bill stores them negative; ``corrects`` names the invoices it
    corrects and ``note`` why it was issued by hand.
    """

    bill_id: int
    bill_no: str
    series: str
    bill_date: date
    due_date: date
    period_start: date
    period_end: date
    currency: str
    net: Decimal
    tax: Decimal
    gross: Decimal
    language: str
    account_ref: str
    buyer: Party
    payment: Payment
    lines: tuple[Line, ...]
    type_code: str = INVOICE
    corrects: tuple[PrecedingInvoice, ...] = ()
    note: str | None = None

    @property
    def is_credit_note(self) -> bool:
        return self.type_code == CREDIT_NOTE

    @property
    def lines_span(self) -> tuple[date, date]:
        """The half-open span of the lines' periods (first start, last end): the billing
        period the document prints; the bill's own period when it has no lines."""
        if not self.lines:
            return self.period_start, self.period_end
        return (
            min(line.period_start for line in self.lines),
            max(line.period_end for line in self.lines),
        )


def _prenotified(
    bill: Bill, account: Account, debit: tuple[date | None, Decimal | None]
) -> tuple[Decimal | None, date | None]:
    """The amount and date the invoice announces for its direct debit (None, None otherwise)."""
    if account.payment_method != PaymentMethod.DIRECT_DEBIT or bill.type_code == CREDIT_NOTE:
        return None, None
    sent_on, amount = debit
    if sent_on is not None:
        return amount, sent_on
    return bill.gross, collection_date(bill.due_date, bill.bill_date, DEFAULT_LEAD_DAYS)


def _invoice(
    bill: Bill,
    account: Account,
    lines: Iterable[tuple[BilledLine, ProductName | None, LinePricing, tuple[str | None, ...]]],
    debit: tuple[date | None, Decimal | None] = (None, None),
    corrects: tuple[PrecedingInvoice, ...] = (),
) -> Invoice:
    f = Formatter.for_account(account.language or "en", account.country, bill.currency)
    debit_amount, debit_on = _prenotified(bill, account, debit)
    credit_note = bill.type_code == CREDIT_NOTE
    sign = -1 if credit_note else 1  # a credit note states positive what it stores negative
    return Invoice(
        bill_id=bill.id,
        bill_no=bill.bill_no or "",
        series=bill.series_code,
        bill_date=bill.bill_date,
        due_date=bill.due_date,
        period_start=bill.period_start,
        period_end=bill.period_end,
        currency=bill.currency,
        net=sign * bill.net,
        tax=sign * bill.tax,
        gross=sign * bill.gross,
        language=account.language or "en",
        account_ref=account.ref,
        buyer=Party(
            name=account.name,
            address_line=account.address_line,
            postal_code=account.postal_code,
            city=account.city,
            country=account.country,
            vat_id=account.vat_id,
            email=account.email,
            business=account.customer_type == "business",
        ),
        payment=Payment(
            method=PaymentMethod(account.payment_method),
            terms_days=account.payment_terms_days,
            iban=account.iban,
            bic=account.bic,
            mandate_ref=account.mandate_ref,
            mandate_date=account.mandate_date,
            debit_amount=debit_amount,
            debit_on=debit_on,
        ),
        lines=tuple(
            Line(
                position=line.position,
                description=line_description(line.description, product, f),
                period_start=line.period_start,
                period_end=line.period_end,
                quantity=line.quantity,
                unit_price=sign * line.unit_price,
                net=sign * line.net,
                tax_category=line.tax_category,
                tax_rate=line.tax_rate,
                tax=sign * line.tax,
                gross=sign * line.gross,
                printed=_signed(line_printed(line, pricing, bill.currency), credit_note),
                vat_category=line.vat_category,
                exemption_code=exemption[0],
                exemption_reason=exemption[1],
                allowance_code=pricing.allowance_code,
                kind=pricing.kind,
            )
            for line, product, pricing, exemption in lines
        ),
        type_code=bill.type_code,
        corrects=corrects,
        note=bill.note,
    )


def _signed(printed: PrintedLine, credit_note: bool) -> PrintedLine:
    return negated(printed) if credit_note else printed


def preceding_invoices(
    session: Session, bill_ids: Sequence[int] | None
) -> dict[int, tuple[PrecedingInvoice, ...]]:
    """The invoices each credit note corrects, by credit note id, in (date, number) order:
    the bills of the charges its lines' charges correct (``charges.corrects_charge_id``)."""
    credit = aliased(Charge)
    corrected = aliased(Charge)
    original = aliased(Bill)
    query = (
        select(credit.bill_id, original.bill_no, original.bill_date)
        .join(Bill, Bill.id == credit.bill_id)
        .join(corrected, corrected.id == credit.corrects_charge_id)
        .join(original, original.id == corrected.bill_id)
        .where(Bill.type_code == CREDIT_NOTE, original.bill_no.is_not(None))
        .distinct()
    )
    if bill_ids is not None:
        query = query.where(credit.bill_id.in_(list(bill_ids)))
    found: dict[int, list[PrecedingInvoice]] = {}
    for bill_id, bill_no, bill_date in session.execute(query):
        found.setdefault(bill_id, []).append(PrecedingInvoice(bill_no, bill_date))
    return {
        bill_id: tuple(sorted(refs, key=lambda r: (r.bill_date, r.bill_no)))
        for bill_id, refs in found.items()
    }


def load_invoices(
    session: Session,
    bill_ids: Sequence[int] | None = None,
    *,
    chunk: int = 500,
    numbered: bool = True,
) -> Iterator[Invoice]:
    """Numbered bills (all, or those of ``bill_ids``) in number order, streamed with lines.

    ``numbered=False`` also takes unnumbered bills (their ``bill_no`` is ""): only an invoice
    preview wants those (``billing.ops.preview``), never an issued document.
    """
    corrected = aliased(Charge)  # a credit note's line reversing a discount is an allowance
    debit = (  # the bill's latest direct debit, as sent
        select(PaymentRow.collect_on)
        .where(
            PaymentRow.bill_id == Bill.id,
            PaymentRow.method == PaymentMethod.DIRECT_DEBIT,
            PaymentRow.collect_on.is_not(None),
        )
        .order_by(PaymentRow.id.desc())
        .limit(1)
    )
    query = (
        select(
            Bill,
            Account,
            Product.name,
            Product.name_translations,
            debit.with_only_columns(PaymentRow.collect_on).scalar_subquery(),
            debit.with_only_columns(PaymentRow.amount).scalar_subquery(),
            Charge.kind,
            Charge.charge_key,
            ContractItem.price_plan_id,
            ContractItem.price_override,
            BillUnit.billing_day,
            BillUnit.cycle,
            ContractItem.quantity,
            BillUnit.next_bill_date,
            TaxCategory.exemption_code,
            TaxCategory.exemption_reason,
            corrected.kind,
            corrected.charge_key,
            *LINE_COLUMNS,
        )
        .join(Account, Account.id == Bill.account_id)
        .join(Charge, Charge.bill_id == Bill.id)  # the bill's lines are its charges
        .outerjoin(BillUnit, BillUnit.id == Charge.bill_unit_id)
        .outerjoin(ContractItem, ContractItem.id == Charge.contract_item_id)
        .outerjoin(PricePlan, PricePlan.id == ContractItem.price_plan_id)
        .outerjoin(Product, Product.id == PricePlan.product_id)
        .outerjoin(TaxCategory, TaxCategory.code == Charge.tax_category)
        .outerjoin(corrected, corrected.id == Charge.corrects_charge_id)
        .order_by(Bill.series_code, Bill.number, Bill.id, Charge.line_no)
    )
    if numbered:
        query = query.where(Bill.number.is_not(None))
    if bill_ids is not None:
        query = query.where(Bill.id.in_(list(bill_ids)))
    plans = {plan_id: info.plan for plan_id, info in load_plans(session).items()}
    corrects = preceding_invoices(session, bill_ids)
    codes = discount_reason_codes(session)
    rows = session.execute(query.execution_options(yield_per=chunk))
    for (bill, account, sent_on, amount), group in groupby(
        rows, key=lambda r: (r[0], r[1], r[4], r[5])
    ):
        yield _invoice(
            bill,
            account,
            (
                (
                    billed_line(line),
                    None if name is None else ProductName(name, translations),
                    LinePricing(
                        kind=None if kind is None else str(kind),
                        charge_key=key,
                        plan=None if plan_id is None else plans.get(plan_id),
                        price_override=override,
                        billing_day=day,
                        cycle=None if cycle is None else str(cycle),
                        item_quantity=item_quantity,
                        next_bill_date=next_bill,
                        allowance_code=discount_reason(
                            None if kind is None else str(kind),
                            key,
                            (
                                None if corrected_kind is None else str(corrected_kind),
                                corrected_key,
                            ),
                            codes,
                        ),
                    ),
                    (exemption_code, exemption_reason),
                )
                for (
                    _,
                    _,
                    name,
                    translations,
                    _,
                    _,
                    kind,
                    key,
                    plan_id,
                    override,
                    day,
                    cycle,
                    item_quantity,
                    next_bill,
                    exemption_code,
                    exemption_reason,
                    corrected_kind,
                    corrected_key,
                    *line,
                ) in group
            ),
            (sent_on, amount),
            corrects.get(bill.id, ()),
        )


def _text(value: Any) -> str | None:
    """An enum column's value as its text (None stays None)."""
    return None if value is None else str(value)


def invoice_ids(
    session: Session,
    *,
    run_id: str | None = None,
    bill_dates: tuple[date, date] | None = None,
    bill_nos: Sequence[str] | None = None,
    unqueued_through: date | None = None,
) -> list[int]:
    """Ids of the numbered bills of a run, or dated within [first, last], or with these numbers,
    or (``unqueued_through``) dated up to that day and never queued for e-mail.

    Criteria combine with OR. A bill-day run renders its own bills, those dated that day, and
    those an interrupted earlier run billed but never queued: the buyer has an address and no
    e-mail of the bill is in the outbox. Without that last criterion a rerun after a crash
    would never render nor send the crashed run's bills dated before ``as_of``.
    """
    query: Select[Any] = select(Bill.id).where(Bill.number.is_not(None))
    wanted = []
    if run_id is not None:
        wanted.append(Bill.run_id == run_id)
    if bill_dates is not None:
        wanted.append(Bill.bill_date.between(*bill_dates))
    if bill_nos is not None:
        wanted.append(Bill.bill_no.in_(list(bill_nos)))
    if unqueued_through is not None:
        has_address = exists().where(
            Account.id == Bill.account_id, Account.email.is_not(None), Account.email != ""
        )
        queued = exists().where(OutboxMessage.bill_id == Bill.id)
        wanted.append((Bill.bill_date <= unqueued_through) & has_address & ~queued)
    if not wanted:
        return []
    query = query.where(or_(*wanted)).order_by(Bill.series_code, Bill.number)
    return list(session.scalars(query))
