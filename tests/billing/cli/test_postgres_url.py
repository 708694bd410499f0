"""``billing status`` on PostgreSQL reached through a plain ``postgresql://`` URL.

SQLAlchemy 2.0 maps the plain scheme to psycopg2; the migrated scratch schema is reached with
``options=-csearch_path`` as in tests/conftest.py.
"""

from __future__ import annotations

from datetime import date

from typer.testing import CliRunner

from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from billing.store.models import Account
from tests import builders as b
from tests.conftest import pg_schema_url


def plain_url(schema: str) -> str:
    url = pg_schema_url(schema)
    assert url.startswith("postgresql+psycopg2://")
    return "postgresql://" + url.removeprefix("postgresql+psycopg2://")


def test_status_on_a_plain_postgresql_url(pg_schema):
    url = plain_url(pg_schema)
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as s:
        b.account(s, "PG-1", created=date(2027, 1, 1), billing_day=1)
        b.account(s, "PG-2", created=date(2027, 1, 1), billing_day=2)
        s.query(Account).filter(Account.ref == "PG-2").update({"status": "closed"})
    engine.dispose()
    from flows.cli import app

    result = CliRunner().invoke(app, ["status"], env={"BILLING_DATABASE_URL": url})

    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in result.stdout.splitlines()[:8] if line.startswith("│")}  # fmt: skip
    assert rows == {"active": "1", "inactive": "0", "closed": "1"}


def test_db_upgrade_then_status_on_a_plain_postgresql_url(pg_schema):
    url = plain_url(pg_schema)
    from flows.cli import app

    runner = CliRunner()
    before = runner.invoke(app, ["status", "-d", url])
    assert before.exit_code == 1 and "run `billing db upgrade`" in before.stderr
    assert runner.invoke(app, ["db", "upgrade", "-d", url]).exit_code == 0
    after = runner.invoke(app, ["status", "-d", url])
    assert after.exit_code == 0, after.output
