"""Whole bill days side by side on PostgreSQL, and the Invoice Email Sender daemon during one:
the end state is that of one uninterrupted day, with no card charged twice and no invoice
e-mailed twice.

The days share everything a real deployment shares: the database, the processor (its
ledger), the document store, the SEPA output folder and the SMTP server.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from billing import failpoints
from billing.store.db import make_engine
from tests.reliability.full_day import DayConfig, run_day, send_emails
from tests.reliability.harness import (
    AS_OF,
    assert_same_day,
    day_state,
    fresh_schema,
    mail_server,
    population,
    run_child,
)


@pytest.mark.slow
@pytest.mark.parametrize("days", [2, 3])
def test_concurrent_whole_days_end_as_one_day(reference_day, tmp_path, days):
    with fresh_schema() as url, mail_server(tmp_path / "mail.log") as (server, port):
        engine = population(url)
        config = DayConfig(url=url, as_of=AS_OF.isoformat(), workdir=str(tmp_path), smtp_port=port)
        with ThreadPoolExecutor(days) as pool:
            codes = list(pool.map(lambda _: run_child(config), range(days)))
        assert codes == [0] * days
        state = day_state(engine, config)
        engine.dispose()
    assert_same_day(state, server, reference_day)


@pytest.mark.slow
def test_email_daemon_running_during_bill_day_sends_each_invoice_once(reference_day, tmp_path):
    """The sender daemon polls every 50 ms while bill day queues and sends its own e-mails."""
    with fresh_schema() as url, mail_server(tmp_path / "mail.log") as (server, port):
        engine = population(url)
        config = DayConfig(url=url, as_of=AS_OF.isoformat(), workdir=str(tmp_path), smtp_port=port)
        stop, rounds, errors = threading.Event(), [], []

        def daemon() -> None:
            own = make_engine(url)
            try:
                while not stop.is_set():
                    rounds.append(send_emails(own, config, AS_OF).sent)
                    time.sleep(0.05)
            except BaseException as error:  # noqa: BLE001 - asserted below
                errors.append(error)
            finally:
                own.dispose()

        thread = threading.Thread(target=daemon)
        thread.start()
        try:
            assert run_child(config) == 0
        finally:
            stop.set()
            thread.join()
        assert errors == []
        assert sum(rounds) > 0, "the daemon never sent anything: it did not run during the day"
        state = day_state(engine, config)
        engine.dispose()
    assert_same_day(state, server, reference_day)


def test_a_sender_starting_while_another_is_mid_send_leaves_that_message_alone(
    reference_day, tmp_path
):
    """The worst moment, made exact: a second sender (the daemon) starts right after bill
    day's sender claimed a message and before it went out. The daemon must not take that
    in-flight message for a crashed one and send it too."""
    with fresh_schema() as url, mail_server(tmp_path / "mail.log") as (server, port):
        engine = population(url)
        config = DayConfig(url=url, as_of=AS_OF.isoformat(), workdir=str(tmp_path), smtp_port=port)
        daemon_engine, daemon_sent = make_engine(url), []

        def daemon_starts_now() -> None:
            if not daemon_sent:  # once: the daemon's own sends pass this point too
                daemon_sent.append(-1)
                daemon_sent.append(send_emails(daemon_engine, config, AS_OF).sent)

        with failpoints.on("email.claimed", daemon_starts_now):
            run_day(config)
        assert failpoints.hits("email.claimed") >= len(reference_day[0]["bills"])
        assert daemon_sent[1] > 0, "the daemon sent nothing: it did not run mid-send"
        state = day_state(engine, config)
        engine.dispose()
        daemon_engine.dispose()
    assert_same_day(state, server, reference_day)
