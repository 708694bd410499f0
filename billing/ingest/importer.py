"""Import master data (JSON) and usage (CSV or JSON) into the caller's transaction.

``import_file(session, path)`` never commits. A JSON file is all or nothing: the first bad
record raises ``ImportFileError`` naming the record (``accounts[2] (ref ACC-3)``) and the field,
and everything the call wrote is rolled back to a savepoint. Usage rows are the exception:
a bad usage row is data, kept in ``rejected_usage`` (see ``billing.ingest.importer_csv``).

Each account is also checked as an invoice's buyer (``billing.domain.buyers``): a business
buyer needs a complete address, a given VAT id must be valid for the buyer's country, and an
intra-EU business buyer needs one; which depends on the seller's country (``seller_country``).

Idempotence: a record whose key (ref, code, external_id) is already stored is skipped and
counted ``unchanged``; if a field the file gives differs from the stored value, the file is
refused (the importer never overwrites). docs/data-formats.md documents both formats.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import schwifty
from jsonschema.exceptions import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload

from billing.domain.actions import action_problem
from billing.domain.buyers import Buyer, CustomerType, buyer_problems, default_customer_type
from billing.domain.enums import ActionKind, ChangeKind, ItemType
from billing.domain.errors import BillingError, ImportFileError
from billing.domain.late_usage import DEFAULT_LATE_USAGE_DAYS
from billing.domain.money import minor_units, to_decimal
from billing.domain.periods import first_bill_date
from billing.domain.pricing import UNIT_PRICED_MODELS, Tier, item_plan_problem
from billing.domain.pricing import PricePlan as PlanCheck
from billing.domain.text import shown, text_problem
from billing.domain.vat import (
    DEFAULT_SELLER_COUNTRY,
    Supply,
    TaxClass,
    VatCategory,
    class_problems,
    rate_problem,
)
from billing.ingest.import_commitments import trial_end_problem
from billing.ingest.importer_csv import (
    DEFAULT_CHUNKSIZE,
    IN_BATCH,
    Counts,
    UsageLoader,
    UsageRow,
    id_map,
    import_usage_csv,
    source_label,
)
from billing.store.models import (
    Account,
    BillSeries,
    BillUnit,
    ChangeRequest,
    Contract,
    ContractItem,
    DeferredAction,
    PricePlan,
    PriceTier,
    Product,
    TaxCategory,
    TaxRate,
)
from billing.store.types import to_storage

SCHEMA_PATH = Path(__file__).parent / "schemas" / "import.schema.json"
KINDS = (
    "tax_categories", "tax_rates", "products", "price_plans", "accounts", "bill_units",
    "contracts", "contract_items", "change_requests", "deferred_actions", "discounts",
    "commitments", "usage_thresholds", "trials", "wallets", "wallet_grants", "usage",
)  # fmt: skip
RECORD_ARRAYS = frozenset(
    {"tax_categories", "tax_rates", "products", "price_plans", "tiers", "accounts", "contracts",
     "items", "change_requests", "deferred_actions", "discounts", "commitments",
     "usage_thresholds", "trials", "usage", "wallets", "grants"}
)  # fmt: skip
"""Arrays whose elements are records: an error path names the record, then the field."""


@dataclass
class ImportReport:
    """Per-kind counts of one import: inserted, unchanged (already stored) and rejected."""

    source: str
    counts: dict[str, Counts] = field(default_factory=dict)

    def of(self, kind: str) -> Counts:
        """The counts of one kind of record (created at zero on first use)."""
        return self.counts.setdefault(kind, Counts())

    def ordered(self) -> list[tuple[str, Counts]]:
        """The kinds in import order (dependencies first, usage last)."""
        rank = {kind: i for i, kind in enumerate(KINDS)}
        return sorted(self.counts.items(), key=lambda item: rank.get(item[0], len(rank)))

    @property
    def inserted(self) -> int:
        """Records inserted, all kinds together."""
        return sum(c.inserted for c in self.counts.values())

    @property
    def rejected(self) -> int:
        """Usage rows rejected, all kinds together."""
        return sum(c.rejected for c in self.counts.values())


def import_file(
    session: Session,
    path: Path | str,
    *,
    chunksize: int = DEFAULT_CHUNKSIZE,
    seller_country: str | None = None,
) -> ImportReport:
    """Import a ``.json`` master-data file or a ``.csv`` usage file; never commits.

    ``seller_country`` is the country of the seller who will invoice these accounts (which
    buyers need a VAT id depends on it); by default the demo seller's
    (``billing.documents.seller.DEFAULT_SELLER``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise ImportFileError(f"{path.name}: unknown file type {suffix!r}; use .json or .csv")
    report = ImportReport(source=path.name)
    try:
        with session.begin_nested():
            if suffix == ".csv":
                import_usage_csv(session, path, report.of("usage"), chunksize)
            else:
                import_json(session, path, report, chunksize, _seller_country(seller_country))
    except OSError as error:
        raise ImportFileError(f"cannot read {path}: {error.strerror or error}") from None
    except DBAPIError as error:
        raise ImportFileError(f"the database refused {path.name}: {error.orig}") from None
    return report


def _seller_country(given: str | None) -> str:
    """The seller's country: the one given, else the default seller's."""
    return given if given is not None else DEFAULT_SELLER_COUNTRY


# --- reading and validating the document -------------------------------------------------


class _FloatLiteral(str):
    """A JSON number with a fraction or exponent, kept as its text so it can be refused."""


class _Constant(str):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's ``json`` reads them, JSON has none."""


class _LongInteger(str):
    """A JSON integer with more digits than any field can hold, kept as its text."""


class _DuplicateKeys(dict):  # type: ignore[type-arg]
    """A JSON object that gave one key twice (``json`` would silently keep the last value)."""

    duplicate: str


MAX_DEPTH = 32
"""Deepest nesting a file may have: records are 4 levels deep, ``params`` gets the rest."""
MAX_INTEGER_DIGITS = 30


def _integer(text: str) -> int | _LongInteger:
    return int(text) if len(text.lstrip("-")) <= MAX_INTEGER_DIGITS else _LongInteger(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; one that repeats a key is flagged, so that the repeat can be refused."""
    document = dict(pairs)
    if len(document) == len(pairs):
        return document
    flagged = _DuplicateKeys(pairs)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            flagged.duplicate = key
            break
        seen.add(key)
    return flagged


def read_document(path: Path) -> dict[str, Any]:
    """Parse the file without ever making a float, refuse unsafe values, then check the schema."""
    try:
        document = json.loads(
            path.read_text(encoding="utf-8"),
            parse_float=_FloatLiteral,
            parse_int=_integer,
            parse_constant=_Constant,
            object_pairs_hook=_object,
        )
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path.name} is not UTF-8 text: {error}") from None
    except json.JSONDecodeError as error:
        raise ImportFileError(f"{path.name} is not JSON: {error}") from None
    except RecursionError:
        raise ImportFileError(
            f"{path.name} is nested too deeply (more than {MAX_DEPTH} levels)"
        ) from None
    _refuse_unsafe_values(document)
    _check_schema(document)
    return document  # type: ignore[no-any-return]


def _refuse_unsafe_values(document: Any) -> None:
    """Raise on the first value no field may hold: a float, NaN, a huge integer, a repeated key,
    text with a control character, line break or surrogate, or nesting beyond ``MAX_DEPTH``.

    Usage rows are left to the row checks: a bad usage value rejects its row, not the file.
    """
    for path, value in _walk(document, ()):
        problem = _value_problem(path, value)
        if problem is not None:
            message, where = problem
            record, name = locate(where, document)
            raise ImportFileError(message, record=record, field=name)


def _value_problem(
    path: tuple[str | int, ...], value: Any
) -> tuple[str, tuple[str | int, ...]] | None:
    """What is wrong with one JSON node, and the path to name in the error."""
    if isinstance(value, _FloatLiteral):
        return f'JSON number {value} is not allowed; write it as a string, e.g. "{value}"', path
    if isinstance(value, _Constant):
        return f"{value} is not a JSON value", path
    if isinstance(value, _LongInteger):
        return f"JSON integer of {len(value)} digits is out of range", path
    if len(path) > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels deep", path[: MAX_DEPTH + 1]
    if isinstance(value, _DuplicateKeys):
        return f"key {shown(value.duplicate)} is given twice", (*path, value.duplicate)
    in_usage = len(path) >= 2 and path[0] == "usage"
    if isinstance(value, str) and not in_usage:
        problem = text_problem(value)
        if problem is not None:
            return f"{shown(value)} {problem}", path
    if isinstance(value, dict) and not in_usage:
        key = next((k for k in value if text_problem(k)), None)
        if key is not None:
            return f"key {shown(key)} {text_problem(key)}", (*path, key)
    return None


def _walk(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every node of a JSON value with its path, depth first in document order (no recursion)."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [(path, value)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if len(path) > MAX_DEPTH:
            continue
        children: Iterable[tuple[str | int, Any]] = ()
        if isinstance(value, dict):
            children = value.items()
        elif isinstance(value, list):
            children = enumerate(value)
        stack.extend(reversed([((*path, key), child) for key, child in children]))


@cache
def _validator() -> jsonschema.Draft202012Validator:
    """The Draft 2020-12 validator of billing/ingest/schemas/import.schema.json."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _check_schema(document: Any) -> None:
    """Raise on the first schema error in document order, naming its record and field."""
    errors = list(_validator().iter_errors(document))
    if not errors:
        return
    error = min(errors, key=lambda e: [(isinstance(p, str), str(p).zfill(9)) for p in e.path])
    record, name = locate(tuple(error.absolute_path), document)
    missing = _missing_property(error)
    if missing:
        name = f"{name}.{missing}" if name else missing
    message = error.message if len(error.message) <= 300 else f"{error.message[:280]}..."
    raise ImportFileError(message, record=record, field=name)


def _missing_property(error: ValidationError) -> str | None:
    """The property a ``required`` or ``additionalProperties`` error is about."""
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        return next((p for p in error.validator_value if p not in instance), None)
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        return next((p for p in instance if p not in allowed), None)
    return None


def locate(path: Sequence[str | int], document: Any) -> tuple[str | None, str | None]:
    """Split a JSON path into the record (``accounts[2] (ref ACC-3)``) and the field."""
    record: list[str] = []
    node = document
    index = 0
    while (
        index + 1 < len(path) and path[index] in RECORD_ARRAYS and isinstance(path[index + 1], int)
    ):
        name, position = path[index], path[index + 1]
        node = _child(_child(node, name), position)
        record.append(f"{name}[{position}]{_key_text(node)}")
        index += 2
    rest = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[index:]]
    field_name = "".join(rest).lstrip(".") or None
    return (".".join(record) or None), field_name


def _child(node: Any, key: str | int) -> Any:
    """A child of a JSON node, or None when it is not there."""
    try:
        return node[key]
    except (KeyError, IndexError, TypeError):
        return None


def _key_text(node: Any) -> str:
    """`` (ref X)``, `` (code X)`` or `` (external_id X)``: how a record is recognised."""
    if not isinstance(node, dict):
        return ""
    for key in ("ref", "code", "external_id"):
        if isinstance(node.get(key), str):
            return f" ({key} {node[key]})"
    parts = [f"{k} {node[k]}" for k in ("category", "country", "valid_from") if k in node]
    return f" ({', '.join(parts)})" if parts else ""


# --- converting fields --------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """One record of the file with its label, for errors that name the record and field."""

    label: str
    data: Mapping[str, Any]

    def fail(self, message: str, name: str | None = None) -> ImportFileError:
        """The error for this record (and field)."""
        return ImportFileError(message, record=self.label, field=name)

    def amount(self, name: str) -> Decimal | None:
        """A money or quantity field as an exact Decimal (at most 6 decimals), or None."""
        value = self.data.get(name)
        if value is None:
            return None
        try:
            amount = to_decimal(value)
            to_storage(amount, "postgresql")
        except BillingError as error:
            raise self.fail(str(error), name) from None
        return amount

    def day(self, name: str) -> date | None:
        """A YYYY-MM-DD field as a date, or None."""
        value = self.data.get(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.fail(f"{value!r} is not a valid date", name) from None

    def currency(self, name: str = "currency") -> str:
        """An ISO 4217 currency code the engine knows the minor units of."""
        try:
            minor_units(self.data[name])
        except BillingError as error:
            raise self.fail(str(error), name) from None
        return str(self.data[name])

    def given(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The column values whose file field the record gives (what a re-import compares)."""
        return {k: v for k, v in values.items() if _has_field(self.data, _field_of(k))}


def _field_of(column: str) -> str:
    """The file field behind a column (``account_id`` is given as ``account``)."""
    return _FIELD_OF_COLUMN.get(column, column)


def _has_field(data: Mapping[str, Any], dotted: str) -> bool:
    """Whether a (dotted) field is present in a record."""
    head, _, rest = dotted.partition(".")
    if head not in data:
        return False
    return _has_field(data[head], rest) if rest else True


def _records(section: str, items: Sequence[Mapping[str, Any]], parent: str = "") -> list[_Record]:
    """Label each element of an array (``contracts[0] (ref C-1).items[2] (ref I-7)``)."""
    prefix = f"{parent}." if parent else ""
    return [
        _Record(f"{prefix}{section}[{i}]{_key_text(item)}", item) for i, item in enumerate(items)
    ]


def _no_duplicates(records: Sequence[_Record], key: Callable[[_Record], Any], name: str) -> None:
    """Refuse two records of one kind with the same key in the file."""
    first: dict[Any, _Record] = {}
    for record in records:
        value = key(record)
        if value in first:
            raise record.fail(f"duplicate {name} {value!r} (also {first[value].label})", name)
        first[value] = record


def _same_as_stored(record: _Record, stored: Any, values: Mapping[str, Any]) -> None:
    """Refuse a re-imported record whose given fields differ from the stored row."""
    for column, value in record.given(values).items():
        current = _stored_value(stored, column)
        if current != value:
            raise record.fail(
                f"already stored with {current!r}, the file says {value!r}; "
                "the importer never overwrites (change it in the application)",
                _field_of(column),
            )


def _stored_value(stored: Any, column: str) -> Any:
    """The stored value behind a column name (``bill_unit.cycle`` reads the first bill unit)."""
    if column.startswith("bill_unit."):
        units = sorted(stored.bill_units, key=lambda u: u.id)
        return getattr(units[0], column.split(".", 1)[1]) if units else None
    if column == "tiers":
        return [(t.up_to, t.unit_price, t.flat_fee) for t in stored.tiers]
    return getattr(stored, column)


_FIELD_OF_COLUMN = {
    "category_code": "category",
    "account_id": "account",
    "price_plan_id": "price_plan",
    "contract_item_id": "item",
    "contract_id": "contract",
    "new_price_plan_id": "new_price_plan",
    "bill_unit.series_code": "bill_unit.series",
}


def _stored(session: Session, model: Any, column: Any, keys: Iterable[Any], *opts: Any) -> dict:
    """Stored rows by key, queried in batches (``opts`` are loader options)."""
    wanted = sorted(set(keys))
    rows: dict[Any, Any] = {}
    for start in range(0, len(wanted), IN_BATCH):
        query = select(model).where(column.in_(wanted[start : start + IN_BATCH])).options(*opts)
        rows.update((getattr(row, column.key), row) for row in session.scalars(query))
    return rows


def _resolve(record: _Record, name: str, ids: Mapping[str, Any], what: str) -> Any:
    """The stored id (or row) a reference field points to; unknown refs fail the file."""
    ref = record.data[name]
    if ref not in ids:
        raise record.fail(f"unknown {what} {ref!r}: neither in this file nor in the database", name)
    return ids[ref]


# --- the sections, in dependency order ----------------------------------------------------


@dataclass
class _Import:
    """One JSON import in progress: the session, the report and the source name."""

    session: Session
    report: ImportReport
    seller_country: str

    def keep(self, kind: str, record: _Record, stored: Any, values: Mapping[str, Any]) -> bool:
        """Count a record; True when it is new and must be inserted."""
        if stored is None:
            self.report.of(kind).inserted += 1
            return True
        _same_as_stored(record, stored, values)
        self.report.of(kind).unchanged += 1
        return False

    def tax_categories(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Tax categories, by code."""
        records = _records("tax_categories", items)
        _no_duplicates(records, lambda r: r.data["code"], "code")
        codes = [r.data["code"] for r in records]
        stored = _stored(self.session, TaxCategory, TaxCategory.code, codes)
        for record in records:
            values = _tax_class_values(record)
            if self.keep("tax_categories", record, stored.get(values["code"]), values):
                self.session.add(TaxCategory(**values))
        self.session.flush()

    def tax_rates(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Tax rates, by (category, country, valid_from)."""
        records = _records("tax_rates", items)
        categories = self._category_codes(records, "category")
        classes = {
            row.code: _tax_class(row)
            for row in self.session.scalars(
                select(TaxCategory).where(TaxCategory.code.in_(list(categories)))
            )
        }
        rows = [(r, self._tax_rate_values(r, categories, classes)) for r in records]
        _no_duplicates(records, _tax_rate_key, "valid_from")
        stored = self._stored_tax_rates([_tax_rate_key(r) for r in records])
        for record, values in rows:
            if self.keep("tax_rates", record, stored.get(_tax_rate_key(record)), values):
                self.session.add(TaxRate(**values))
        self.session.flush()

    def _tax_rate_values(
        self, record: _Record, categories: Mapping[str, str], classes: Mapping[str, TaxClass]
    ) -> dict[str, Any]:
        """Column values of a tax rate (a fraction in [0, 1): "0.20" is 20 %), which must suit
        its class: positive when standard rated, zero when zero rated or exempt."""
        rate = record.amount("rate")
        if rate is None or not 0 <= rate < 1:
            raise record.fail(f"a rate is a fraction in [0, 1) such as 0.20, not {rate}", "rate")
        code = _resolve(record, "category", categories, "tax category")
        problem = rate_problem(classes[code], rate) if code in classes else None
        if problem:
            raise record.fail(f"tax category {code!r}: {problem}", "rate")
        return {
            "category_code": code,
            "country": record.data["country"],
            "rate": rate,
            "valid_from": record.day("valid_from"),
        }

    def _stored_tax_rates(self, keys: list[tuple[str, str, date | None]]) -> dict:
        """Stored tax rates by (category, country, valid_from)."""
        columns = tuple_(TaxRate.category_code, TaxRate.country, TaxRate.valid_from)
        rows: dict[tuple[Any, ...], TaxRate] = {}
        for start in range(0, len(keys), IN_BATCH):
            query = select(TaxRate).where(columns.in_(keys[start : start + IN_BATCH]))
            rows.update(
                ((r.category_code, r.country, r.valid_from), r) for r in self.session.scalars(query)
            )
        return rows

    def _category_codes(self, records: Sequence[_Record], name: str) -> dict[str, str]:
        """Tax category codes stored (the file's own were inserted first)."""
        codes = [r.data[name] for r in records]
        return {c: c for c in _stored(self.session, TaxCategory, TaxCategory.code, codes)}

    def products(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Products by code, then their price plans by code."""
        records = _records("products", items)
        _no_duplicates(records, lambda r: r.data["code"], "code")
        categories = self._category_codes(records, "tax_category")
        stored = _stored(self.session, Product, Product.code, [r.data["code"] for r in records])
        for record in records:
            values = {
                "code": record.data["code"],
                "name": record.data["name"],
                "name_translations": record.data.get("name_translations"),
                "tax_category": _resolve(record, "tax_category", categories, "tax category"),
                "gl_account": record.data.get("gl_account", "706000"),
            }
            if self.keep("products", record, stored.get(values["code"]), values):
                self.session.add(Product(**values))
        self.session.flush()
        self._price_plans(records)

    def _price_plans(self, products: Sequence[_Record]) -> None:
        """Price plans (with their tiers) of the file's products, by code."""
        product_ids = id_map(
            self.session, Product.code, Product.id, [p.data["code"] for p in products]
        )
        plans = [
            (plan, product_ids[product.data["code"]])
            for product in products
            for plan in _records("price_plans", product.data.get("price_plans", []), product.label)
        ]
        _no_duplicates([p for p, _ in plans], lambda r: r.data["code"], "code")
        codes = [p.data["code"] for p, _ in plans]
        stored = _stored(
            self.session, PricePlan, PricePlan.code, codes, selectinload(PricePlan.tiers)
        )
        for record, product_id in plans:
            values = _price_plan_values(record, product_id)
            if self.keep("price_plans", record, stored.get(values["code"]), values):
                tiers = [PriceTier(position=i, up_to=u, unit_price=p, flat_fee=f)
                         for i, (u, p, f) in enumerate(values.pop("tiers"))]  # fmt: skip
                self.session.add(PricePlan(**values, tiers=tiers))
        self.session.flush()

    def accounts(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Accounts by ref, each with its bill unit."""
        records = _records("accounts", items)
        _no_duplicates(records, lambda r: r.data["ref"], "ref")
        refs = [r.data["ref"] for r in records]
        stored = _stored(self.session, Account, Account.ref, refs, selectinload(Account.bill_units))
        series = set(self.session.scalars(select(BillSeries.code)))
        for record in records:
            _check_buyer(record, self.seller_country)
            values = _account_values(record, series)
            if self.keep("accounts", record, stored.get(values["ref"]), values):
                unit = {k.split(".", 1)[1]: values.pop(k) for k in list(values) if "." in k}
                self.session.add(Account(**values, bill_units=[BillUnit(**unit)]))
                self.report.of("bill_units").inserted += 1
            else:
                self.report.of("bill_units").unchanged += 1
        self.session.flush()

    def contracts(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Contracts by ref, then their items by ref."""
        records = _records("contracts", items)
        _no_duplicates(records, lambda r: r.data["ref"], "ref")
        accounts = self._accounts_by_ref(records)
        stored = _stored(self.session, Contract, Contract.ref, [r.data["ref"] for r in records])
        for record in records:
            values = _contract_values(record, accounts)
            if self.keep("contracts", record, stored.get(values["ref"]), values):
                self.session.add(Contract(**values))
        self.session.flush()
        self._items(records)

    def _accounts_by_ref(self, records: Sequence[_Record]) -> dict[str, Account]:
        """The stored accounts that records refer to by their ``account`` field."""
        return _stored(self.session, Account, Account.ref, [r.data["account"] for r in records])

    def _items(self, contracts: Sequence[_Record]) -> None:
        """Contract items of the file's contracts, by ref."""
        refs = [c.data["ref"] for c in contracts]
        stored_contracts = _stored(
            self.session, Contract, Contract.ref, refs, selectinload(Contract.account)
        )
        items = [
            (item, stored_contracts[contract.data["ref"]])
            for contract in contracts
            for item in _records("items", contract.data.get("items", []), contract.label)
        ]
        _no_duplicates([i for i, _ in items], lambda r: r.data["ref"], "ref")
        plans = _stored(
            self.session, PricePlan, PricePlan.code, [i.data["price_plan"] for i, _ in items]
        )
        stored = _stored(
            self.session, ContractItem, ContractItem.ref, [i.data["ref"] for i, _ in items]
        )
        for record, contract in items:
            values = _item_values(record, contract, plans)
            if self.keep("contract_items", record, stored.get(values["ref"]), values):
                self.session.add(ContractItem(**values))
        self.session.flush()

    def change_requests(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Change requests by ref, on items and price plans of the file or the database."""
        records = _records("change_requests", items)
        _no_duplicates(records, lambda r: r.data["ref"], "ref")
        item_ids = id_map(
            self.session, ContractItem.ref, ContractItem.id, [r.data["item"] for r in records]
        )
        plan_codes = [r.data["new_price_plan"] for r in records if r.data.get("new_price_plan")]
        plan_ids = id_map(self.session, PricePlan.code, PricePlan.id, plan_codes)
        plans = _stored(self.session, PricePlan, PricePlan.code, plan_codes)
        known_items = self._items_by_ref([r.data["item"] for r in records])
        refs = [r.data["ref"] for r in records]
        stored = _stored(self.session, ChangeRequest, ChangeRequest.ref, refs)
        for record in records:
            values = _change_values(record, item_ids, plan_ids)
            _check_change(record, known_items[record.data["item"]], plans)
            if self.keep("change_requests", record, stored.get(values["ref"]), values):
                self.session.add(ChangeRequest(**values))
        self.session.flush()

    def _items_by_ref(self, refs: Iterable[str]) -> dict[str, ContractItem]:
        """Stored contract items by ref, with their contract and price plan."""
        return _stored(
            self.session,
            ContractItem,
            ContractItem.ref,
            refs,
            selectinload(ContractItem.contract),
            selectinload(ContractItem.price_plan),
        )

    def deferred_actions(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Deferred actions by ref, on accounts of the file or the database: only actions the
        engine executes, with the params it reads (``billing.domain.actions``)."""
        records = _records("deferred_actions", items)
        _no_duplicates(records, lambda r: r.data["ref"], "ref")
        accounts = self._accounts_by_ref(records)
        item_refs = [r.data.get("params", {}).get("item_ref") for r in records]
        known_items = self._items_by_ref(ref for ref in item_refs if isinstance(ref, str))
        refs = [r.data["ref"] for r in records]
        stored = _stored(self.session, DeferredAction, DeferredAction.ref, refs)
        for record in records:
            account = _resolve(record, "account", accounts, "account")
            values = {
                "ref": record.data["ref"],
                "account_id": account.id,
                "action": record.data["action"],
                "params": record.data.get("params", {}),
                "due_on": record.day("due_on"),
            }
            _check_action(record, account, known_items)
            if self.keep("deferred_actions", record, stored.get(values["ref"]), values):
                self.session.add(DeferredAction(**values))
        self.session.flush()

    def discounts(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Discounts and applied coupons (``billing.ingest.import_discounts``)."""
        from billing.ingest.import_discounts import import_discounts  # it imports this module

        import_discounts(self, items)

    def commitments(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Minimum commitments (``billing.ingest.import_commitments``)."""
        from billing.ingest.import_commitments import import_commitments

        import_commitments(self, items)

    def usage_thresholds(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Usage thresholds of stored accounts (``billing.ingest.import_term_fields``)."""
        from billing.ingest.import_term_fields import import_usage_thresholds

        import_usage_thresholds(self, items)

    def trials(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Trial ends of stored items (``billing.ingest.import_term_fields``)."""
        from billing.ingest.import_term_fields import import_trials

        import_trials(self, items)

    def wallets(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Prepaid credit wallets by ref, and their grants (``billing.ingest.import_wallets``)."""
        from billing.ingest.import_wallets import import_wallets

        import_wallets(self, items)

    def usage(self, items: Sequence[Mapping[str, Any]], source: str, chunksize: int) -> None:
        """Usage rows, checked and loaded like a CSV usage file (bad rows are rejected)."""
        loader = UsageLoader(self.session, source, self.report.of("usage"))
        for start in range(0, len(items), chunksize):
            batch = items[start : start + chunksize]
            loader.load(
                [
                    UsageRow(start + i + 1, json.dumps(item, ensure_ascii=False), dict(item))
                    for i, item in enumerate(batch)
                ]
            )


def _tax_class_values(record: _Record) -> dict[str, Any]:
    """Column values of a tax category, a tax class ``billing.domain.vat`` can use."""
    data = record.data
    values = {
        "code": data["code"],
        "name": data["name"],
        "vat_category": data.get("vat_category", VatCategory.STANDARD.value),
        "supply": data.get("supply", Supply.SERVICES.value),
        "exemption_code": data.get("exemption_code"),
        "exemption_reason": data.get("exemption_reason"),
    }
    for name, problem in class_problems(_tax_class(SimpleNamespace(**values))):
        raise record.fail(problem, name)
    return values


def _tax_class(row: Any) -> TaxClass:
    """A stored (or about to be stored) tax category as the VAT rules read it."""
    return TaxClass(
        row.code,
        VatCategory(row.vat_category),
        Supply(row.supply),
        row.exemption_code,
        row.exemption_reason,
    )


def _tax_rate_key(record: _Record) -> tuple[str, str, date | None]:
    """A tax rate's key: category, country and first day of validity."""
    return (record.data["category"], record.data["country"], record.day("valid_from"))


def _price_plan_values(record: _Record, product_id: int) -> dict[str, Any]:
    """Column values of a price plan, checked by ``billing.domain.pricing.PricePlan``."""
    data = record.data
    tiers = [_Record(f"{record.label}.tiers[{i}]", t) for i, t in enumerate(data.get("tiers", []))]
    tier_values = [
        (t.amount("up_to"), t.amount("unit_price"), t.amount("flat_fee") or Decimal(0))
        for t in tiers
    ]
    values = {
        "code": data["code"],
        "product_id": product_id,
        "currency": record.currency(),
        "model": data["model"],
        "timing": data.get("timing"),
        "proration": data.get("proration", "by_day"),
        "unit_price": record.amount("unit_price"),
        "package_size": record.amount("package_size"),
        "period_months": data.get("period_months", 1),
        "unit": data.get("unit", "unit"),
        "late_usage_days": data.get("late_usage_days", DEFAULT_LATE_USAGE_DAYS),
        "tiers": tier_values,
    }
    _check_plan(record, values)
    return values


def _check_plan(record: _Record, values: Mapping[str, Any]) -> None:
    """Let the pricing module judge the plan; its error names the field."""
    try:
        PlanCheck(
            code=values["code"],
            model=values["model"],
            currency=values["currency"],
            unit_price=values["unit_price"],
            tiers=tuple(Tier(u, p, f) for u, p, f in values["tiers"]),
            package_size=values["package_size"],
            proration=values["proration"],
            timing=values["timing"],
            period_months=values["period_months"],
        )
    except BillingError as error:
        prefix = f"price plan {values['code']!r}: "
        message = str(error).removeprefix(prefix)
        name, _, text = message.partition(": ")
        raise record.fail(text or message, name if text else None) from None


def _account_values(record: _Record, series: set[str]) -> dict[str, Any]:
    """Column values of an account and (``bill_unit.*``) of its bill unit."""
    data = record.data
    optional = (
        "address_line", "postal_code", "city", "language", "email", "vat_id", "status",
        "payment_method", "bic", "mandate_ref", "card_token", "payment_terms_days",
    )  # fmt: skip
    values = {"ref": data["ref"], "name": data["name"], "country": data["country"]}
    values |= {name: data[name] for name in optional if name in data}
    values["customer_type"] = _customer_type(data).value
    values |= {
        "currency": record.currency(),
        "iban": _iban(record),
        "mandate_date": record.day("mandate_date"),
        "created_on": record.day("created_on"),
        "usage_threshold": _usage_threshold(record),
    }
    return values | _bill_unit_values(record, series)


def _usage_threshold(record: _Record) -> Decimal | None:
    """Progressive billing's amount (``billing.domain.thresholds``): positive, or None."""
    threshold = record.amount("usage_threshold")
    if threshold is not None and threshold <= 0:
        raise record.fail(
            f"{threshold} is not a positive amount (leave it out, or null, for no threshold)",
            "usage_threshold",
        )
    return threshold


def _customer_type(data: Mapping[str, Any]) -> CustomerType:
    """The account's customer type: given, else business when it has a VAT id."""
    given = data.get("customer_type")
    return CustomerType(given) if given else default_customer_type(data.get("vat_id"))


def _check_buyer(record: _Record, seller_country: str) -> None:
    """Refuse an account that cannot be invoiced as it stands (``billing.domain.buyers``):
    a business buyer without a complete address, a bad VAT id, a VAT id missing where the law
    requires it."""
    data = record.data
    buyer = Buyer(
        customer_type=_customer_type(data),
        country=data["country"],
        address_line=data.get("address_line", ""),
        postal_code=data.get("postal_code", ""),
        city=data.get("city", ""),
        vat_id=data.get("vat_id"),
    )
    problems = buyer_problems(buyer, seller_country)
    if problems:
        raise record.fail(problems[0].message, problems[0].field)


def _iban(record: _Record) -> str | None:
    """A valid IBAN in its compact form, or None."""
    value = record.data.get("iban")
    if value is None:
        return None
    try:
        return str(schwifty.IBAN(value).compact)
    except ValueError as error:
        raise record.fail(f"{value!r} is not a valid IBAN: {error}", "iban") from None


def _bill_unit_values(record: _Record, series: set[str]) -> dict[str, Any]:
    """The bill unit of an account: its next bill date is the first bill date after creation."""
    unit = record.data["bill_unit"]
    cycle = unit.get("cycle", "monthly")
    code = unit.get("series", "INV")
    if code not in series:
        raise record.fail(f"unknown bill series {code!r}", "bill_unit.series")
    created_on = record.day("created_on")
    assert created_on is not None
    try:
        next_bill = first_bill_date(
            created_on, unit["billing_day"], cycle, unit.get("alignment", "anniversary")
        )
    except BillingError as error:
        raise record.fail(str(error), "bill_unit") from None
    return {
        "bill_unit.billing_day": unit["billing_day"],
        "bill_unit.cycle": cycle,
        "bill_unit.series_code": code,
        "bill_unit.next_bill_date": next_bill,
    }


def _contract_values(record: _Record, accounts: Mapping[str, Account]) -> dict[str, Any]:
    """Column values of a contract."""
    data = record.data
    values = {
        "ref": data["ref"],
        "account_id": _resolve(record, "account", accounts, "account").id,
        "start_date": record.day("start_date"),
        "end_date": record.day("end_date"),
    }
    _check_order(record, values["start_date"], values["end_date"])
    return values | {k: data[k] for k in ("term_months", "auto_renew", "notice_days") if k in data}


def _check_order(record: _Record, start: date | None, end: date | None) -> None:
    """Refuse an end date before the start date."""
    if start is not None and end is not None and end < start:
        raise record.fail(f"end_date {end} is before start_date {start}", "end_date")


def _item_values(
    record: _Record, contract: Contract, plans: Mapping[str, PricePlan]
) -> dict[str, Any]:
    """Column values of a contract item; its plan must be in the account's currency."""
    plan = _resolve(record, "price_plan", plans, "price plan")
    if plan.currency != contract.account.currency:
        raise record.fail(
            f"price plan {plan.code!r} is in {plan.currency}, the account "
            f"{contract.account.ref!r} is billed in {contract.account.currency}",
            "price_plan",
        )
    problem = item_plan_problem(record.data["item_type"], plan.code, str(plan.model))
    if problem:
        raise record.fail(problem, "item_type")
    values = {
        "ref": record.data["ref"],
        "contract_id": contract.id,
        "price_plan_id": plan.id,
        "item_type": record.data["item_type"],
        "price_override": record.amount("price_override"),
        "start_date": record.day("start_date"),
        "end_date": record.day("end_date"),
        "trial_end_date": record.day("trial_end_date"),
    }
    _check_order(record, values["start_date"], values["end_date"])
    problem = trial_end_problem(record.data, values["start_date"], values["end_date"])
    if problem:
        raise record.fail(problem, "trial_end_date")
    if "quantity" in record.data:
        values["quantity"] = record.amount("quantity")
    return values


def _check_change(record: _Record, item: ContractItem, plans: Mapping[str, PricePlan]) -> None:
    """Refuse a swap to a plan that cannot price the item, or in another currency (the
    Contract Change Process would reject it when it comes due)."""
    if record.data["kind"] != ChangeKind.SWAP or not record.data.get("new_price_plan"):
        return
    plan = plans[record.data["new_price_plan"]]
    problem = item_plan_problem(str(item.item_type), plan.code, str(plan.model))
    if problem:
        raise record.fail(f"item {item.ref!r}: {problem}", "new_price_plan")
    if plan.currency != item.price_plan.currency:
        raise record.fail(
            f"price plan {plan.code!r} is in {plan.currency}, item {item.ref!r} is billed in "
            f"{item.price_plan.currency}",
            "new_price_plan",
        )


def _check_action(record: _Record, account: Account, items: Mapping[str, ContractItem]) -> None:
    """Refuse an action the engine does not execute or whose params it cannot use: an unknown
    name, a missing or extra param, an item that is not the account's, a price that has no
    effect on the item."""
    params = record.data.get("params", {})
    problem = action_problem(record.data["action"], params)
    if problem:
        name, message = problem
        raise record.fail(message, name)
    if "item_ref" not in params:
        return
    item = items.get(params["item_ref"])
    if item is None:
        raise record.fail(
            f"unknown contract item {params['item_ref']!r}: neither in this file nor in the "
            "database",
            "params.item_ref",
        )
    if item.contract.account_id != account.id:
        raise record.fail(
            f"contract item {item.ref!r} is not an item of account {account.ref!r}",
            "params.item_ref",
        )
    if record.data["action"] == ActionKind.CHANGE_PRICE:
        _check_price_change(record, item, params["price"])


def _check_price_change(record: _Record, item: ContractItem, price: Any) -> None:
    """A ``change_price`` price: an exact amount, on an item whose price it sets."""
    try:
        to_storage(to_decimal(price), "postgresql")
    except BillingError as error:
        raise record.fail(str(error), "params.price") from None
    if item.item_type == ItemType.ONE_TIME:
        raise record.fail(
            f"one-time item {item.ref!r} is charged once, at its start: a later price changes "
            "nothing",
            "params.price",
        )
    model = str(item.price_plan.model)
    if item.item_type != ItemType.RECURRING and model not in UNIT_PRICED_MODELS:
        raise record.fail(
            f"item {item.ref!r} is rated by the tiers of its {model} plan: a price changes nothing",
            "params.price",
        )


def _change_values(
    record: _Record, item_ids: Mapping[str, int], plan_ids: Mapping[str, int]
) -> dict[str, Any]:
    """Column values of a change request."""
    plan = record.data.get("new_price_plan")
    return {
        "ref": record.data["ref"],
        "contract_item_id": _resolve(record, "item", item_ids, "contract item"),
        "kind": record.data["kind"],
        "effective_date": record.day("effective_date"),
        "new_quantity": record.amount("new_quantity"),
        "new_price": record.amount("new_price"),
        "new_price_plan_id": (
            _resolve(record, "new_price_plan", plan_ids, "price plan") if plan else None
        ),
    }


SECTIONS = (
    "tax_categories", "tax_rates", "products", "accounts", "contracts", "change_requests",
    "deferred_actions", "discounts", "commitments", "usage_thresholds", "trials", "wallets",
)  # fmt: skip


def import_json(
    session: Session, path: Path, report: ImportReport, chunksize: int, seller_country: str
) -> None:
    """Import every section of a JSON document, in dependency order."""
    document = read_document(path)
    for kind in KINDS:
        if _SECTION_OF_KIND.get(kind, kind) in document:
            report.of(kind)
    job = _Import(session, report, seller_country)
    for section in SECTIONS:
        if section in document:
            getattr(job, section)(document[section])
    if "usage" in document:
        job.usage(document["usage"], source_label(path), chunksize)


_SECTION_OF_KIND = {
    "price_plans": "products",
    "bill_units": "accounts",
    "contract_items": "contracts",
    "wallet_grants": "wallets",
}
