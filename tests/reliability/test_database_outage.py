"""PostgreSQL goes away in the middle of the day, and the day still ends as a clean one.

The run talks to the shared server through a loopback proxy (tests/reliability/proxy.py).
At a failpoint, chosen so the cut lands at an exact step, the proxy resets every open
connection and refuses new ones for a moment: what a restart or a network cut looks like to
the client. Retries (the job runner's ``Retry`` around each step, billing/jobs/runner.py; the
in-place retry of a claimed e-mail's outcome write, billing/documents/outbox.py ``_settle``;
``pool_pre_ping`` for the dead pooled connections) must carry the run to the same end state
as an uninterrupted day.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from billing import failpoints
from billing.store.db import make_engine
from tests.conftest import PG_URL
from tests.reliability.full_day import DayConfig, run_day
from tests.reliability.harness import (
    AS_OF,
    assert_same_day,
    day_state,
    fresh_schema,
    mail_server,
    population,
)
from tests.reliability.proxy import SeveringProxy

FAST = ["email.sent@2"]
SLOW = [
    "billrun.before_commit@2",
    "billday.between_batches@2",
    "billrun.after_claim@3",
    "numbering.before_commit",
    "cycle_fees.before_commit",
    "collect.card_answered@2",
    "collect.debit_file_written",
    "refund.card_answered",
    "render.pdf_stored@3",
    "email.claimed@2",
]


def _cut_the_database_at(reference, tmp_path, point: str, down_for: float = 1.0) -> None:
    name, _, nth = point.partition("@")
    target = urlsplit(PG_URL)
    with fresh_schema() as url, mail_server(tmp_path / "mail.log") as (server, port):
        proxy = SeveringProxy((target.hostname or "127.0.0.1", target.port or 5432))
        engine = population(url)
        config = DayConfig(
            url=proxy.url(url), as_of=AS_OF.isoformat(), workdir=str(tmp_path), smtp_port=port
        )

        def cut() -> None:
            if failpoints.hits(name) == int(nth or 1):
                proxy.sever(down_for)

        try:
            with failpoints.on(name, cut):
                run_day(config)
        finally:
            proxy.close()
        assert proxy.severed >= 1, f"{point} was never reached: nothing was cut"
        state = day_state(engine, config)
        engine.dispose()
    assert_same_day(state, server, reference)


@pytest.mark.parametrize("point", FAST)
def test_connections_cut_mid_run_and_retries_end_as_a_clean_day(reference_day, tmp_path, point):
    _cut_the_database_at(reference_day, tmp_path, point)


@pytest.mark.slow
@pytest.mark.parametrize("point", SLOW)
def test_connections_cut_at_every_step_and_retries_end_as_a_clean_day(
    reference_day, tmp_path, point
):
    _cut_the_database_at(reference_day, tmp_path, point)


def test_pooled_connections_killed_between_steps_are_replaced():
    """Backends terminated while idle in the pool (pg_terminate_backend, as a restart does)
    are detected on checkout by pool_pre_ping, so the next unit of work just works."""
    from sqlalchemy import text

    admin = make_engine(PG_URL)
    engine = make_engine(f"{PG_URL}?application_name=openbill_outage_test")
    with engine.connect() as conn:
        pid = conn.scalar(text("SELECT pg_backend_pid()"))
    with admin.begin() as conn:
        assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT pg_backend_pid()")) != pid
    engine.dispose()
    admin.dispose()
