"""Configuration mistakes end a command with one line on stderr and exit 1, never a traceback.

Each case runs the real ``billing`` app against a real database (SQLite file or PostgreSQL
schema) or a URL that cannot work; ``--debug`` lets the exception through instead.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner, Result

from billing.store.db import DatabaseUnavailable, SchemaNotReady, make_engine
from billing.store.migrate import upgrade
from tests.conftest import PG_URL, require_postgres

FIRST_REVISION = "0001"


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    from flows.cli import app

    return CliRunner().invoke(app, list(args), env=env)


def one_error_line(result: Result) -> str:
    """The single stderr line of a failed command (and nothing on stdout)."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unparsable_url_is_one_line():
    line = one_error_line(run("status", "-d", "not a url"))
    assert "'not a url' is not a database URL" in line


def test_an_unknown_driver_is_one_line():
    line = one_error_line(run("status", "-d", "mysqlx://user@host/db"))
    assert "unknown database driver 'mysqlx'" in line


def test_an_unparsable_url_does_not_print_its_password():
    line = one_error_line(run("status", "-d", "postgresql://u:s3cret@host:port/db"))
    assert "s3cret" not in line and "u:***@host" in line


def test_an_unreachable_server_is_one_line():
    url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/postgres"
    line = one_error_line(run("status", "-d", url))
    assert "cannot connect" in line and "Connection refused" in line
    assert "s3cret" not in line and "postgres:***@127.0.0.1" in line


def test_bad_credentials_are_one_line():
    require_postgres()
    url = PG_URL.replace("postgres@", "no_such_role_x:pw@", 1)
    line = one_error_line(run("status", "-d", url))
    assert 'role "no_such_role_x" does not exist' in line


def test_a_database_without_the_schema_asks_for_an_upgrade(db_url):
    engine = make_engine(db_url)
    engine.connect().close()  # an empty SQLite file; PostgreSQL's scratch schema is empty
    engine.dispose()
    line = one_error_line(run("status", "-d", db_url))
    assert line.endswith(
        ": no billing schema (or not at the latest revision): run `billing db upgrade`"
    )


def test_a_database_behind_the_latest_migration_asks_for_an_upgrade(db_url):
    engine = make_engine(db_url)
    upgrade(engine, FIRST_REVISION)
    engine.dispose()
    for command in (["status"], ["issues"], ["show", "account", "A"], ["export", "invoices"]):
        line = one_error_line(run(*command, "-d", db_url))
        assert "not at the latest revision): run `billing db upgrade`" in line, command


def test_an_empty_sqlite_file_has_no_schema(tmp_path):
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    line = one_error_line(run("status", "-d", f"sqlite:///{path}"))
    assert line == (
        f"error: sqlite:///{path}: no billing schema (or not at the latest revision): "
        "run `billing db upgrade`"
    )


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not a database, " * 100)
    line = one_error_line(run("status", "-d", f"sqlite:///{path}"))
    assert "cannot connect: file is not a database" in line


def test_status_does_not_create_a_missing_sqlite_file(tmp_path):
    path = tmp_path / "var" / "billing.db"
    line = one_error_line(run("status", "-d", f"sqlite:///{path}"))
    assert "no database file" in line
    assert "`make demo`" in line and "`billing db upgrade`" in line
    assert not path.exists() and not path.parent.exists()


def test_bare_status_does_not_create_the_default_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(run("status", env={"BILLING_DATABASE_URL": None}))
    assert "sqlite:///var/billing.db: no database file 'var/billing.db'" in line
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize("command", [["issues"], ["show", "account", "A"], ["export", "invoices"]])
def test_read_only_commands_do_not_create_a_missing_file(tmp_path, command):
    path = tmp_path / "none.db"
    one_error_line(run(*command, "-d", f"sqlite:///{path}"))
    assert not path.exists()


def test_db_upgrade_creates_the_file_and_the_schema(tmp_path):
    path = tmp_path / "var" / "new.db"
    result = run("db", "upgrade", "-d", f"sqlite:///{path}")
    assert result.exit_code == 0, result.output
    assert "accounts" in inspect(make_engine(f"sqlite:///{path}")).get_table_names()
    assert run("status", "-d", f"sqlite:///{path}").exit_code == 0


def test_seed_creates_the_schema_in_a_new_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'seeded.db'}"
    result = run("seed", "--accounts", "3", "--usage-per-account", "1", "-d", url)
    assert result.exit_code == 0, result.output
    status = run("status", "-d", url)
    assert status.exit_code == 0 and "│ active" in status.stdout


def test_import_creates_the_schema_in_a_new_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'imported.db'}"
    usage = tmp_path / "usage.csv"
    usage.write_text("external_id,item_ref,quantity,occurred_at\nu1,NOPE,1,2027-01-01T00:00\n")
    result = run("import", str(usage), "-d", url)
    assert result.exit_code == 0, result.output
    assert "1 usage row(s) rejected" in result.stdout


def test_import_does_not_upgrade_an_older_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, FIRST_REVISION)
    engine.dispose()
    usage = tmp_path / "usage.csv"
    usage.write_text("external_id,item_ref,quantity,occurred_at\n")
    assert "run `billing db upgrade`" in one_error_line(run("import", str(usage), "-d", url))


@pytest.mark.parametrize(
    "command",
    [["import", "{f}"], ["import", "payments", "{f}"], ["payment", "import", "{f}"]],
)
def test_a_missing_input_file_is_one_line(tmp_path, command):
    missing = tmp_path / "missing.csv"
    url = f"sqlite:///{tmp_path / 'b.db'}"
    result = run(*(part.format(f=missing) for part in command), "-d", url)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: {missing}: no such file"
    assert not (tmp_path / "b.db").exists()


def test_debug_lets_the_exception_through():
    result = run("--debug", "status", "-d", "not a url")
    assert isinstance(result.exception, DatabaseUnavailable)
    assert run("--debug", "status", "-d", "sqlite://").exit_code == 1
    assert isinstance(run("--debug", "status", "-d", "sqlite://").exception, SchemaNotReady)
    from_env = run("status", "-d", "not a url", env={"BILLING_DEBUG": "1"})
    assert isinstance(from_env.exception, DatabaseUnavailable)


def billing(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a fresh interpreter, as an operator runs it."""
    code = "import sys; from flows.cli import app; sys.argv[0] = 'billing'; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_the_real_entry_point_prints_one_line_and_debug_the_traceback(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    plain = billing("status", "-d", url)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [
        f"error: {url}: no database file '{tmp_path / 'missing.db'}': "
        "run `make demo` (demo data) or `billing db upgrade` (empty schema)"
    ]
    debug = billing("--debug", "status", "-d", url)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "DatabaseUnavailable" in debug.stderr


def test_migration_heads_agree_with_alembic():
    from alembic.script import ScriptDirectory

    from billing.store.db import migration_heads
    from billing.store.migrate import alembic_config

    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert migration_heads() == heads and len(heads) == 1


@pytest.mark.timeout(30)
def test_reports_answer_while_a_bill_run_holds_the_write_lock(tmp_path):
    """A writer's BEGIN IMMEDIATE (what a bill run's unit of work takes) does not block them;
    before, each report took the write lock itself and waited up to busy_timeout (60 s)."""
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    writer = sqlite3.connect(tmp_path / "busy.db", isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    try:
        for command in (["status"], ["issues"], ["export", "invoices"]):
            result = run(*command, "-d", url)
            assert result.exit_code == 0, (command, result.output)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
