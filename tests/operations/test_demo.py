"""``make demo`` writes the database every other command uses, and says what to do next.

It runs ``flows.demo.main`` (a smaller population) in a tmp directory, as ``make demo`` runs it
in the checkout: the bills must land in ``var/billing.db`` there
(``billing.store.db.database_url()``, which ``make server`` registers too), not in a database of
the demo's own. A second run seeds nothing and bills nothing more.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from billing.store.db import make_engine, unit_of_work
from billing.store.models import Account, Bill

pytestmark = pytest.mark.slow


def _counts(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    with unit_of_work(engine) as s:
        counts = (
            s.scalar(select(func.count()).select_from(Account)),
            s.scalar(select(func.count()).select_from(Bill)),
        )
    engine.dispose()
    return counts


def test_demo_bills_into_the_default_database_and_prints_the_next_steps(
    tmp_path, monkeypatch, capsys
):
    from flows import demo

    monkeypatch.setenv("BILLING_DATABASE_URL", "restored-after-the-test")
    monkeypatch.delenv("BILLING_DATABASE_URL")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "ACCOUNTS", 6)
    monkeypatch.setattr(demo, "USAGE_PER_ACCOUNT", 2)
    demo.main()
    out = capsys.readouterr().out
    database = tmp_path / "var" / "billing.db"
    url = f"sqlite:///{database}"
    assert database.is_file()
    assert sorted(p.name for p in (tmp_path / "var").iterdir() if p.is_dir()) == [
        "documents",
        "output",
    ]
    accounts, bills = _counts(url)
    assert accounts >= 6 and bills > 0
    assert len(list((tmp_path / "var" / "documents").rglob("*.pdf"))) == bills
    assert f"Database:        {url}" in out
    for step in ("make server", "http://127.0.0.1:4200", "billing status", "var/mail", "make stop"):
        assert step in out, step

    demo.main()  # again: the population is there, bill day adds nothing
    again = capsys.readouterr().out
    assert "nothing seeded" in again
    assert _counts(url) == (accounts, bills)
