"""The key grammar (billing.domain.charge_keys): every kind, byte for byte as stored, round trips.

The expected strings are written out by hand, in the form the builders produced before the
grammar had one module: stored charges, bills and payments keep matching after the move.
"""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain import charge_keys as ck
from billing.domain.charge_keys import Key, KeyKind

D1 = date(2027, 2, 1)
NOW = datetime(2027, 1, 12, 12, 0)

# (built, as stored today, parsed)
TODAY = [
    (ck.recurring(7, D1), "rec:7:2027-02-01", Key(KeyKind.RECURRING, 7, D1)),
    (ck.one_time(7), "one:7", Key(KeyKind.ONE_TIME, 7)),
    (ck.cancellation(7, D1), "cxl:7:2027-02-01", Key(KeyKind.CANCELLATION, 7, D1)),
    (ck.change(31, D1), "chg:31:2027-02-01", Key(KeyKind.CHANGE, 31, D1)),
    (ck.planned(7, D1), "ren:7:2027-02-01", Key(KeyKind.PLANNED, 7, D1)),
    (ck.extension(7, D1), "ext:7:2027-02-01", Key(KeyKind.EXTENSION, 7, D1)),
    (ck.usage(7, D1), "use:7:2027-02-01", Key(KeyKind.USAGE, 7, D1)),
    (ck.uti(7, NOW), "uti:7:2027-01-12T12:00:00", Key(KeyKind.UTI, 7, NOW)),
    (
        ck.threshold(7, D1, NOW),
        "thr:7:2027-02-01:2027-01-12T12:00:00",
        Key(KeyKind.THRESHOLD, 7, D1, at=NOW),
    ),
    (ck.discount(5, D1, 2), "dsc:5:2027-02-01:2", Key(KeyKind.DISCOUNT, 5, D1, 2)),
    (ck.commitment(3, D1), "min:3:2027-02-01", Key(KeyKind.COMMITMENT, 3, D1)),
    (ck.discount_reversal(41), "dsr:41", Key(KeyKind.DISCOUNT_REVERSAL, 41)),
    (ck.trial(7, D1, 2), "trl:7:2027-02-01:2", Key(KeyKind.TRIAL, 7, D1, 2)),
    (
        ck.late_usage(7, date(2026, 12, 1), D1),
        "lat:7:2026-12-01:2027-02-01",
        Key(KeyKind.LATE_USAGE, 7, date(2026, 12, 1), billed_on=D1),
    ),
    (ck.cycle_bill(3, D1), "cyc:3:2027-02-01", Key(KeyKind.CYCLE_BILL, 3, D1)),
    (
        ck.immediate_bill(3, D1, 1042),
        "imm:3:2027-02-01:1042",
        Key(KeyKind.IMMEDIATE_BILL, 3, D1, 1042),
    ),
    (ck.credit_note(12, 2), "crn:12:2", Key(KeyKind.CREDIT_NOTE, 12, number=2)),
    (ck.credit_line(40, 2), "crl:40:2", Key(KeyKind.CREDIT_LINE, 40, number=2)),
    # prepaid credits (wallets): the prepayment charges, their bill, the wallet entries
    (ck.topup(7, D1), "top:7:2027-02-01", Key(KeyKind.TOPUP, 7, D1)),
    (
        ck.purchase(7, "2027-02-01/100.00"),
        "buy:7:2027-02-01/100.00",
        Key(KeyKind.PURCHASE, 7, reference="2027-02-01/100.00"),
    ),
    (
        ck.purchase_bill("top:7:2027-02-01"),
        "pb:top:7:2027-02-01",
        Key(KeyKind.PURCHASE_BILL, "top:7:2027-02-01"),
    ),
    (
        ck.grant(7, "welcome:2027"),
        "gnt:7:welcome:2027",
        Key(KeyKind.GRANT, 7, reference="welcome:2027"),
    ),
    (ck.lot(42), "lot:42", Key(KeyKind.LOT, 42)),
    (ck.spend(42, 9), "spd:42:9", Key(KeyKind.SPEND, 42, number=9)),
    (ck.expiry(42), "exp:42", Key(KeyKind.EXPIRY, 42)),
    (
        ck.card_payment("cyc:3:2027-02-01", 2),
        "card:cyc:3:2027-02-01:2",
        Key(KeyKind.CARD, "cyc:3:2027-02-01", number=2),
    ),
    (
        ck.direct_debit("imm:3:2027-02-01:1042", 1),
        "dd:imm:3:2027-02-01:1042:1",
        Key(KeyKind.DIRECT_DEBIT, "imm:3:2027-02-01:1042", number=1),
    ),
    (
        ck.statement_payment("BANK:REF 0001"),
        "ref:BANK:REF 0001",
        Key(KeyKind.STATEMENT, "BANK:REF 0001"),
    ),
    (
        ck.refund("ACC-000000001", 4),
        "rf:ACC-000000001:4",
        Key(KeyKind.REFUND, "ACC-000000001", number=4),
    ),
]


@pytest.mark.parametrize(("built", "stored", "parsed"), TODAY, ids=[t[1] for t in TODAY])
def test_every_kind_is_byte_identical_to_the_stored_keys_and_round_trips(built, stored, parsed):
    assert built == stored
    assert ck.parse_key(stored) == parsed
    assert parsed.text == stored


def test_the_table_covers_every_kind():
    assert {parsed.kind for _, _, parsed in TODAY} == set(KeyKind)
    assert (
        ck.CHARGE_KINDS | ck.BILL_KINDS | ck.PAYMENT_KINDS | ck.REFUND_KINDS | ck.WALLET_KINDS
        == set(KeyKind)
    )


def test_uti_keys_keep_seconds_and_microseconds_as_isoformat_does():
    moment = datetime(2027, 1, 12, 9, 30, 5, 120)
    assert ck.uti(5, moment) == "uti:5:2027-01-12T09:30:05.000120"
    assert ck.parse_key("uti:5:2027-01-12T09:30:05.000120").on == moment


def test_threshold_patterns_match_a_cycle_or_a_run_and_nothing_else():
    def like(pattern: str, text: str) -> bool:  # SQL LIKE with only % wildcards (no _ here)
        return re.fullmatch(".*".join(map(re.escape, pattern.split("%"))), text) is not None

    key = ck.threshold(7, D1, NOW)
    assert ck.like_threshold_of_cycle(D1) == "thr:%:2027-02-01:%"
    assert ck.like_threshold_at(NOW) == "thr:%:2027-01-12T12:00:00"
    assert like(ck.like_threshold_of_cycle(D1), key) and like(ck.like_threshold_at(NOW), key)
    # A run whose Process Now is the midnight of another cycle's bill date is not that cycle's.
    other = ck.threshold(7, date(2027, 1, 1), datetime(2027, 2, 1))
    assert other == "thr:7:2027-01-01:2027-02-01T00:00:00"
    assert not like(ck.like_threshold_of_cycle(D1), other)
    with pytest.raises(ValueError, match="Process Now"):
        ck.format_key(Key(KeyKind.THRESHOLD, 7, D1))


def test_rated_usage_keys_in_sql_are_the_same_as_in_python():
    head, tail = ck.rated_key_parts(KeyKind.USAGE, D1)
    assert (head, tail) == ("use:", ":2027-02-01")
    assert f"{head}{7}{tail}" == ck.usage(7, D1) == ck.rated_key(KeyKind.USAGE, 7, D1)
    assert ck.rated_key(KeyKind.UTI, 7, NOW) == ck.uti(7, NOW)
    assert ck.like_rated(KeyKind.UTI, NOW) == "uti:%:2027-01-12T12:00:00"
    with pytest.raises(ValueError, match="not rated usage keys"):
        ck.rated_key_parts(KeyKind.RECURRING, D1)


def test_like_patterns_and_prefixes():
    assert ck.like_kind(KeyKind.CYCLE_BILL) == "cyc:%"
    assert ck.like_trial(7) == "trl:7:%"
    assert ck.like_kind(KeyKind.PLANNED) == "ren:%"
    assert ck.prefix(KeyKind.RECURRING) == "rec:"


def test_a_forecast_is_the_twin_of_its_recurring_fee():
    assert ck.with_kind("rec:7:2027-02-01", KeyKind.PLANNED) == "ren:7:2027-02-01"
    assert ck.with_kind("ren:7:2027-02-01", KeyKind.RECURRING) == "rec:7:2027-02-01"
    with pytest.raises(ValueError, match="cannot turn"):
        ck.with_kind("one:7", KeyKind.PLANNED)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "rec",
        "rec:",
        "xyz:7:2027-02-01",
        "rec:seven:2027-02-01",
        "rec:7:2027-13-01",
        "rec:7:20270201",  # parses as a date, but is not the stored form
        "rec:07:2027-02-01",
        "one:7:2027-02-01",
        "imm:3:2027-02-01",
        "card:5",
        "crn:12",
        "crl:x:1",
        "trl:7:2027-02-01",
        "uti:7:not-a-time",
        "thr:7:2027-02-01",
        "thr:7:2027-02-01:2027-01-12",  # a date without its time is not a Process Now
        "thr:7:2027-02-01T12:00:00:2027-02-01",
        "pb:rec:7:2027-02-01",  # a purchase bill sells prepaid credits, nothing else
        "pb:buy:7:",
        "gnt:7:",
        "gnt:x:ref",
        "spd:5",
        "lot:5:1",
    ],
)
def test_malformed_keys_are_refused(text):
    with pytest.raises(ValueError):
        ck.parse_key(text)


ids = st.integers(min_value=1, max_value=10**12)
days = st.dates(min_value=date(1900, 1, 1), max_value=date(9999, 12, 31))
refs = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
dated = st.sampled_from(sorted(ck.DATED_CHARGES) + [KeyKind.CYCLE_BILL])


@given(kind=dated, owner=ids, on=days)
def test_dated_keys_round_trip(kind, owner, on):
    key = Key(kind, owner, on)
    assert ck.parse_key(key.text) == key


@given(owner=ids, moment=st.datetimes(min_value=datetime(1900, 1, 1)))
def test_uti_keys_round_trip(owner, moment):
    assert ck.parse_key(ck.uti(owner, moment)) == Key(KeyKind.UTI, owner, moment)


@given(owner=ids, on=days, moment=st.datetimes(min_value=datetime(1900, 1, 1)))
def test_threshold_keys_round_trip(owner, on, moment):
    key = Key(KeyKind.THRESHOLD, owner, on, at=moment)
    assert ck.parse_key(key.text) == key


@given(unit=ids, on=days, charge=ids, attempt=st.integers(1, 99), ref=refs)
def test_bill_and_payment_keys_round_trip(unit, on, charge, attempt, ref):
    bill = ck.immediate_bill(unit, on, charge)
    assert ck.parse_key(bill) == Key(KeyKind.IMMEDIATE_BILL, unit, on, charge)
    for kind, key in (
        (KeyKind.CARD, ck.card_payment(bill, attempt)),
        (KeyKind.DIRECT_DEBIT, ck.direct_debit(bill, attempt)),
    ):
        assert ck.parse_key(key) == Key(kind, bill, number=attempt)
    assert ck.parse_key(ck.statement_payment(ref)) == Key(KeyKind.STATEMENT, ref)
    assert ck.parse_key(ck.refund(ref, attempt)) == Key(KeyKind.REFUND, ref, number=attempt)


@given(wallet=ids, charge=ids, bill=ids, on=days, ref=refs.map(str.strip).filter(bool))
def test_wallet_keys_round_trip(wallet, charge, bill, on, ref):
    if any(ord(c) < 32 or ord(c) == 127 for c in ref):
        with pytest.raises(ValueError, match="control characters"):
            ck.grant(wallet, ref)
        return
    for key in (ck.grant(wallet, ref), ck.purchase(wallet, ref)):
        assert ck.parse_key(key).text == key
        assert ck.parse_key(key).reference == ref
    for sold in (ck.topup(wallet, on), ck.purchase(wallet, ref)):
        assert ck.parse_key(ck.purchase_bill(sold)).owner == sold
    assert ck.parse_key(ck.spend(charge, bill)) == Key(KeyKind.SPEND, charge, number=bill)


def test_references_are_checked():
    assert ck.grant(1, "x" * 64) == "gnt:1:" + "x" * 64
    for bad in ("", " padded", "x" * 65, "tab\there"):
        with pytest.raises(ValueError):
            ck.grant(1, bad)
    assert ck.like_topup_bills() == "pb:top:%"
    assert ck.like_purchase_bills() == "pb:%"
