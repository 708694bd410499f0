"""The grammar of idempotence keys, in one place: charges, bills, payments and wallet entries.

Every write step is idempotent because what it writes carries a key under a unique constraint
(``charges.charge_key``, ``bills.bill_key``, ``payments.idempotency_key``,
``refunds.idempotency_key``): a rerun builds the same key and inserts nothing. The keys are
``{kind}:{owner}[:{date}][:{number}]``, with the kind first so that SQL can select a kind by
``LIKE 'kind:%'`` (``like_kind``):

===================  =========================================  ===========================
kind                 key                                        written by
===================  =========================================  ===========================
``rec``  RECURRING   ``rec:{item id}:{cycle start}``            the schedule (bill day)
``one``  ONE_TIME    ``one:{item id}``                          the schedule (bill day)
``cxl``  CANCEL      ``cxl:{item id}:{charged period start}``   cancellation credits
``chg``  CHANGE      ``chg:{request id}:{cycle start}``         contract change adjustments
``ren``  PLANNED     ``ren:{item id}:{cycle start}``            renewal forecasts (``rec`` twin)
``ext``  EXTENSION   ``ext:{item id}:{cycle start}``            renewal top-ups
``use``  USAGE       ``use:{item id}:{bill date}``              rating at billing
``uti``  UTI         ``uti:{item id}:{process now}``            UTI (a date *and time*)
``lat``  LATE_USAGE  ``lat:{item id}:{cycle bill date}:{bill}``  late usage of a billed cycle
``thr``  THRESHOLD   ``thr:{item id}:{cycle bill date}:{now}``  usage billed early, past the
                                                                account's threshold, by the
                                                                UTI run of Process Now ``now``
``dsc``  DISCOUNT    ``dsc:{discount id}:{cycle start}:{n}``    the n-th line a discount adds
                                                                to a cycle bill (from 1)
``dsr``  DISCOUNT_    ``dsr:{correction charge id}``             the discount a credit of a
         REVERSAL                                               discounted charge gives back
``min``  COMMITMENT  ``min:{commitment id}:{cycle start}``      a commitment's shortfall
``trl``  TRIAL       ``trl:{item id}:{cycle start}:{n}``        the n-th correction (from 1)
                                                                of a cycle's fee after the
                                                                item's trial end moved
``cyc``  CYCLE_BILL  ``cyc:{unit id}:{bill date}``              a cycle's bill
``imm``  IMMEDIATE   ``imm:{unit id}:{bill date}:{charge id}``  a bill of immediate charges
``crn``  CREDIT_NOTE ``crn:{invoice bill id}:{n}``              the n-th credit note issued
                                                                by hand on an invoice
``crl``  CREDIT_LINE ``crl:{credited charge id}:{n}``           its line crediting a charge
``top``  TOPUP       ``top:{wallet id}:{date}``                 a wallet's automatic top-up
                                                                (its prepayment charge)
``buy``  PURCHASE    ``buy:{wallet id}:{reference}``            prepaid credits bought by hand
                                                                (its prepayment charge)
``pb``   PURCHASE_BILL ``pb:{prepayment charge key}``           the bill that sells them
``gnt``  GRANT       ``gnt:{wallet id}:{reference}``            a grant (free credits, a lot)
``lot``  LOT         ``lot:{prepayment charge id}``             the lot a purchase credits
``spd``  SPEND       ``spd:{lot id}:{bill id}``                 a lot's consumption by a bill
``exp``  EXPIRY      ``exp:{lot id}``                           what a lot had left at expiry
``card`` CARD        ``card:{bill key}:{attempt}``              card collection
``dd``   DEBIT       ``dd:{bill key}:{attempt}``                SEPA direct debit
``ref``  STATEMENT   ``ref:{bank reference}``                   payments from a statement
``rf``   REFUND      ``rf:{account ref}:{number}``              refunds
===================  =========================================  ===========================

``gnt``, ``lot``, ``spd`` and ``exp`` are ``wallet_entries.entry_key`` (billing/ops/wallets.py);
``top``, ``buy`` and ``pb`` sell prepaid credits. A ``{reference}`` is
the caller's idempotency key of a grant or a purchase (``billing wallet grant --key``, an import's
``grants[].key``), 1 to 64 characters without control characters; it may hold ``:``.

Dates are ISO (``date.isoformat()``, ``datetime.isoformat()`` for UTI). These strings are stored:
changing one would make a rerun write its charges, bills or payments a second time, so
``tests/billing/test_charge_keys.py`` pins them byte for byte. Pure: no database here; the SQL
that builds usage keys in the database takes its two constant parts from ``rated_key_parts``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

SEPARATOR = ":"


class KeyKind(enum.StrEnum):
    """The first field of a key."""

    RECURRING = "rec"
    ONE_TIME = "one"
    CANCELLATION = "cxl"
    CHANGE = "chg"
    PLANNED = "ren"
    EXTENSION = "ext"
    USAGE = "use"
    UTI = "uti"
    LATE_USAGE = "lat"
    THRESHOLD = "thr"
    DISCOUNT = "dsc"
    DISCOUNT_REVERSAL = "dsr"
    COMMITMENT = "min"
    TRIAL = "trl"
    CYCLE_BILL = "cyc"
    IMMEDIATE_BILL = "imm"
    CREDIT_NOTE = "crn"
    CREDIT_LINE = "crl"
    TOPUP = "top"
    PURCHASE = "buy"
    PURCHASE_BILL = "pb"
    GRANT = "gnt"
    LOT = "lot"
    SPEND = "spd"
    EXPIRY = "exp"
    CARD = "card"
    DIRECT_DEBIT = "dd"
    STATEMENT = "ref"
    REFUND = "rf"


DATED_CHARGES = frozenset(
    {
        KeyKind.RECURRING,
        KeyKind.CANCELLATION,
        KeyKind.CHANGE,
        KeyKind.PLANNED,
        KeyKind.EXTENSION,
        KeyKind.USAGE,
        KeyKind.COMMITMENT,
    }
)
"""Charge kinds keyed ``{kind}:{id}:{date}``."""

CHARGE_KINDS = DATED_CHARGES | {
    KeyKind.ONE_TIME,
    KeyKind.UTI,
    KeyKind.CREDIT_LINE,
    KeyKind.LATE_USAGE,
    KeyKind.THRESHOLD,
    KeyKind.DISCOUNT,
    KeyKind.DISCOUNT_REVERSAL,
    KeyKind.TRIAL,
    KeyKind.TOPUP,
    KeyKind.PURCHASE,
}
BILL_KINDS = frozenset(
    {KeyKind.CYCLE_BILL, KeyKind.IMMEDIATE_BILL, KeyKind.CREDIT_NOTE, KeyKind.PURCHASE_BILL}
)
NUMBERED = frozenset({KeyKind.CREDIT_NOTE, KeyKind.CREDIT_LINE})
"""Kinds keyed ``{kind}:{id}:{number}``."""
PAYMENT_KINDS = frozenset({KeyKind.CARD, KeyKind.DIRECT_DEBIT, KeyKind.STATEMENT})
REFUND_KINDS = frozenset({KeyKind.REFUND})
WALLET_KINDS = frozenset({KeyKind.GRANT, KeyKind.LOT, KeyKind.SPEND, KeyKind.EXPIRY})
"""Kinds of ``wallet_entries.entry_key``."""
REFERENCED = frozenset({KeyKind.PURCHASE, KeyKind.GRANT})
"""Kinds keyed ``{kind}:{wallet id}:{reference}`` (the caller's key)."""
PREPAYMENT_CHARGES = frozenset({KeyKind.TOPUP, KeyKind.PURCHASE})
"""The charges that sell prepaid credits: a ``pb`` bill's key holds one of them."""
REFERENCE_LENGTH = 64


@dataclass(frozen=True)
class Key:
    """A parsed key: its kind, its owner (an id, a bill key, a reference or an account ref),
    its date (or date and time, for UTI) and its number (a charge id, an attempt)."""

    kind: KeyKind
    owner: int | str
    on: date | None = None
    number: int | None = None
    billed_on: date | None = None
    """A late usage key's second date: the bill that takes the late usage."""
    at: datetime | None = None
    """A threshold key's Process Now: the UTI run that billed the usage early."""
    reference: str | None = None
    """A grant's or a purchase's reference: the caller's key."""

    @property
    def text(self) -> str:
        """The key as stored (``parse_key(k).text == k``)."""
        return format_key(self)


def prefix(kind: KeyKind) -> str:
    """The key's start up to its owner: ``rec:``."""
    return _HEAD[kind]


def like_kind(kind: KeyKind) -> str:
    """A SQL ``LIKE`` pattern matching every key of ``kind``: ``rec:%``."""
    return f"{prefix(kind)}%"


# Each kind's prefix, computed once: the builders run for every charge of a bill day.
_HEAD = {kind: f"{kind.value}{SEPARATOR}" for kind in KeyKind}


def _dated(kind: KeyKind, owner: int | str, on: date) -> str:
    return f"{_HEAD[kind]}{owner}{SEPARATOR}{on.isoformat()}"


def recurring(item_id: int, cycle_start: date) -> str:
    """A recurring fee of an item for the cycle that starts on ``cycle_start``."""
    return _dated(KeyKind.RECURRING, item_id, cycle_start)


def one_time(item_id: int) -> str:
    """The one-time fee of an item."""
    return f"{_HEAD[KeyKind.ONE_TIME]}{item_id}"


def cancellation(item_id: int, period_start: date) -> str:
    """The credit of a cancelled item for the fee charged from ``period_start``."""
    return _dated(KeyKind.CANCELLATION, item_id, period_start)


def change(request_id: int, cycle_start: date) -> str:
    """The adjustment of a contract change request for the cycle from ``cycle_start``."""
    return _dated(KeyKind.CHANGE, request_id, cycle_start)


def planned(item_id: int, cycle_start: date) -> str:
    """A renewal's forecast of the recurring fee ``recurring(item_id, cycle_start)``."""
    return _dated(KeyKind.PLANNED, item_id, cycle_start)


def extension(item_id: int, cycle_start: date) -> str:
    """A renewal's top-up of a cycle charged short at the old term end."""
    return _dated(KeyKind.EXTENSION, item_id, cycle_start)


def usage(item_id: int, bill_date: date) -> str:
    """An item's usage rated for the bill dated ``bill_date``."""
    return _dated(KeyKind.USAGE, item_id, bill_date)


def uti(item_id: int, process_now: datetime) -> str:
    """An item's UTI usage collected by the run of ``process_now``."""
    return f"{_HEAD[KeyKind.UTI]}{item_id}{SEPARATOR}{process_now.isoformat()}"


def late_usage(item_id: int, cycle_bill_date: date, bill_date: date) -> str:
    """An item's late usage of the cycle closed on ``cycle_bill_date``, billed on the bill
    dated ``bill_date`` (``billing.domain.late_usage``)."""
    return (
        f"{_dated(KeyKind.LATE_USAGE, item_id, cycle_bill_date)}{SEPARATOR}{bill_date.isoformat()}"
    )


def like_late_usage(item_id: int, cycle_bill_date: date) -> str:
    """A SQL ``LIKE`` pattern matching an item's late usage keys of one cycle."""
    return f"{_dated(KeyKind.LATE_USAGE, item_id, cycle_bill_date)}{SEPARATOR}%"


def like_late_usage_billed_on(bill_date: date) -> str:
    """A SQL ``LIKE`` pattern matching every late usage key billed on the bill of
    ``bill_date``."""
    return f"{_HEAD[KeyKind.LATE_USAGE]}%{SEPARATOR}{bill_date.isoformat()}"


def rated_key_parts(kind: KeyKind, on: date) -> tuple[str, str]:
    """The constant parts of a rated usage key around its item id: ``("use:", ":2027-02-01")``.

    Rating builds the key in SQL as ``head || item_id || tail``; ``on`` is the bill date of a
    ``use`` key and the Process Now (a datetime) of a ``uti`` key.
    """
    if kind not in (KeyKind.USAGE, KeyKind.UTI):
        raise ValueError(f"{kind.value!r} keys are not rated usage keys")
    return prefix(kind), f"{SEPARATOR}{on.isoformat()}"


def rated_key(kind: KeyKind, item_id: int, on: date) -> str:
    """The rated usage key of an item: ``usage`` or ``uti`` by kind."""
    head, tail = rated_key_parts(kind, on)
    return f"{head}{item_id}{tail}"


def like_rated(kind: KeyKind, on: date) -> str:
    """A SQL ``LIKE`` pattern matching the rated usage keys of every item for ``on``."""
    head, tail = rated_key_parts(kind, on)
    return f"{head}%{tail}"


def threshold(item_id: int, cycle_bill_date: date, process_now: datetime) -> str:
    """An item's usage billed early by the UTI run of ``process_now`` because its account's
    unbilled usage passed the account's threshold, in the cycle that closes on
    ``cycle_bill_date`` (``billing.domain.thresholds``)."""
    head = _dated(KeyKind.THRESHOLD, item_id, cycle_bill_date)
    return f"{head}{SEPARATOR}{process_now.isoformat()}"


def like_threshold_of_cycle(cycle_bill_date: date) -> str:
    """A SQL ``LIKE`` pattern matching the threshold keys of every item for the cycle that
    closes on ``cycle_bill_date`` (a Process Now always holds a ``T``, never a whole date)."""
    return f"{_HEAD[KeyKind.THRESHOLD]}%{SEPARATOR}{cycle_bill_date.isoformat()}{SEPARATOR}%"


def like_threshold_at(process_now: datetime) -> str:
    """A SQL ``LIKE`` pattern matching the threshold keys the UTI run of ``process_now`` wrote."""
    return f"{_HEAD[KeyKind.THRESHOLD]}%{SEPARATOR}{process_now.isoformat()}"


def discount(discount_id: int, cycle_start: date, number: int) -> str:
    """The ``number``-th line (from 1) the discount adds to the bill of the cycle from
    ``cycle_start`` (one per target line, or per VAT category of a bill discount)."""
    return f"{_dated(KeyKind.DISCOUNT, discount_id, cycle_start)}{SEPARATOR}{number}"


def discount_reversal(correction_id: int) -> str:
    """The discount given back with the credit ``correction_id`` of a discounted charge: the
    credit reverses the list price, this line the share of it the customer never paid."""
    return f"{_HEAD[KeyKind.DISCOUNT_REVERSAL]}{correction_id}"


def commitment(commitment_id: int, cycle_start: date) -> str:
    """The shortfall of a minimum commitment in the cycle from ``cycle_start``."""
    return _dated(KeyKind.COMMITMENT, commitment_id, cycle_start)


def trial(item_id: int, cycle_start: date, number: int) -> str:
    """The ``number``-th correction (from 1) of an item's fee for the cycle from
    ``cycle_start`` after its trial end moved (``billing.domain.trials``): each move of the
    trial end adds one, so moving it back and forth never meets a key already taken."""
    return f"{_dated(KeyKind.TRIAL, item_id, cycle_start)}{SEPARATOR}{number}"


def like_trial(item_id: int) -> str:
    """A SQL ``LIKE`` pattern matching every trial correction key of an item."""
    return f"{_HEAD[KeyKind.TRIAL]}{item_id}{SEPARATOR}%"


def cycle_bill(unit_id: int, bill_date: date) -> str:
    """The bill that closes a bill unit's cycle on ``bill_date``."""
    return _dated(KeyKind.CYCLE_BILL, unit_id, bill_date)


def immediate_bill(unit_id: int, bill_date: date, first_charge_id: int) -> str:
    """A bill of immediate charges, dated ``bill_date``, whose lowest charge id is given."""
    return f"{_dated(KeyKind.IMMEDIATE_BILL, unit_id, bill_date)}{SEPARATOR}{first_charge_id}"


def credit_note(invoice_bill_id: int, number: int) -> str:
    """The ``number``-th credit note issued by hand on the invoice ``invoice_bill_id``."""
    return f"{_HEAD[KeyKind.CREDIT_NOTE]}{invoice_bill_id}{SEPARATOR}{number}"


def credit_line(charge_id: int, number: int) -> str:
    """The line of an invoice's ``number``-th credit note that credits the charge
    ``charge_id`` (the charge of the invoice line it credits)."""
    return f"{_HEAD[KeyKind.CREDIT_LINE]}{charge_id}{SEPARATOR}{number}"


def topup(wallet_id: int, on: date) -> str:
    """The prepayment charge of a wallet's automatic top-up on ``on`` (one a day at most)."""
    return _dated(KeyKind.TOPUP, wallet_id, on)


def purchase(wallet_id: int, reference: str) -> str:
    """The prepayment charge of credits bought by hand, under the caller's ``reference``."""
    return f"{_HEAD[KeyKind.PURCHASE]}{wallet_id}{SEPARATOR}{checked_reference(reference)}"


def purchase_bill(charge_key: str) -> str:
    """The bill that sells prepaid credits: its one line is the ``top`` or ``buy`` charge."""
    if parse_key(charge_key).kind not in PREPAYMENT_CHARGES:
        raise ValueError(f"{charge_key!r} is not a prepayment charge's key")
    return f"{_HEAD[KeyKind.PURCHASE_BILL]}{charge_key}"


def like_purchase_bills() -> str:
    """A SQL ``LIKE`` pattern matching every purchase bill's key: ``pb:%``."""
    return like_kind(KeyKind.PURCHASE_BILL)


def like_topup_bills() -> str:
    """A SQL ``LIKE`` pattern matching the bills of every top-up: ``pb:top:%``."""
    return f"{_HEAD[KeyKind.PURCHASE_BILL]}{_HEAD[KeyKind.TOPUP]}%"


def grant(wallet_id: int, reference: str) -> str:
    """A grant of free credits to a wallet, under the caller's ``reference``."""
    return f"{_HEAD[KeyKind.GRANT]}{wallet_id}{SEPARATOR}{checked_reference(reference)}"


def lot(prepayment_charge_id: int) -> str:
    """The lot a purchase credits when its bill is issued (one per prepayment charge)."""
    return f"{_HEAD[KeyKind.LOT]}{prepayment_charge_id}"


def spend(lot_id: int, bill_id: int) -> str:
    """What a lot pays of a bill (one entry per lot and bill)."""
    return f"{_HEAD[KeyKind.SPEND]}{lot_id}{SEPARATOR}{bill_id}"


def expiry(lot_id: int) -> str:
    """What a lot had left on its expiry date (once per lot)."""
    return f"{_HEAD[KeyKind.EXPIRY]}{lot_id}"


def checked_reference(reference: str) -> str:
    """A caller's reference as keys hold it, or ``ValueError``: 1 to ``REFERENCE_LENGTH``
    characters, no surrounding blanks, no control characters."""
    if not isinstance(reference, str) or not reference:
        raise ValueError("a reference is a non-empty text")
    if len(reference) > REFERENCE_LENGTH:
        raise ValueError(f"a reference is at most {REFERENCE_LENGTH} characters")
    if reference != reference.strip() or any(ord(c) < 32 or ord(c) == 127 for c in reference):
        raise ValueError(f"reference {reference!r} has surrounding blanks or control characters")
    return reference


def card_payment(bill_key: str, attempt: int) -> str:
    """Collection attempt ``attempt`` of a bill by card."""
    return f"{_HEAD[KeyKind.CARD]}{bill_key}{SEPARATOR}{attempt}"


def direct_debit(bill_key: str, attempt: int) -> str:
    """Collection attempt ``attempt`` of a bill by SEPA direct debit."""
    return f"{_HEAD[KeyKind.DIRECT_DEBIT]}{bill_key}{SEPARATOR}{attempt}"


def statement_payment(reference: str) -> str:
    """A payment recorded from a bank statement line with its bank reference."""
    return f"{_HEAD[KeyKind.STATEMENT]}{reference}"


def refund(account_ref: str, number: int) -> str:
    """Refund ``number`` of an account."""
    return f"{_HEAD[KeyKind.REFUND]}{account_ref}{SEPARATOR}{number}"


def with_kind(key: str, kind: KeyKind) -> str:
    """The same item and date under another dated charge kind: ``rec:7:…`` -> ``ren:7:…``."""
    parsed = parse_key(key)
    if parsed.kind not in DATED_CHARGES or kind not in DATED_CHARGES:
        raise ValueError(f"cannot turn {key!r} into a {kind.value!r} key")
    return format_key(Key(kind, parsed.owner, parsed.on))


def format_key(key: Key) -> str:
    """The stored text of a parsed key."""
    kind, owner, on, number = key.kind, key.owner, key.on, key.number
    if kind is KeyKind.ONE_TIME:
        return one_time(_int(owner))
    if kind is KeyKind.DISCOUNT_REVERSAL:
        return discount_reversal(_int(owner))
    if kind is KeyKind.STATEMENT:
        return statement_payment(str(owner))
    if kind is KeyKind.REFUND:
        return refund(str(owner), _int(number))
    if kind is KeyKind.CREDIT_NOTE:
        return credit_note(_int(owner), _int(number))
    if kind is KeyKind.CREDIT_LINE:
        return credit_line(_int(owner), _int(number))
    if kind is KeyKind.PURCHASE:
        return purchase(_int(owner), str(key.reference))
    if kind is KeyKind.GRANT:
        return grant(_int(owner), str(key.reference))
    if kind is KeyKind.PURCHASE_BILL:
        return purchase_bill(str(owner))
    if kind is KeyKind.LOT:
        return lot(_int(owner))
    if kind is KeyKind.EXPIRY:
        return expiry(_int(owner))
    if kind is KeyKind.SPEND:
        return spend(_int(owner), _int(number))
    if kind in (KeyKind.CARD, KeyKind.DIRECT_DEBIT):
        builder = card_payment if kind is KeyKind.CARD else direct_debit
        return builder(str(owner), _int(number))
    if on is None:
        raise ValueError(f"a {kind.value!r} key needs a date")
    if kind is KeyKind.UTI:
        if not isinstance(on, datetime):
            raise ValueError("a 'uti' key needs a date and time")
        return uti(_int(owner), on)
    if kind is KeyKind.IMMEDIATE_BILL:
        return immediate_bill(_int(owner), on, _int(number))
    if kind is KeyKind.DISCOUNT:
        return discount(_int(owner), on, _int(number))
    if kind is KeyKind.TRIAL:
        return trial(_int(owner), on, _int(number))
    if kind is KeyKind.LATE_USAGE:
        if key.billed_on is None:
            raise ValueError("a 'lat' key needs the date of the bill that takes it")
        return late_usage(_int(owner), on, key.billed_on)
    if kind is KeyKind.THRESHOLD:
        if key.at is None:
            raise ValueError("a 'thr' key needs the Process Now of the run that wrote it")
        return threshold(_int(owner), on, key.at)
    return _dated(kind, _int(owner), on)


def parse_key(text: str) -> Key:
    """The parts of a stored key; ``ValueError`` if it follows no rule of the grammar."""
    head, found, body = text.partition(SEPARATOR)
    try:
        kind = KeyKind(head)
    except ValueError:
        raise ValueError(f"unknown key kind in {text!r}") from None
    if not found or not body:
        raise ValueError(f"key {text!r} has nothing after its kind")
    try:
        parsed = _parse_body(kind, body)
    except ValueError as error:
        raise ValueError(f"malformed {kind.value!r} key {text!r}: {error}") from None
    if format_key(parsed) != text:
        raise ValueError(f"key {text!r} is not in its canonical form")
    return parsed


def _parse_body(kind: KeyKind, body: str) -> Key:
    if kind in (KeyKind.ONE_TIME, KeyKind.DISCOUNT_REVERSAL):
        return Key(kind, int(body))
    if kind is KeyKind.STATEMENT:
        return Key(kind, body)
    if kind in (KeyKind.LOT, KeyKind.EXPIRY):
        return Key(kind, int(body))
    if kind is KeyKind.PURCHASE_BILL:
        return Key(kind, parse_key(body).text)
    if kind in REFERENCED:
        owner, _, reference = body.partition(SEPARATOR)
        return Key(kind, int(owner), reference=reference)
    if kind is KeyKind.SPEND:
        owner, _, number = body.partition(SEPARATOR)
        return Key(kind, int(owner), number=int(number))
    if kind in (KeyKind.CARD, KeyKind.DIRECT_DEBIT, KeyKind.REFUND):
        owner, _, number = body.rpartition(SEPARATOR)
        if not owner:
            raise ValueError("no owner before the number")
        return Key(kind, owner, number=int(number))
    if kind in NUMBERED:
        owner, _, number = body.partition(SEPARATOR)
        return Key(kind, int(owner), number=int(number))
    owner, _, rest = body.partition(SEPARATOR)
    if kind is KeyKind.UTI:
        return Key(kind, int(owner), datetime.fromisoformat(rest))
    if kind in (KeyKind.IMMEDIATE_BILL, KeyKind.DISCOUNT, KeyKind.TRIAL):
        day, _, number = rest.partition(SEPARATOR)
        return Key(kind, int(owner), date.fromisoformat(day), int(number))
    if kind is KeyKind.LATE_USAGE:
        day, _, billed = rest.partition(SEPARATOR)
        return Key(kind, int(owner), date.fromisoformat(day), billed_on=date.fromisoformat(billed))
    if kind is KeyKind.THRESHOLD:
        day, _, moment = rest.partition(SEPARATOR)
        return Key(kind, int(owner), date.fromisoformat(day), at=datetime.fromisoformat(moment))
    return Key(kind, int(owner), date.fromisoformat(rest))


def _int(value: int | str | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    return value
