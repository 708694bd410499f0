"""One uninterrupted reference day, shared by the crash, concurrency and outage tests."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.reliability.harness import (
    AS_OF,
    DayConfig,
    day_state,
    fresh_schema,
    mail_server,
    population,
    run_child,
)


@pytest.fixture(scope="session")
def reference_day(tmp_path_factory):
    """The whole day run once on PostgreSQL, never interrupted: (state, e-mails received)."""
    workdir = tmp_path_factory.mktemp("reference")
    with fresh_schema() as url, mail_server(workdir / "mail.log") as (server, port):
        engine = population(url)
        config = DayConfig(url=url, as_of=AS_OF.isoformat(), workdir=str(workdir), smtp_port=port)
        assert run_child(config) == 0
        state = day_state(engine, config)
        engine.dispose()
        received = server.received()
    # The population exercises every path the tests claim to cover.
    statuses = Counter((p.method, p.status) for p in state["payments"])
    assert statuses[("card", "settled")] >= 2 and statuses[("card", "failed")] >= 1
    assert statuses[("direct_debit", "pending")] >= 1
    assert {(r.method, r.status) for r in state["refunds"]} == {
        ("card", "settled"),
        ("direct_debit", "pending"),
    }
    assert len(state["bills"]) >= 12 and len(received) == len(state["bills"])
    assert len(state["documents"]) == 2 * len(state["bills"])
    return state, received
