"""Usage import: rows from a CSV file (streamed in chunks) or from a JSON ``usage`` array.

A usage row that fails validation is data, not an exception: it goes to ``rejected_usage``
with its reason, and the valid rows load. Loading is set-based per chunk (one query resolves the
item refs, one finds the external ids already stored, one executemany inserts), and idempotent:
``ON CONFLICT DO NOTHING`` on ``usage_records.external_id`` and on
``rejected_usage (source, row_number)``, so importing the same file twice adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from billing.domain.errors import ConfigurationError, ImportFileError, MoneyError
from billing.domain.text import shown, storable, text_problem
from billing.store.models import ContractItem, RejectedUsage, UsageRecord
from billing.store.types import to_storage

USAGE_COLUMNS = ("external_id", "item_ref", "quantity", "occurred_at")
DEFAULT_CHUNKSIZE = 50_000
IN_BATCH = 500
"""Keys per ``IN (...)`` query: far below SQLite's bound-parameter limit."""

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}.*")
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass
class Counts:
    """What an import did with the records of one kind."""

    inserted: int = 0
    unchanged: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class UsageRow:
    """One usage row as read, before validation (``row_number`` is 1-based)."""

    row_number: int
    raw: str
    values: dict[str, Any]


@dataclass(frozen=True)
class _Valid:
    """A usage row that passed the checks that need no database."""

    row: UsageRow
    external_id: str
    item_ref: str
    quantity: Decimal
    occurred_at: datetime


class UsageLoader:
    """Loads batches of usage rows from one source into the session's transaction."""

    def __init__(self, session: Session, source: str, counts: Counts) -> None:
        """Remember where rows go; ids above the current maximum are this import's own rows."""
        self.session = session
        self.source = source
        self.counts = counts
        self.baseline_id = session.scalar(select(func.max(UsageRecord.id))) or 0

    def load(self, rows: Sequence[UsageRow]) -> None:
        """Validate one batch, insert its valid rows and record its rejected ones."""
        valid, rejected = _check_rows(rows)
        resolved = self._resolve_items(valid, rejected)
        fresh = self._drop_stored(resolved, rejected)
        self._insert_usage(fresh)
        self._insert_rejected(rejected)
        self.counts.inserted += len(fresh)
        self.counts.rejected += len(rejected)

    def _resolve_items(
        self, valid: list[_Valid], rejected: list[tuple[UsageRow, str]]
    ) -> list[tuple[_Valid, int]]:
        """Attach contract item ids (one query per batch); unknown refs are rejected."""
        refs = {row.item_ref for row in valid}
        ids = id_map(self.session, ContractItem.ref, ContractItem.id, refs)
        kept: list[tuple[_Valid, int]] = []
        for row in valid:
            if row.item_ref in ids:
                kept.append((row, ids[row.item_ref]))
            else:
                rejected.append((row.row, f"unknown item_ref {shown(row.item_ref)}"))
        return kept

    def _drop_stored(
        self, valid: list[tuple[_Valid, int]], rejected: list[tuple[UsageRow, str]]
    ) -> list[tuple[_Valid, int]]:
        """Skip rows already stored; one stored by this very import is a duplicate in the file."""
        stored = id_map(
            self.session, UsageRecord.external_id, UsageRecord.id, {r.external_id for r, _ in valid}
        )
        fresh = []
        for row, item_id in valid:
            stored_id = stored.get(row.external_id)
            if stored_id is None:
                fresh.append((row, item_id))
            elif stored_id > self.baseline_id:
                rejected.append((row.row, _duplicate(row.external_id)))
            else:
                self.counts.unchanged += 1
        return fresh

    def _insert_usage(self, fresh: list[tuple[_Valid, int]]) -> None:
        """Insert the new usage records with one executemany."""
        if fresh:
            rows = [
                {
                    "external_id": r.external_id,
                    "contract_item_id": item_id,
                    "quantity": r.quantity,
                    "occurred_at": r.occurred_at,
                }
                for r, item_id in fresh
            ]
            table = UsageRecord.__table__
            self.session.execute(insert_ignoring(self.session, table, ["external_id"]), rows)

    def _insert_rejected(self, rejected: list[tuple[UsageRow, str]]) -> None:
        """Record rejected rows once: a re-import of the same file adds none."""
        if rejected:
            rows = [
                {
                    "source": self.source,
                    "row_number": row.row_number,
                    "external_id": storable(_text(row.values.get("external_id"))[:128]) or None,
                    "raw": storable(row.raw),
                    "reason": reason,
                }
                for row, reason in sorted(rejected, key=lambda item: item[0].row_number)
            ]
            table = RejectedUsage.__table__
            keys = ["source", "row_number"]
            self.session.execute(insert_ignoring(self.session, table, keys), rows)


def insert_ignoring(session: Session, table: Any, keys: list[str]) -> Executable:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` for the session's dialect."""
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:
        raise ConfigurationError(f"usage import supports SQLite and PostgreSQL, not {dialect}")
    assert isinstance(table, Table)
    statement: Any = _INSERTS[dialect](table)
    return statement.on_conflict_do_nothing(index_elements=keys)  # type: ignore[no-any-return]


def id_map(session: Session, key: Any, id_column: Any, keys: Iterable[Any]) -> dict[Any, int]:
    """Map each stored key to its id, querying in batches of ``IN_BATCH`` keys."""
    wanted = sorted(set(keys))
    found: dict[Any, int] = {}
    for start in range(0, len(wanted), IN_BATCH):
        batch = wanted[start : start + IN_BATCH]
        found.update(session.execute(select(key, id_column).where(key.in_(batch))).tuples().all())
    return found


def _check_rows(rows: Sequence[UsageRow]) -> tuple[list[_Valid], list[tuple[UsageRow, str]]]:
    """Split a batch into rows that pass the field checks and rejected rows with reasons."""
    valid: list[_Valid] = []
    rejected: list[tuple[UsageRow, str]] = []
    seen: set[str] = set()
    for row in rows:
        checked = check_usage_row(row)
        if isinstance(checked, str):
            rejected.append((row, checked))
        elif checked.external_id in seen:
            rejected.append((row, _duplicate(checked.external_id)))
        else:
            seen.add(checked.external_id)
            valid.append(checked)
    return valid, rejected


def _duplicate(external_id: str) -> str:
    """The reason for a row whose external id came earlier in the same file (any chunk)."""
    return f"duplicate external_id {shown(external_id)} earlier in the file"


def check_usage_row(row: UsageRow) -> _Valid | str:
    """Return the parsed row, or the reason it is rejected."""
    values = {name: _text(row.values.get(name)) for name in USAGE_COLUMNS}
    for name in USAGE_COLUMNS:
        if not values[name].strip():
            return f"{name} is missing or blank"
        problem = text_problem(values[name])
        if problem is not None:
            return f"{name} {shown(values[name])} {problem}"
    if len(values["external_id"]) > 128:
        return "external_id is longer than 128 characters"
    quantity = parse_quantity(values["quantity"])
    if isinstance(quantity, str):
        return quantity
    occurred_at = parse_timestamp(values["occurred_at"])
    if isinstance(occurred_at, str):
        return occurred_at
    return _Valid(row, values["external_id"], values["item_ref"], quantity, occurred_at)


def _text(value: Any) -> str:
    """A field as text: integers (JSON) become their digits, a missing field is empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def parse_quantity(text: str) -> Decimal | str:
    """Return a usage quantity (a plain decimal >= 0, at most 6 decimals), or why it is bad."""
    if not _DECIMAL.fullmatch(text):
        return f"quantity {shown(text)} is not a decimal number"
    quantity = Decimal(text)
    if quantity < 0:
        return f"quantity {shown(text)[1:-1]} is negative"
    try:
        to_storage(quantity, "postgresql")
    except MoneyError as error:
        return f"quantity: {str(error).replace(str(quantity), shown(text)[1:-1])}"
    return quantity


def parse_timestamp(text: str) -> datetime | str:
    """Return an ISO 8601 date-time as naive UTC (an offset is converted), or why it is bad."""
    if not _DATETIME.fullmatch(text):
        return f"occurred_at {shown(text)} is not an ISO 8601 date-time (YYYY-MM-DDTHH:MM[:SS])"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return f"occurred_at {shown(text)} is not a valid date-time"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def source_label(path: Path) -> str:
    """The file's name and a digest of its content: two different files never share a label."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{path.name}#{digest.hexdigest()[:16]}"


def import_usage_csv(
    session: Session, path: Path, counts: Counts, chunksize: int = DEFAULT_CHUNKSIZE
) -> None:
    """Stream a usage CSV into the session, ``chunksize`` rows at a time."""
    columns = _read_header(path)
    loader = UsageLoader(session, source_label(path), counts)
    raw_lines = raw_records(path)
    try:
        with _read_chunks(path, chunksize) as reader:
            start = 1
            for chunk in reader:
                loader.load(_chunk_rows(chunk, columns, start, raw_lines))
                start += len(chunk)
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as error:
        raise ImportFileError(f"{path.name} is not a readable usage CSV file: {error}") from None
    finally:
        raw_lines.close()


def _read_header(path: Path) -> list[str]:
    """Return the header's column names; it must hold exactly the usage columns, in any order."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise ImportFileError(f"{path.name} is not a readable usage CSV file: {error}") from None
    columns = [name.strip() for name in header]
    missing = [name for name in USAGE_COLUMNS if name not in columns]
    extra = [name for name in columns if name not in USAGE_COLUMNS]
    if missing or extra or len(columns) != len(USAGE_COLUMNS):
        raise ImportFileError(
            f"the header must be {','.join(USAGE_COLUMNS)} (any order); "
            f"missing {missing}, unexpected {extra}",
            record=f"{path.name} header",
        )
    return columns


def _read_chunks(path: Path, chunksize: int) -> Any:
    """Open the CSV as a pandas chunk reader: every field a string, nothing turned into NaN."""
    return pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        index_col=False,
        encoding="utf-8",
        chunksize=chunksize,
    )


def _chunk_rows(
    chunk: pd.DataFrame, columns: list[str], start: int, raw_lines: Iterator[str]
) -> list[UsageRow]:
    """Turn a pandas chunk into usage rows numbered from ``start``, with their source text."""
    rows = []
    for offset, fields in enumerate(chunk.itertuples(index=False, name=None)):
        texts = [_text(field) for field in fields]
        raw = _raw_text(next(raw_lines, None), texts)
        rows.append(UsageRow(start + offset, raw, dict(zip(columns, texts, strict=True))))
    return rows


def _raw_text(source: str | None, fields: list[str]) -> str:
    """The record's source text when it holds the fields pandas read, else the fields as CSV."""
    if source is not None:
        parsed = next(csv.reader(io.StringIO(source)), [])
        if parsed + [""] * (len(fields) - len(parsed)) == fields:
            return source
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def raw_records(path: Path) -> Generator[str, None, None]:
    """Yield the exact source text of each data record, skipping blank lines as pandas does."""
    with path.open(encoding="utf-8-sig", newline="", errors="replace") as handle:
        captured: list[str] = []
        reader = csv.reader(_capture(handle, captured))
        next(reader, None)
        captured.clear()
        for fields in reader:
            text = "".join(captured).rstrip("\r\n")
            captured.clear()
            if len(fields) > 1 or any(field.strip() for field in fields):
                yield text


def _capture(lines: Iterable[str], captured: list[str]) -> Iterator[str]:
    """Pass lines through to the csv reader, keeping those of the current record."""
    for line in lines:
        captured.append(line)
        yield line
