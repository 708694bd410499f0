"""Migration 0012 (commercial terms) both ways, on both databases: a store with bills goes up
and down unchanged, and a store that holds terms refuses to go down (no silent loss)."""

from __future__ import annotations

from datetime import date

import pytest
from alembic import command
from sqlalchemy import inspect, text

from billing.store.db import unit_of_work
from billing.store.migrate import alembic_config
from tests import builders as b


def _migrate(engine, revision: str, *, up: bool) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.upgrade if up else command.downgrade)(cfg, revision)


def test_down_and_up_again_keeps_the_store(engine):
    with unit_of_work(engine) as s:
        b.account(s, "ACC-1", created=date(2026, 1, 1))
    _migrate(engine, "0011_usage_ranges", up=False)
    tables = set(inspect(engine).get_table_names())
    assert not {"discounts", "commitments", "wallets", "wallet_entries"} & tables
    columns = {c["name"] for c in inspect(engine).get_columns("contract_items")}
    assert "trial_end_date" not in columns
    _migrate(engine, "head", up=True)
    assert {"discounts", "commitments", "wallets", "wallet_entries"} <= set(
        inspect(engine).get_table_names()
    )
    with engine.connect() as conn:
        assert conn.execute(text("SELECT ref FROM accounts")).scalars().all() == ["ACC-1"]


def test_down_is_refused_while_terms_are_stored(engine):
    with unit_of_work(engine) as s:
        account = b.account(s, "ACC-1", created=date(2026, 1, 1))
        s.execute(
            text(
                "INSERT INTO wallets (ref, account_id, name, currency, priority, created_on)"
                " VALUES ('W-1', :a, 'Credits', 'EUR', 0, '2026-01-01')"
            ),
            {"a": account.id},
        )
    with pytest.raises(RuntimeError, match=r"commercial terms are stored \(\{'wallets': 1\}\)"):
        _migrate(engine, "0011_usage_ranges", up=False)
    assert "wallets" in inspect(engine).get_table_names()
