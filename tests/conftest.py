"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, each in its own store.

PostgreSQL comes from ``BILLING_TEST_POSTGRES_URL`` (default: the local trust-auth server).
Each test gets a fresh schema there, and a fresh file on SQLite. In CI (``CI=true``) an
unreachable PostgreSQL fails the run instead of skipping.

The ``engine`` fixture does not migrate each test's store: every pytest process (each xdist
worker is one) migrates one template per database once, and each test gets a copy of it
(docs/testing.md). SQLite: the migrated file is copied. PostgreSQL: the statements the
migration sent to the server are recorded once, rendered with their parameters, and replayed
into the test's fresh schema in one round trip. tests/billing/test_schema.py checks that a
copy equals a fresh ``upgrade`` on both databases.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from billing.store.db import make_engine
from billing.store.migrate import upgrade

# A developer's `make server` records its stack under var/prefect, and `billing run` reports
# to a running stack (flows/stack.py). Tests only talk to servers they start themselves: the
# session gets a PREFECT_HOME of its own (tests/operations pass their stacks' homes explicitly).
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="openbill-tests-prefect-")

# An xdist worker starts with COLUMNS=80 in its environment; billing.cli.common's console
# would take it and wrap the CLI's tables at 80. Without it, a worker is what a serial run
# without a terminal is (tests/billing/cli/test_show.py reads whole rows).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)

PG_URL = os.environ.get(
    "BILLING_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
if PG_URL.startswith("postgresql://"):
    PG_URL = "postgresql+psycopg2://" + PG_URL.removeprefix("postgresql://")

_pg_checked: dict[str, bool] = {}


def _postgres_available() -> bool:
    if "ok" not in _pg_checked:
        try:
            probe = make_engine(PG_URL)
            with probe.connect() as conn:
                conn.execute(text("select 1"))
            probe.dispose()
            _pg_checked["ok"] = True
        except OperationalError:
            _pg_checked["ok"] = False
    return _pg_checked["ok"]


def require_postgres() -> None:
    """Skip locally, fail in CI, when PostgreSQL does not answer."""
    if _postgres_available():
        return
    message = f"PostgreSQL does not answer at {PG_URL}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def pg_schema_url(schema: str) -> str:
    """A URL whose connections use ``schema`` as search path."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


# A test's commits need not wait for PostgreSQL's WAL flush: nothing survives a server crash
# in a test anyway, and every other session sees a commit at once either way (tests only).
NO_WAL_FLUSH = "SET LOCAL synchronous_commit TO off"


def _no_wal_flush(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    dbapi_connection.commit()


_admin_engines: list[Engine] = []


def _admin() -> Engine:
    """One engine per process for creating, cloning and dropping schemas (its pool is kept:
    a new connection costs more than the statements it sends)."""
    if not _admin_engines:
        _admin_engines.append(make_engine(PG_URL))
    return _admin_engines[0]


# The system catalogues every test schema's tables, columns, constraints and triggers go
# through: each copy built, reset (a TRUNCATE makes new files) or dropped leaves dead rows in
# them, and the test server runs without autovacuum. Unvacuumed, they grew run after run (3.4
# million dead rows in pg_attribute, 700 MB: SCHEMA_DIGEST took 0.2 s, not 0.01 s, and every
# PostgreSQL test's reset with it). One VACUUM per session keeps them at one run's churn.
CATALOGUES = (
    "pg_attribute", "pg_attrdef", "pg_class", "pg_constraint", "pg_depend", "pg_index",
    "pg_sequence", "pg_statistic", "pg_trigger", "pg_type",
)  # fmt: skip


def pytest_sessionstart(session: pytest.Session) -> None:
    """Vacuum the catalogues once per run, in the controller (not in each xdist worker).
    Only a superuser or the database's owner may: for anyone else PostgreSQL warns and skips,
    and an unreachable server is left to the tests (``require_postgres``)."""
    if hasattr(session.config, "workerinput") or not _postgres_available():
        return
    probe = make_engine(PG_URL)
    try:
        with probe.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM " + ", ".join(f"pg_catalog.{c}" for c in CATALOGUES)))
    finally:
        probe.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    while _admin_engines:
        _admin_engines.pop().dispose()


@contextmanager
def scratch_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema's name, dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _admin().begin() as conn:
        conn.execute(text(NO_WAL_FLUSH))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        with _admin().begin() as conn:
            conn.execute(text(NO_WAL_FLUSH))
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def pg_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty PostgreSQL schema, dropped after the test; for a test that uses
    ``engine``, a migrated one from the process's pool instead (see ``migrated_schema``)."""
    if "engine" in request.fixturenames:
        with migrated_schema(request.getfixturevalue("pg_template")) as schema:
            yield schema
        return
    with scratch_schema() as schema:
        yield schema


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """An empty database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'billing.db'}"
    schema = request.getfixturevalue("pg_schema")
    return pg_schema_url(schema)


# --- Template databases: migrate once per process, copy per test ---------------------------


def _worker() -> str:
    """This pytest process's name: ``gw0``, ``gw1``... under xdist, else ``main``."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the latest revision, once per process (never written again)."""
    path = tmp_path_factory.mktemp(f"template-{_worker()}") / "billing.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()
    with closing(sqlite3.connect(path)) as conn:  # the WAL into the file: one file is the store
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def copy_sqlite_template(template: Path, url: str) -> None:
    """Make the file of SQLite ``url`` a copy of the migrated template."""
    target = Path(url.split("///", 1)[-1])
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


# Everything a statement could change in a schema's definition, as one digest: its relations,
# columns with types and defaults, constraints, indexes, triggers, functions, types and
# sequences' parameters, with the schema's own name left out (run with the schema as
# search path). Two schemas with equal digests were built by the same DDL.
SCHEMA_DIGEST = """
SELECT md5(string_agg(y, E'\\n' ORDER BY y))
FROM (SELECT replace(x, current_schema() || '.', '') FROM (
  SELECT 'r ' || relname || ' ' || relkind::text FROM pg_class
   WHERE relnamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'a ' || c.relname || ' ' || a.attnum::text || ' ' || a.attname || ' '
         || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
         || a.attidentity::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0
     AND NOT a.attisdropped
  UNION ALL
  SELECT 'k ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'i ' || indexdef FROM pg_indexes WHERE schemaname = current_schema()
  UNION ALL
  SELECT 't ' || t.tgname || ' ' || t.tgrelid::regclass::text || ' ' || t.tgenabled::text
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'p ' || oid::regprocedure::text FROM pg_proc
   WHERE pronamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'y ' || typname FROM pg_type WHERE typnamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 's ' || sequencename || ' ' || data_type::text || ' ' || start_value::text || ' '
         || min_value::text || ' ' || max_value::text || ' ' || increment_by::text || ' '
         || cycle::text
    FROM pg_sequences WHERE schemaname = current_schema()
) digest(x)) named(y)
"""

# Every sequence of the schema back to its state when created: its start value, not yet used.
RESTART_SEQUENCES = (
    "SELECT setval(quote_ident(schemaname) || '.' || quote_ident(sequencename), start_value,"
    " false) FROM pg_sequences WHERE schemaname = current_schema()"
)


@dataclass(frozen=True)
class PgTemplate:
    """The migrated template schema and the script that rebuilds it in another schema.

    ``rows`` is the part of the script that writes rows (the seeded ones, ``alembic_version``),
    ``tables`` the template's tables, those that others reference last, and ``digest`` its
    ``SCHEMA_DIGEST``: together they bring a used copy back to a fresh one without rebuilding
    it (``reset``).
    """

    schema: str
    script: str
    rows: str
    tables: tuple[str, ...]
    digest: str

    @property
    def empty_tables(self) -> str:
        """Empty every table. ``DELETE`` costs almost nothing on the few rows most tests
        write, where ``TRUNCATE`` makes new files for each table and index (0.1 to 0.6 s for
        all of them). Deleted rows stay in the files until a vacuum (the test server may run
        without autovacuum), so a table past 512 kB with its indexes is truncated: no copy
        drags more than that of dead rows along. Referencing tables come first: their
        foreign keys find no row."""
        steps = "\n".join(
            f"IF pg_total_relation_size('{t}') > 524288 THEN TRUNCATE {t} CASCADE;"
            f" ELSE DELETE FROM {t}; END IF;"
            for t in self.tables
        )
        return f"DO $$ BEGIN\n{steps}\nEND $$"

    def clone_into(self, schema: str) -> None:
        """Replay the migration's statements into the existing, empty ``schema``."""
        raw = _admin().raw_connection()
        try:
            with raw.cursor() as cursor:
                cursor.execute(f"{NO_WAL_FLUSH}; SET LOCAL search_path TO {schema};\n{self.script}")
            raw.commit()
        finally:
            raw.close()  # back to the pool

    def reset(self, schema: str) -> bool:
        """Bring a copy a test has used back to what ``clone_into`` makes: when its definition
        is still the template's (``SCHEMA_DIGEST``), empty every table, restart every
        sequence and write the seeded rows again, and say True. A schema whose definition a
        test changed is left as it is: False (the caller drops it)."""
        raw = _admin().raw_connection()
        try:
            with raw.cursor() as cursor:
                cursor.execute(f"{NO_WAL_FLUSH}; SET LOCAL search_path TO {schema}")
                cursor.execute(SCHEMA_DIGEST)
                (digest,) = cursor.fetchone()
                if digest != self.digest:
                    raw.rollback()
                    return False
                # Immediate: a DELETE from charges would otherwise leave its deferred foreign
                # key's check pending, and TRUNCATE refuses a table with pending trigger
                # events ("cannot TRUNCATE "charges" because it has pending trigger events").
                cursor.execute(
                    f"SET CONSTRAINTS ALL IMMEDIATE;\n{self.empty_tables};\n"
                    f"{RESTART_SEQUENCES};\n{self.rows}"
                )
            raw.commit()
            return True
        finally:
            raw.close()


def _record_statements(eng: Engine) -> list[str]:
    """Every statement ``eng`` sends from now on, rendered with its parameters (psycopg2)."""
    sent: list[str] = []

    @event.listens_for(eng, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        for one in params if many else [params]:
            rendered = cursor.mogrify(statement, one) if one else statement.encode()
            sent.append(rendered.decode() if isinstance(rendered, bytes) else rendered)

    return sent


def migrated_pg_template(schema: str) -> PgTemplate:
    """Migrate the empty ``schema`` with ``upgrade`` and keep what it sent as a script."""
    eng = make_engine(pg_schema_url(schema))
    try:
        sent = _record_statements(eng)
        upgrade(eng)
    finally:
        eng.dispose()
    for statement in sent:  # the replay must land in whichever schema it is given
        assert schema not in statement, f"the migration names its schema: {statement}"
    statements = [s.rstrip().rstrip(";") for s in sent]
    rows = [s for s in statements if s.lstrip().split(None, 1)[0].upper() in WRITES_ROWS]
    with _admin().connect() as conn:
        conn.execute(text(f"SET search_path TO {schema}"))
        digest = conn.execute(text(SCHEMA_DIGEST)).scalar_one()
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
        ).scalars()
        references = conn.execute(
            text(
                "SELECT confrelid::regclass::text, conrelid::regclass::text FROM pg_constraint"
                " WHERE contype = 'f' AND connamespace = CAST(:s AS regnamespace)"
            ),
            {"s": schema},
        )
        referenced_by = {table: set() for table in tables}
        for referenced, referencing in references:
            if referenced != referencing:
                referenced_by[referenced].add(referencing)
        conn.execute(text("RESET search_path"))
    # The referencing tables before the ones they reference (emptied in that order).
    order = TopologicalSorter(referenced_by).static_order()
    # A later migration may drop a table an earlier one wrote rows to (0010 drops bill_lines,
    # which 0006 updated): those writes are not replayed into an emptied copy.
    rows = [s for s in rows if _written_table(s) in referenced_by]
    return PgTemplate(
        schema,
        script=";\n".join(statements) + ";",
        rows="".join(f"{s};\n" for s in rows),
        tables=tuple(order),
        digest=digest,
    )


# The statements of a migration that write rows, not definitions (replayed by ``reset``).
WRITES_ROWS = {"INSERT", "UPDATE", "DELETE"}
_WRITTEN = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)


def _written_table(statement: str) -> str | None:
    """The table an INSERT, UPDATE or DELETE writes to."""
    found = _WRITTEN.match(statement)
    return found[1] if found else None


# Migrated copies of this process's template that no test holds, ready for the next one.
_ready_schemas: list[str] = []
# The migrated copies tests hold now (their ``pg_schema``: ``migrated_copy`` has nothing to do).
_migrated_in_use: set[str] = set()


@contextmanager
def migrated_schema(template: PgTemplate) -> Iterator[str]:
    """A PostgreSQL schema equal to a fresh copy of ``template``, for one test.

    Building a copy (0.3 to 0.4 s of DDL) and dropping it (0.1 to 0.3 s) cost more than most
    tests that use it; emptying one costs under 0.1 s. So a used copy is ``reset`` and kept for
    the process's next test, unless the test changed its definition: then it is dropped, and
    the next test gets a new copy. tests/billing/test_schema.py checks that a reset copy
    equals a fresh ``upgrade``.
    """
    if _ready_schemas:
        schema = _ready_schemas.pop()
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with _admin().begin() as conn:
            conn.execute(text(NO_WAL_FLUSH))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        template.clone_into(schema)
    _migrated_in_use.add(schema)
    try:
        yield schema
    finally:
        _migrated_in_use.discard(schema)
        if template.reset(schema):
            _ready_schemas.append(schema)
        else:
            _drop_schemas([schema])


def _drop_schemas(schemas: list[str]) -> None:
    if schemas:
        with _admin().begin() as conn:
            conn.execute(text(NO_WAL_FLUSH))
            conn.execute(text(f"DROP SCHEMA {', '.join(schemas)} CASCADE"))


@pytest.fixture(scope="session")
def pg_template() -> Iterator[PgTemplate]:
    """A PostgreSQL schema migrated once per process (its name holds the xdist worker's).
    When the session ends, it is dropped with the copies kept for reuse."""
    require_postgres()
    schema = f"tpl_{_worker()}_{uuid.uuid4().hex[:8]}"
    with _admin().begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield migrated_pg_template(schema)
    finally:
        _drop_schemas([schema, *_ready_schemas])
        _ready_schemas.clear()


def migrated_copy(request: pytest.FixtureRequest, url: str) -> None:
    """Make the store at ``url`` (from ``db_url``) a copy of its backend's template."""
    if url.startswith("sqlite"):
        copy_sqlite_template(request.getfixturevalue("sqlite_template"), url)
    else:
        schema = request.getfixturevalue("pg_schema")  # the one in ``url``
        assert url == pg_schema_url(schema)
        if schema not in _migrated_in_use:  # ``engine`` asked for late: an empty schema
            request.getfixturevalue("pg_template").clone_into(schema)


@pytest.fixture
def engine(request: pytest.FixtureRequest, db_url: str) -> Iterator[Engine]:
    """A migrated database on each backend (a copy of the session's template)."""
    migrated_copy(request, db_url)
    eng = make_engine(db_url)
    if eng.dialect.name == "postgresql":
        event.listen(eng, "connect", _no_wal_flush)
    yield eng
    eng.dispose()


# --- xdist: tests that share one process-wide resource run on one worker -------------------

# Session fixtures start once per process. tests/operations starts a whole `make server`
# stack, tests/reliability the reference day and tests/flows a Prefect server with Great
# Expectations loaded: under `--dist loadgroup` (make test) each folder is one group, run on
# one worker, so each starts once. Two workers each starting a Prefect server cost more CPU
# than the flow tests gain from running side by side (docs/testing.md).
XDIST_GROUPS = {
    "operations": "operations-stack",
    "reliability": "reliability-reference-day",
    "flows": "flows-prefect-server",
}


# Folders and files (relative to tests/) whose database tests run on one backend only in the
# fast suite: their other backend's runs are marked slow (`make test-slow`, which CI runs as
# well), so CI's coverage is unchanged. Each entry's PostgreSQL runs test nothing PostgreSQL
# does differently; the code they go through runs on PostgreSQL in the fast suite in other
# files (docs/testing.md says which, entry by entry). Never list a file about concurrency,
# locks, isolation, bulk SQL, numbering under concurrency, the schema, the outbox, payments'
# locking, search_path or anything PostgreSQL-specific. tests/test_fast_suite_backend.py
# checks that every entry exists and is marked as said.
FAST_SUITE_BACKEND = {
    # The flows are thin adapters with no SQL of their own (import-linter keeps SQL below
    # jobs/); the jobs, ops and store beneath run on both backends in the fast suite.
    "flows": "sqlite",
    # Scenario matrices and population runs through bill day, change processing, payments
    # and the CLI, whose PostgreSQL paths test_billday, test_changes, test_billrun,
    # test_payments, test_sqlkit and test_bulk run in the fast suite.
    "billing/test_corrections.py": "sqlite",
    "billing/test_payments_paging.py": "sqlite",
    "billing/test_payments_population.py": "sqlite",
    "billing/test_credit_notes.py": "sqlite",
    "billing/test_vat.py": "sqlite",
    "billing/test_late_usage.py": "sqlite",
    "billing/cli/test_show.py": "sqlite",
    "billing/cli/test_shadow.py": "sqlite",
}


def _backend(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("db_url") if callspec is not None else None


def fast_suite_backend(relative: Path) -> str | None:
    """The one backend the fast suite runs ``relative``'s database tests on (its entry in
    ``FAST_SUITE_BACKEND``, the file's or else its top folder's), or None: both."""
    backend = FAST_SUITE_BACKEND.get(relative.as_posix())
    return backend if backend is not None else FAST_SUITE_BACKEND.get(relative.parts[0])


# Every collected test under a FAST_SUITE_BACKEND entry, node id -> marked slow, as this
# process's collection left it (before -m deselects): tests/test_fast_suite_backend.py reads
# it when the whole suite was collected, as under make test, instead of collecting again.
FAST_SUITE_COLLECTED: dict[str, bool] = {}


@pytest.hookimpl(tryfirst=True)  # before xdist's worker turns xdist_group marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests)
        fast_backend = fast_suite_backend(relative)
        if fast_backend is not None and _backend(item) not in (None, fast_backend):
            item.add_marker(pytest.mark.slow)
        if fast_backend is not None:
            FAST_SUITE_COLLECTED[item.nodeid] = item.get_closest_marker("slow") is not None
        group = XDIST_GROUPS.get(relative.as_posix())
        if group is None and len(relative.parts) > 1:
            group = XDIST_GROUPS.get(relative.parts[0])
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
