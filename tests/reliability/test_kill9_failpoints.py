"""kill -9 at named failpoints across the whole bill day, then a rerun: the end state is that
of an uninterrupted run, on PostgreSQL.

Each case seeds the same population in a fresh schema, runs the whole day in a child process
(tests/reliability/full_day.py: billing, numbering, cycle fees, card and direct-debit
collection, refunds, the checks gate, documents, e-mail to a real SMTP server) with
``OPENBILL_FAILPOINT`` set, and asserts the child died of SIGKILL at that very point (its name
is in the failpoint log). It then reruns the day without the failpoint and compares bills,
numbers, charges, balances, payments, refunds, the processor's ledger, the SEPA files, the
documents and the e-mails received with a reference run that was never interrupted.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.reliability.full_day import DayConfig
from tests.reliability.harness import (
    AS_OF,
    assert_same_day,
    day_state,
    fresh_schema,
    mail_server,
    population,
    reached,
    run_child,
)

FAST = ["billrun.before_commit@2"]  # the fast subset stays fast: one point, the rest are slow
SLOW = [
    "email.sent@2",
    "billday.after_deferred",
    "billrun.after_claim@3",
    "billday.between_batches@2",
    "numbering.before_commit",
    "billday.after_numbering",
    "cycle_fees.before_commit",
    "collect.planned",
    "collect.card_pending@2",
    "collect.card_answered",
    "collect.card_answered@2",
    "collect.debit_file_written",
    "refund.card_pending",
    "refund.card_answered",
    "refund.transfer_file_written",
    "checks.done",
    "render.pdf_stored@5",
    "render.before_enqueue_commit@2",
    "email.claimed@3",
    "email.sent",
    "email.settled@5",
]


def _run(url: str, workdir: Path, port: int, failpoint: str | None = None) -> tuple[int, DayConfig]:
    config = DayConfig(
        url=url,
        as_of=AS_OF.isoformat(),
        workdir=str(workdir),
        smtp_port=port,
        checks=bool(failpoint and failpoint.startswith("checks.")),
    )
    return run_child(config, failpoint=failpoint), config


def _kill_then_rerun(reference, tmp_path: Path, failpoint: str) -> None:
    with fresh_schema() as url, mail_server(tmp_path / "mail.log") as (server, port):
        engine = population(url)
        code, config = _run(url, tmp_path, port, failpoint)
        assert code == -signal.SIGKILL, f"{failpoint} was never reached: the day ran to its end"
        assert reached(config) == [failpoint.partition("@")[0]]

        code, config = _run(url, tmp_path, port)
        assert code == 0
        state = day_state(engine, config)
        engine.dispose()
    assert_same_day(state, server, reference)


@pytest.mark.parametrize("failpoint", FAST)
def test_kill_9_at_a_failpoint_then_rerun_matches_an_uninterrupted_day(
    reference_day, tmp_path, failpoint
):
    _kill_then_rerun(reference_day, tmp_path, failpoint)


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", SLOW)
def test_kill_9_at_every_failpoint_then_rerun_matches_an_uninterrupted_day(
    reference_day, tmp_path, failpoint
):
    _kill_then_rerun(reference_day, tmp_path, failpoint)
