"""Bad input (issue #10, part 4): a clear error or rejected rows with reasons, never a crash,
a partial import or a lost row. Every entry point, on SQLite and PostgreSQL.

Entry points: ``import_file`` with a JSON master-data file (accounts, contracts, ... and a usage
array) or a CSV usage file, ``import_payments_csv`` with a bank statement, and the CLI commands
``billing import FILE`` and ``billing import payments FILE``. "Nothing imported" is checked the
strict way: the caller catches the error and commits anyway, and every table keeps its count.

Hypothesis runs a few examples per database here; the ``slow`` twins run many more.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from billing.cli import app
from billing.domain.errors import ImportFileError
from billing.ingest.importer import ImportReport, import_file
from billing.ingest.importer_csv import Counts, UsageLoader
from billing.payments.errors import PaymentRecordError
from billing.payments.statement import StatementReport, import_payments_csv
from billing.store.db import session_factory, unit_of_work
from billing.store.models import Account, Base, Payment, RejectedUsage, UsageRecord
from tests.billing.test_importer import (
    HEADER,
    MASTER,
    assert_refused,
    master_with,
    row_counts,
    run_import,
)

FAST = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
THOROUGH = settings(FAST, max_examples=300)
STATEMENT_HEADER = "reference,account_ref,amount,currency,date,bill_no"


def counts_in(session: Session) -> dict[str, int]:
    """Row counts of every table as the session sees them (its own uncommitted writes too)."""
    return {
        t.name: session.execute(select(func.count()).select_from(t)).scalar_one()
        for t in Base.metadata.sorted_tables
    }


def try_import(engine: Engine, path: Path, fn: Callable[[Session, Path], Any] = import_file):
    """Import in a transaction that is rolled back whatever happens, so examples stay independent.

    Returns (result or error, counts before, counts after) as seen inside the transaction: after a
    refused file the session is still usable, and what it sees is what a commit would keep.
    """
    with session_factory(engine)() as session, session.begin():
        before = counts_in(session)
        try:
            outcome = fn(session, path)
        except (ImportFileError, PaymentRecordError) as error:
            outcome = error
        after = counts_in(session)
        session.rollback()
    return outcome, before, after


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in before if after[name] != before[name]}


def master_document() -> dict[str, Any]:
    return json.loads(MASTER.read_text(encoding="utf-8"))


@pytest.fixture
def imported(engine):
    """The master fixture imported: accounts ACC-1..3, usage item I-2, a rejected usage row."""
    run_import(engine, MASTER)
    return engine


# --- JSON: truncated, wrong encodings, wrong shapes ----------------------------------------


def check_truncated(engine: Engine, tmp_path: Path, cut: int) -> None:
    """A JSON file cut short is refused as not JSON, and the database keeps every count."""
    path = tmp_path / "cut.json"
    path.write_bytes(MASTER.read_bytes().rstrip()[:cut])
    outcome, before, after = try_import(engine, path)
    assert isinstance(outcome, ImportFileError)
    assert str(outcome).startswith("cut.json is not ")  # not JSON, or not UTF-8 (a cut rune)
    assert after == before


@FAST
@given(cut=st.integers(min_value=0, max_value=len(MASTER.read_bytes().rstrip()) - 1))
def test_truncated_json_is_refused_whole(imported, tmp_path, cut):
    check_truncated(imported, tmp_path, cut)


ENCODED_OR_SHAPED = [
    ("utf16.json", json.dumps({"accounts": []}).encode("utf-16"), "is not UTF-8 text"),
    ("latin1.json", '{"tax_categories": [{"code": "É", "name": "é"}]}'.encode("latin-1"),
     "is not UTF-8 text"),
    ("binary.json", bytes(range(256)), "is not UTF-8 text"),
    ("empty.json", b"", "is not JSON"),
    ("bom.json", b"\xef\xbb\xbf{}", "is not JSON: Unexpected UTF-8 BOM"),
    ("null.json", b"null", "None is not of type 'object'"),
    ("list.json", b"[]", "[] is not of type 'object'"),
    ("unknown.json", b'{"acounts": []}', "field acounts: Additional properties"),
    ("deep.json", b'{"accounts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "is nested too deeply"),
    ("digits.json", b'{"accounts": [' + b"9" * 5000 + b"]}",
     "JSON integer of 5000 digits is out of range"),
    ("twice.json", b'{"tax_categories": [{"code": "A", "name": "a", "name": "b"}]}',
     "record tax_categories[0] (code A), field name: key 'name' is given twice"),
    ("nan.json", b'{"usage": [{"external_id": "N", "item_ref": "I-2", "quantity": NaN, '
     b'"occurred_at": "2026-01-01T00:00"}]}', "field quantity: NaN is not a JSON value"),
    ("utf16.csv", f"{HEADER}\nE-1,I-2,1,2026-03-01T00:00\n".encode("utf-16"),
     "utf16.csv is not a readable usage CSV file"),
    ("latin1.csv", f"{HEADER}\nE-1,I-2,1,2026-03-01T00:00\nÉ-2,I-2,1,2026-03-01T00:00\n"
     .encode("latin-1"), "latin1.csv is not a readable usage CSV file"),
    ("semicolons.csv", HEADER.replace(",", ";").encode() + b"\nE-1;I-2;1;2026-03-01T00:00\n",
     "record semicolons.csv header: the header must be"),
    ("quote.csv", f'{HEADER}\nE-1,I-2,1,"2026-03-01T00:00\n'.encode(),
     "quote.csv is not a readable usage CSV file"),
]  # fmt: skip


def test_wrong_encodings_and_shapes_are_refused_whole(imported, tmp_path):
    """Each file gives its clear error, and no table changes even though the caller commits."""
    before = row_counts(imported)
    for name, content, message in ENCODED_OR_SHAPED:
        path = tmp_path / name
        path.write_bytes(content)
        with unit_of_work(imported) as session:
            with pytest.raises(ImportFileError) as caught:
                import_file(session, path)
        assert message in str(caught.value), (name, str(caught.value)[:300])
        assert len(str(caught.value)) < 400, name  # a huge value is never echoed whole
    assert row_counts(imported) == before


# --- JSON: wrong types and values in any field, fuzzed -------------------------------------


def _fields(node: Any, path: tuple = ()) -> list[tuple]:
    """The path of every field inside a record of the master document (records excluded)."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in items:
        here = (*path, key)
        if len(here) >= 3 and isinstance(key, str):  # a field, not a whole record
            found.append(here)
        if isinstance(child, dict | list):
            found.extend(_fields(child, here))
    return found


FIELDS = _fields(master_document())
HOSTILE_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"), st.sampled_from("\x00\r\n\t\x85\u2028\ud800'\"%_;\\")
    ),
    max_size=12,
)
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(),
        HOSTILE_TEXT,
        st.sampled_from(["", " ", "-1", "1e3", "0.0000001", "9" * 40, "2026-02-30", "I-404"]),
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(HOSTILE_TEXT, children, max_size=3)
    ),
    max_leaves=6,
)


def _put(document: dict, path: tuple, value: Any, delete: bool) -> None:
    node = document
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def check_fuzzed_field(engine: Engine, tmp_path: Path, path: tuple, value: Any, delete: bool):
    """Either an error naming a record and a field that leaves every count unchanged, or an
    import whose counts match its report, with every usage row inserted or rejected."""
    document = master_document()
    _put(document, path, value, delete)
    file = tmp_path / "fuzzed.json"
    file.write_text(json.dumps(document, ensure_ascii=False), "utf-8", errors="surrogatepass")
    outcome, before, after = try_import(engine, file)
    note(f"{path} {'deleted' if delete else f'= {value!r}'}: {str(outcome)[:300]}")
    if isinstance(outcome, ImportFileError):
        assert outcome.record, str(outcome)  # and the field, unless the record is no object:
        assert outcome.field or outcome.record.endswith("]"), str(outcome)  # (no key to show)
        assert len(str(outcome)) < 600
        assert after == before
        return
    assert isinstance(outcome, ImportReport)
    changed = delta(before, after)
    for kind in ("accounts", "contracts", "contract_items", "price_plans", "tax_rates"):
        assert changed.get(kind, 0) == outcome.of(kind).inserted, kind
    usage = outcome.of("usage")
    assert changed.get("usage_records", 0) == usage.inserted
    assert changed.get("rejected_usage", 0) == usage.rejected
    assert usage.inserted + usage.unchanged + usage.rejected == len(document["usage"])


@FAST
@given(path=st.sampled_from(FIELDS), value=JSON_VALUES, delete=st.booleans())
def test_any_bad_field_value_gives_a_clear_error_or_a_whole_import(
    engine, tmp_path, path, value, delete
):
    check_fuzzed_field(engine, tmp_path, path, value, delete)


@pytest.mark.slow
@THOROUGH
@given(path=st.sampled_from(FIELDS), value=JSON_VALUES, delete=st.booleans())
def test_any_bad_field_value_thoroughly(engine, tmp_path, path, value, delete):
    check_fuzzed_field(engine, tmp_path, path, value, delete)


# --- JSON: huge and negative numbers, unknown references, duplicate ids ---------------------


def _set(*path: Any) -> Callable[[dict], None]:
    *keys, value = path

    def change(document: dict) -> None:
        _put(document, tuple(keys), value, delete=False)

    return change


def _twice(section: str, index: int, key: str, other: int) -> Callable[[dict], None]:
    def change(document: dict) -> None:
        document[section][index][key] = document[section][other][key]

    return change


PLAN0 = ("products", 0, "price_plans", 0)
REFUSED = [
    # huge and negative numbers
    (_set(*PLAN0, "unit_price", "-29.90"),
     "products[0] (code P-HOSTING).price_plans[0] (code HOST-M-EUR)", "unit_price"),
    (_set(*PLAN0, "unit_price", 10**13),
     "products[0] (code P-HOSTING).price_plans[0] (code HOST-M-EUR)", "unit_price"),
    (_set(*PLAN0, "period_months", 2**31),
     "products[0] (code P-HOSTING).price_plans[0] (code HOST-M-EUR)", "period_months"),
    (_set(*PLAN0, "period_months", -1),
     "products[0] (code P-HOSTING).price_plans[0] (code HOST-M-EUR)", "period_months"),
    (_set("contracts", 0, "term_months", 10**30), "contracts[0] (ref C-1)", "term_months"),
    (_set("contracts", 0, "notice_days", 2**63), "contracts[0] (ref C-1)", "notice_days"),
    (_set("accounts", 0, "payment_terms_days", 2**31), "accounts[0] (ref ACC-1)",
     "payment_terms_days"),
    (_set("accounts", 0, "bill_unit", "billing_day", 0), "accounts[0] (ref ACC-1)",
     "bill_unit.billing_day"),
    (_set("tax_rates", 0, "rate", "1.5"), "tax_rates[0] (category STD, country FR, "
     "valid_from 2014-01-01)", "rate"),
    (_set("contracts", 0, "items", 0, "quantity", "1" * 13),
     "contracts[0] (ref C-1).items[0] (ref I-1)", "quantity"),
    # wrong types
    (_set("accounts", 1, "name", 42), "accounts[1] (ref ACC-2)", "name"),
    (_set("accounts", 1, "bill_unit", []), "accounts[1] (ref ACC-2)", "bill_unit"),
    (_set("contracts", 0, "auto_renew", "yes"), "contracts[0] (ref C-1)", "auto_renew"),
    # unknown references (the others are in tests/billing/test_importer.py)
    (_set("tax_rates", 1, "category", "NOPE"), "tax_rates[1] (category NOPE, country FR, "
     "valid_from 2014-01-01)", "category"),
    (_set("products", 1, "tax_category", "NOPE"), "products[1] (code P-API)", "tax_category"),
    (_set("accounts", 0, "bill_unit", "series", "NOPE"), "accounts[0] (ref ACC-1)",
     "bill_unit.series"),
    (_set("change_requests", 0, "item", "I-404"), "change_requests[0] (ref CR-1)", "item"),
    (_set("change_requests", 0, "new_price_plan", "NOPE"), "change_requests[0] (ref CR-1)",
     "new_price_plan"),
    (_set("deferred_actions", 0, "account", "ACC-404"), "deferred_actions[0] (ref DA-1)",
     "account"),
    # duplicate ids
    (_twice("tax_categories", 1, "code", 0), "tax_categories[1] (code STD)", "code"),
    (_twice("products", 2, "code", 0), "products[2] (code P-HOSTING)", "code"),
    (_twice("contracts", 2, "ref", 0), "contracts[2] (ref C-1)", "ref"),
    (_set("products", 2, "price_plans", 1, "code", "SETUP-EUR"),
     "products[2] (code P-SETUP).price_plans[1] (code SETUP-EUR)", "code"),
    (_set("contracts", 1, "items", 0, "ref", "I-1"),
     "contracts[1] (ref C-2).items[0] (ref I-1)", "ref"),
    (_set("tax_rates", 2, {"category": "STD", "country": "FR", "rate": "0.19",
                           "valid_from": "2014-01-01"}),
     "tax_rates[2] (category STD, country FR, valid_from 2014-01-01)", "valid_from"),
]  # fmt: skip


def test_huge_negative_unknown_and_duplicate_values_refuse_the_file(engine, tmp_path):
    """Each case refuses the whole file naming the record and the field; nothing is written."""
    for number, (change, record, field) in enumerate(REFUSED):
        path = master_with(tmp_path, change, f"case-{number}.json")
        assert_refused(engine, path, record, field)
    assert row_counts(engine)["accounts"] == 0


def test_bad_usage_rows_in_json_are_rejected_with_their_reasons(imported, tmp_path):
    path = tmp_path / "usage.json"
    rows = [
        ("J-1", "I-2", "5", "2026-03-01T00:00:00"),
        ("J-2", "I-2", "-5", "2026-03-01T00:00:00"),
        ("J-3", "I-2", 10**20, "2026-03-01T00:00:00"),
        ("J-4", "I-404", "1", "2026-03-01T00:00:00"),
        ("J-1", "I-2", "6", "2026-03-01T00:00:00"),
        ("J-\x005", "I-2", "1", "2026-03-01T00:00:00"),
        ("J-6", "I-2", "1", "yesterday"),
    ]
    keys = ("external_id", "item_ref", "quantity", "occurred_at")
    path.write_text(json.dumps({"usage": [dict(zip(keys, r, strict=True)) for r in rows]}))

    report = run_import(imported, path)

    assert report.counts == {"usage": Counts(inserted=1, rejected=6)}
    reasons = rejected_reasons(imported, "usage.json")
    assert [(n, r.split(" ")[0]) for n, r in reasons] == [
        (2, "quantity"), (3, "quantity:"), (4, "unknown"), (5, "duplicate"), (6, "external_id"),
        (7, "occurred_at"),
    ]  # fmt: skip
    assert "item_ref" in reasons[2][1] and "external_id" in reasons[3][1]
    assert run_import(imported, path).counts == {"usage": Counts(unchanged=1, rejected=6)}


# --- CSV usage: 10,000 rows with exactly 100 bad ones ---------------------------------------

BAD_KINDS: list[tuple[str, Callable[[int], list[str]]]] = [
    ("quantity", lambda n: [f"BIG-{n}", "I-2", "", "2026-03-01T00:00:00"]),
    ("quantity", lambda n: [f"BIG-{n}", "I-2", "-3", "2026-03-01T00:00:00"]),
    ("quantity", lambda n: [f"BIG-{n}", "I-2", "1e3", "2026-03-01T00:00:00"]),
    ("quantity", lambda n: [f"BIG-{n}", "I-2", "0.1234567", "2026-03-01T00:00:00"]),
    ("quantity", lambda n: [f"BIG-{n}", "I-2", "9" * 40, "2026-03-01T00:00:00"]),
    ("quantity", lambda n: [f"BIG-{n}", "I-2", "abc", "2026-03-01T00:00:00"]),
    ("occurred_at", lambda n: [f"BIG-{n}", "I-2", "1", "2026-02-30T00:00:00"]),
    ("occurred_at", lambda n: [f"BIG-{n}", "I-2", "1", "01/03/2026 10:00"]),
    ("occurred_at", lambda n: [f"BIG-{n}", "I-2", "1"]),  # a short row: its last field is missing
    ("item_ref", lambda n: [f"BIG-{n}", "I-404", "1", "2026-03-01T00:00:00"]),
    ("item_ref", lambda n: [f"BIG-{n}", "I-2\x00", "1", "2026-03-01T00:00:00"]),
    ("external_id", lambda n: ["", "I-2", "1", "2026-03-01T00:00:00"]),
    ("external_id", lambda n: ["X" * 129, "I-2", "1", "2026-03-01T00:00:00"]),
    ("external_id", lambda n: [f"BIG-{n - 1029}", "I-2", "1", "2026-03-01T00:00:00"]),  # dupe
    ("external_id", lambda n: [f"BIG-{n}\r\nBcc", "I-2", "1", "2026-03-01T00:00:00"]),
]
ROWS, BAD_EVERY = 10_000, 100


def big_usage_file(path: Path) -> tuple[dict[int, str], Decimal, set[str]]:
    """Write the file; return the bad rows (row number -> field), the good total and ids."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER.split(","))
    bad: dict[int, str] = {}
    total, ids = Decimal(0), set()
    for n in range(1, ROWS + 1):
        if n % BAD_EVERY == 50:
            field, make = BAD_KINDS[(n // BAD_EVERY) % len(BAD_KINDS)]
            bad[n] = field
            writer.writerow(make(n))
        else:
            quantity = Decimal(n % 997).scaleb(-3)
            total += quantity
            ids.add(f"BIG-{n}")
            row = [f"BIG-{n}", "I-2", format(quantity, "f"), f"2026-03-{n % 28 + 1:02d}T10:00"]
            writer.writerow(row)
    path.write_text(out.getvalue(), encoding="utf-8")
    return bad, total, ids


def rejected_reasons(engine: Engine, name: str) -> list[tuple[int, str]]:
    """(row number, reason) of the rejected rows of the file called ``name``, exactly."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(RejectedUsage.source, RejectedUsage.row_number, RejectedUsage.reason).order_by(
                RejectedUsage.row_number
            )
        ).all()
    return [(n, reason) for source, n, reason in rows if source.split("#")[0] == name]


def test_10000_rows_with_100_bad_ones_load_9900_and_reject_100(imported, tmp_path):
    path = tmp_path / "usage_10k%.csv"  # LIKE metacharacters in the name change nothing
    bad, total, ids = big_usage_file(path)
    assert len(bad) == 100 and len(set(bad.values())) == 4
    before = row_counts(imported)

    report = run_import(imported, path, chunksize=3_000)

    assert report.counts == {"usage": Counts(inserted=9_900, rejected=100)}
    after = row_counts(imported)
    assert after["usage_records"] - before["usage_records"] == 9_900
    assert after["rejected_usage"] - before["rejected_usage"] == 100
    reasons = rejected_reasons(imported, path.name)
    assert [n for n, _ in reasons] == sorted(bad)  # each rejected row names its row number
    for number, reason in reasons:
        assert bad[number] in reason, (number, reason)  # ... and its field
    with imported.connect() as conn:
        stored = conn.execute(
            select(UsageRecord.external_id, UsageRecord.quantity).where(
                UsageRecord.external_id.in_(sorted(ids))
            )
        ).all()
    assert {i for i, _ in stored} == ids  # no good row lost
    assert sum(q for _, q in stored) == total

    again = run_import(imported, path, chunksize=3_000)

    assert again.counts == {"usage": Counts(unchanged=9_900, rejected=100)}
    assert row_counts(imported) == after


# --- CSV usage: any rows, fuzzed ----------------------------------------------------------

CSV_FIELD = st.one_of(
    HOSTILE_TEXT.filter(lambda s: "\ud800" not in s),
    st.sampled_from(["I-2", "I-404", "1", "0.5", "-1", "2026-03-01T10:00", "2026-02-30T10:00"]),
    st.decimals(min_value=0, max_value=10**6, places=3).map(str),
)
CSV_ROWS = st.lists(
    st.tuples(st.text("ABCDEFGH", min_size=1, max_size=3), CSV_FIELD, CSV_FIELD, CSV_FIELD),
    min_size=1,
    max_size=12,
)


def check_fuzzed_csv(engine: Engine, tmp_path: Path, rows: list[tuple[str, ...]]) -> None:
    """Every data row is inserted, unchanged or rejected with a reason naming a column;
    a file refused whole changes nothing."""
    path = tmp_path / "fuzzed.csv"
    out = io.StringIO()
    writer = csv.writer(out)  # CRLF, so that a CR or LF in a field is quoted
    writer.writerow(HEADER.split(","))
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode("utf-8"))
    outcome, before, after = try_import(engine, path)
    note(str(outcome)[:300])
    if isinstance(outcome, ImportFileError):
        assert outcome.args[0].startswith("fuzzed.csv is not a readable usage CSV file")
        assert after == before
        return
    usage = outcome.of("usage")
    assert usage.inserted + usage.unchanged + usage.rejected == len(rows)
    assert after["usage_records"] - before["usage_records"] == usage.inserted
    assert after["rejected_usage"] - before["rejected_usage"] == usage.rejected


@FAST
@given(rows=CSV_ROWS)
def test_any_usage_rows_are_each_loaded_or_rejected(imported, tmp_path, rows):
    check_fuzzed_csv(imported, tmp_path, rows)


@pytest.mark.slow
@THOROUGH
@given(rows=CSV_ROWS)
def test_any_usage_rows_thoroughly(imported, tmp_path, rows):
    check_fuzzed_csv(imported, tmp_path, rows)


def test_unreadable_csv_is_refused_whole_even_after_full_chunks(imported, tmp_path, monkeypatch):
    """A bad byte in row 4,500 refuses the file after 4 chunks were loaded: they roll back."""
    path = tmp_path / "broken.csv"
    lines = [f"BRK-{n},I-2,1,2026-03-01T00:00:00" for n in range(1, 5_001)]
    body = ("\n".join([HEADER, *lines]) + "\n").encode()
    path.write_bytes(body.replace(b"BRK-4500,", b"BRK-4500\xff,"))
    before = row_counts(imported)
    loaded: list[int] = []
    load = UsageLoader.load

    def counting_load(self: UsageLoader, rows: list) -> None:
        loaded.append(len(rows))
        load(self, rows)

    monkeypatch.setattr(UsageLoader, "load", counting_load)  # observes, changes nothing

    with unit_of_work(imported) as session:
        with pytest.raises(ImportFileError, match="broken.csv is not a readable usage CSV"):
            import_file(session, path, chunksize=1_000)

    assert loaded == [1_000] * 4  # those rows were written before the bad byte was met
    assert row_counts(imported) == before


# --- bank statements ---------------------------------------------------------------------


def statement(tmp_path: Path, *lines: str, name: str = "statement.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([STATEMENT_HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def balances(engine: Engine) -> dict[str, Decimal]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Account.ref, Account.balance)).tuples().all())


def test_bad_statement_lines_are_rejected_with_reasons_and_leave_nothing(imported, tmp_path):
    path = statement(
        tmp_path,
        "T-1,ACC-1,10.00,EUR,2026-03-01,",
        "T-2,ACC-404,10.00,EUR,2026-03-01,",  # unknown account
        "T-3,ACC-1,-10.00,EUR,2026-03-01,",  # negative
        "T-4,ACC-1,99999999999999999,EUR,2026-03-01,",  # huge
        "T-5,ACC-1,10.001,EUR,2026-03-01,",  # fractions of a cent
        "T-6,ACC-1,10,JPY,2026-03-01,",  # not the account's currency
        "T-7,ACC-1,10,EUR,01/03/2026,",  # not ISO
        "T-8,ACC-1,10,EUR,2026-03-01,NO-BILL",  # unknown bill
        "T-1,ACC-1,99.00,EUR,2026-03-01,",  # same reference, another amount
        "T-\x009,ACC-1,10,EUR,2026-03-01,",  # NUL
        "T-10,ACC-3,1,JPY,2026-03-01,",
    )
    before = balances(imported)

    with unit_of_work(imported) as session:
        report = import_payments_csv(session, path)

    assert (report.inserted, report.settled, report.unchanged) == (2, 0, 0)
    assert [(n, r.split(" ")[0]) for n, r in report.rejected] == [
        (2, "unknown"), (3, "amount"), (4, "amount"), (5, "amount"), (6, "account"), (7, "date"),
        (8, "the"), (9, "reference"), (10, "reference"),
    ]  # fmt: skip
    assert (
        "out of range" in report.rejected[2][1] and "recorded as 10.00 EUR" in report.rejected[7][1]
    )
    after = balances(imported)
    assert after["ACC-1"] == before["ACC-1"] - 10 and after["ACC-3"] == before["ACC-3"] - 1
    with unit_of_work(imported) as session:
        again = import_payments_csv(session, path)
    assert (again.inserted, again.unchanged, len(again.rejected)) == (0, 2, 9)
    assert balances(imported) == after


UNREADABLE_STATEMENTS = [
    (b"reference,account\nT-1,ACC-1\n", "missing column(s) account_ref, amount, currency, date"),
    (b"", "missing column(s) reference"),
    (f"{STATEMENT_HEADER}\nU-1,ACC-1,5,EUR,2026-03-01,\nU-2,ACC-1,5,EUR,2026-03-\xff01,\n"
     .encode("latin-1"), "line 3 is not UTF-8 text"),
    ("\n".join([STATEMENT_HEADER, "U-1,ACC-1,5,EUR,2026-03-01,"]).encode("utf-16"),
     "line 1 is not UTF-8 text"),
    (b"<?xml version='1.0'?><Document><BkToCstmrStmt/></Document>", "missing column(s)"),
]  # fmt: skip


def test_unreadable_statement_imports_nothing(imported, tmp_path):
    """A good line before the bad one is rolled back too, although the caller commits."""
    before = row_counts(imported)
    for number, (content, message) in enumerate(UNREADABLE_STATEMENTS):
        path = tmp_path / f"statement-{number}.csv"
        path.write_bytes(content)
        with unit_of_work(imported) as session:
            with pytest.raises(PaymentRecordError, match=re.escape(message)):
                import_payments_csv(session, path)
    assert row_counts(imported) == before


STATEMENT_LINES = st.lists(
    st.tuples(
        st.sampled_from(["R-1", "R-2", "R-3", "DD-1-1"]),
        st.sampled_from(["ACC-1", "ACC-2", "ACC-3", "ACC-404", ""]),
        st.one_of(
            st.decimals(min_value=0, max_value=1000, places=2).map(str),
            st.sampled_from(["0", "-1", "1e3", "10.001", "9" * 15, "", " 5 "]),
        ),
        st.sampled_from(["EUR", "eur", "JPY", "XXX", ""]),
        st.sampled_from(["2026-03-01", "2026-02-30", ""]),
        st.sampled_from(["", "NO-BILL"]),
    ),
    min_size=1,
    max_size=8,
)


@FAST
@given(lines=STATEMENT_LINES)
def test_any_statement_lines_are_each_recorded_or_rejected(imported, tmp_path, lines):
    path = statement(tmp_path, *(",".join(line) for line in lines))
    outcome, before, after = try_import(imported, path, import_payments_csv)
    assert isinstance(outcome, StatementReport), str(outcome)
    seen = outcome.inserted + outcome.settled + outcome.unchanged + len(outcome.rejected)
    assert seen == len(lines)
    assert after["payments"] - before["payments"] == outcome.inserted
    assert all(reason for _, reason in outcome.rejected)


# --- the CLI ------------------------------------------------------------------------------


def test_cli_exit_codes_and_messages_for_every_entry_point(imported, db_url, tmp_path):
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, [*args, "--database", db_url])
        return result.exit_code, " ".join(result.output.split())

    before = row_counts(imported)
    bad_json = master_with(tmp_path, _set("accounts", 0, "name", "Eve\r\nBcc: x@y"), "bad.json")
    code, output = run("import", str(bad_json))
    assert code == 2
    assert "record accounts[0] (ref ACC-1), field name:" in output
    assert "contains a line break" in output and "nothing was imported" in output

    broken_csv = tmp_path / "broken.csv"
    broken_csv.write_bytes(f"{HEADER}\nA,I-2,1,2026-03-01T00:00\xff\n".encode("latin-1"))
    code, output = run("import", str(broken_csv))
    assert (code, "is not a readable usage CSV file" in output) == (2, True)
    assert "nothing was imported" in output

    unreadable = tmp_path / "statement.csv"
    unreadable.write_bytes(
        f"{STATEMENT_HEADER}\nS-1,ACC-1,5,EUR,2026-03-01,\n".encode() + b"\xff\n"
    )
    code, output = run("import", "payments", str(unreadable))
    assert code == 2
    assert "statement.csv: line 3 is not UTF-8 text" in output and "nothing was imported" in output
    assert row_counts(imported) == before

    rows_csv = tmp_path / "rows.csv"
    rows_csv.write_text(f"{HEADER}\nCLI-1,I-2,1,2026-03-01T00:00\nCLI-2,I-2,-1,2026-03-01T00:00\n")
    code, output = run("import", str(rows_csv))
    assert code == 0
    digest = hashlib.sha256(rows_csv.read_bytes()).hexdigest()[:16]  # the stored source
    assert (
        f"1 usage row(s) rejected, kept in table rejected_usage with source 'rows.csv#{digest}'"
        in output
    )

    lines = statement(tmp_path, "S-1,ACC-1,5,EUR,2026-03-01,", "S-2,ACC-9,5,EUR,2026-03-01,")
    code, output = run("import", "payments", str(lines))
    assert code == 0
    assert "line 2: unknown account 'ACC-9'" in output
    code, output = run("payment", "import", str(lines))
    assert code == 0 and "unchanged │ 1" in output
    with imported.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Payment)).scalar_one() == 1
