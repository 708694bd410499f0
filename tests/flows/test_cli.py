"""``billing run`` on a real flow: an expected failure is one line, not Prefect's traceback."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from typer.testing import CliRunner

from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from tests import builders as b


@pytest.fixture
def two_accounts(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A and B are due on 2027-02-01; billing only A leaves B unbilled, so the checks fail."""
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        plan = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        for ref in ("A", "B"):
            account = b.account(s, ref, created=date(2027, 1, 1), billing_day=1)
            contract = b.contract(s, account, f"C{ref}", date(2027, 1, 1))
            b.item(s, contract, f"{ref}1", plan, "recurring", date(2027, 1, 1))
    engine.dispose()
    return url


class _Records(logging.Handler):
    """Keeps the records a logger hands to its handlers (after the logger's filters)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("debug", [False, True])
def test_failed_checks_in_a_bill_day_log_no_traceback(two_accounts, tmp_path, monkeypatch, debug):
    import flows.bill_day  # noqa: F401  (Prefect configures its loggers on first import)
    from flows.cli import _WithoutTraceback, app

    monkeypatch.chdir(tmp_path)  # the run's documents and Data Docs go under ./var
    logger = logging.getLogger("prefect.flow_runs")
    kept = _Records()
    logger.addHandler(kept)
    args = ["run", "bill-day", "--as-of", "2027-02-01", "--account", "A", "-d", two_accounts]
    try:
        result = CliRunner().invoke(app, ["--debug", *args] if debug else args)
    finally:
        logger.removeHandler(kept)

    assert result.exit_code == 1
    (failure,) = [r for r in kept.records if r.getMessage().startswith("Encountered exception")]
    assert "PostBillingChecksFailed" in failure.getMessage()
    assert (failure.exc_info is not None) is debug
    if not debug:
        assert (
            result.stderr.strip()
            .splitlines()[-1]
            .startswith("error: post-billing checks failed: due_accounts_billed (1)")
        )
    assert not [f for f in logger.filters if isinstance(f, _WithoutTraceback)]
