"""kill -9 of the flow-run process a Prefect worker started, at named failpoints across the
whole bill day, then a rerun from the API: the end state is that of an uninterrupted run, on
PostgreSQL.

The stack is real (tests/reliability/worker_day.py: ``scripts/server.py start`` with server,
process work pool, blocks, deployments of prefect.yaml and a process worker). Each case seeds
the same population in a fresh schema, saves the blocks that point the flows at it (schema,
aiosmtpd server, folders), and starts the day through the Prefect API as the UI does: a run of
``bill-day/daily-01-00-utc`` (billing, numbering, cycle fees, card and direct-debit
collection, refunds, the checks gate, documents) and one of
``invoice-email-sender/every-15-minutes`` (e-mail to a real SMTP server). The run a failpoint
belongs to gets ``OPENBILL_FAILPOINT`` in its job variables, so the worker's flow-run
subprocess kills itself there. The case asserts that run ended Crashed with the worker
reporting exit code -9, and that the failpoint log names that very point. It then starts a new
run of the same deployment with the same parameters and no failpoint, lets the day finish
(the e-mail sender after bill day), and compares bills, numbers, charges, balances, payments,
refunds, the processor's ledger, the SEPA files, the documents and the e-mails received with a
reference day run by the same worker and never interrupted.

Each case takes minutes (three flow-run processes, the checks gate), so the whole matrix is
marked slow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import (
    assert_same_day,
    day_state,
    fresh_schema,
    mail_server,
    population,
)
from tests.reliability.worker_day import BILL_DAY, EMAIL_SENDER, WorkerDay, killed_deployment

# Each case takes minutes (three flow-run processes, the checks gate): none is in the fast
# subset, which kept billrun.before_commit@2 when the day ran in a child of the test.
SLOW = [
    "billrun.before_commit@2",
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


def _kill_then_rerun(stack, reference, tmp_path: Path, failpoint: str) -> None:
    killed = killed_deployment(failpoint)
    with fresh_schema() as url, mail_server(tmp_path / "mail.log") as (server, port):
        engine = population(url)
        day = WorkerDay(stack, url, tmp_path, port)
        day.save_blocks()
        if killed == EMAIL_SENDER:
            day.completed(BILL_DAY)
        crashed = day.run(killed, failpoint)
        assert crashed.state.is_crashed(), (
            f"{failpoint} was never reached: {killed} ended {crashed.state.type.value} "
            f"({crashed.state.message})\n{day.logs(crashed)}"
        )
        message = crashed.state.message or ""
        assert "status code: -9" in message and "SIGKILL" in message, message  # the worker's
        assert day.reached() == [failpoint.partition("@")[0]]

        day.completed(killed)  # the rerun: a new run of the deployment, same parameters
        if killed == BILL_DAY:
            day.completed(EMAIL_SENDER)
        state = day_state(engine, day.config)
        engine.dispose()
    assert_same_day(state, server, reference)


@pytest.mark.slow
@pytest.mark.parametrize("failpoint", SLOW)
def test_kill_9_of_the_flow_run_at_every_failpoint_then_rerun_matches_an_uninterrupted_day(
    prefect_worker_stack, reference_worker_day, tmp_path, failpoint
):
    _kill_then_rerun(prefect_worker_stack, reference_worker_day, tmp_path, failpoint)
