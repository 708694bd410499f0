"""The whole day run as deployment runs of a real Prefect stack, so that a failpoint kills the
flow-run process a worker started (not a copy of the day in a child of the test).

``worker_stack`` starts the stack the way ``make server`` does (``scripts/server.py start``,
through tests/operations/conftest.py's helpers): server on free loopback ports with analytics
and the scheduler off, the process work pool, the global concurrency limit, the blocks, the
mail catcher and files server, every deployment of prefect.yaml, and a process worker.

A ``WorkerDay`` is one case: a fresh PostgreSQL schema, an aiosmtpd server and a folder. It
saves the "default" blocks for them (blocks/register.py's ``default_blocks``: the billing
database is the case's schema, the SMTP server is the case's aiosmtpd, the document store,
the output folder and the sandbox processor's ledger are under the case's folder) and starts
the day's two deployment runs through the Prefect API, as the UI's "Run" button does:
``bill-day/daily-01-00-utc`` (billing, numbering, cycle fees, collection, refunds, checks,
documents, e-mail queueing) then ``invoice-email-sender/every-15-minutes`` (the e-mails).
``OPENBILL_FAILPOINT`` reaches only the flow-run process of the run it is meant for, through
the run's ``job_variables={"env": ...}``: the worker's own environment never has it.

The cases run one after the other (the stack is shared), so the "default" blocks are the
case's for the case's duration. They have to be "default": bill-day names its settings and
database blocks by parameter, but its payment steps load the ``payment-gateway`` and
``payment-settings`` blocks named "default" whatever the parameters say, and its documents
step the "default" ``document-store`` and ``seller-identity``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.operations.conftest import Stack, new_stack, running, stack_environment
from tests.reliability.full_day import DayConfig
from tests.reliability.harness import AS_OF

BILL_DAY = "bill-day/daily-01-00-utc"
EMAIL_SENDER = "invoice-email-sender/every-15-minutes"
PROCESS_NOW = f"{AS_OF.isoformat()}T09:00:00"  # the e-mail run's Cn285 "Process Now"
BATCH_LIMIT = "bill-day-batches"
# A batch killed by SIGKILL keeps its slot of the global limit until the slot's lease expires
# (Prefect's default lease: 300 s). The cases follow each other faster than that, so the
# limit is raised for the matrix; BillRunSettings.children still bounds each run's batches.
MATRIX_BATCH_LIMIT = 200
RUN_TIMEOUT = 420  # seconds a deployment run may take, from Scheduled to its final state


@contextmanager
def worker_stack(tmp_path_factory: Any) -> Iterator[Stack]:
    """A whole ``scripts/server.py start`` stack (server, pool, limit, blocks, mail catcher,
    files server, deployments, worker) of its own, stopped (and its leftovers killed) after."""
    env = stack_environment(PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false")
    for name in [k for k in env if k.startswith("OPENBILL_FAILPOINT")]:
        del env[name]  # only the flow runs that a case arms get a failpoint
    stack = new_stack(tmp_path_factory, env)
    with running(stack, "--database", stack.database_url, timeout=420) as started:
        with started.connected():
            _raise_batch_limit()
        yield started


def _raise_batch_limit() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(
            BATCH_LIMIT, GlobalConcurrencyLimitUpdate(limit=MATRIX_BATCH_LIMIT)
        )


@dataclass(frozen=True)
class WorkerDay:
    """One case's day on the shared stack: its database, SMTP port and folder."""

    stack: Stack
    url: str
    root: Path
    smtp_port: int

    @property
    def config(self) -> DayConfig:
        """Where the day leaves its files, as ``harness.day_state`` reads them: the sandbox
        ledger, the SEPA files under ``out``, the documents."""
        return DayConfig(
            url=self.url, as_of=AS_OF.isoformat(), workdir=str(self.root), smtp_port=self.smtp_port
        )

    @property
    def failpoint_log(self) -> Path:
        return self.root / "failpoints.log"

    def save_blocks(self) -> None:
        """The "default" blocks of this case (see the module's docstring for why "default").

        Bill run settings as in tests/reliability/full_day.py: 5 bill units a batch, 50 ids a
        fetch, 5 batches at once."""
        from blocks.register import DEFAULT, default_blocks

        config = self.config
        blocks = default_blocks(
            database_url=self.url,
            data_dir=self.root,
            output_dir=self.root / "out",
            smtp_port=self.smtp_port,
            children=5,
        )
        settings = blocks["bill-run-settings"]
        settings.per_batch, settings.fetch_size = config.per_batch, 50
        # Batches billed in ONE worker process (billing/jobs/batch_workers.py), not the
        # default one per CPU: a billrun.* point reached there kills the tree, and with one
        # worker its hit count is the run's, as the matrix's "@N" cases expect. Two workers
        # are covered by tests/billing/test_batch_workers.py.
        settings.batch_processes = 1
        blocks["payment-gateway"].sandbox_ledger = str(config.ledger)
        blocks["document-store"].url = str(config.documents)
        blocks["smtp-server"].timeout_seconds = 60  # as full_day: a loaded machine is slow
        # The case's SMTP server logs each accepted Message-ID (harness.mail_server): the
        # sender settles an e-mail killed mid-send by looking it up there, as full_day does.
        blocks["smtp-server"].delivery_log = str(config.mail_log)
        # As full_day: card chunks and payment pages of two, documents rendered by batch.
        payment = blocks["payment-settings"]
        payment.card_chunk, payment.page_size = 2, 2
        # Rendered in the flow-run process, as full_day does: a kill inside a rendering pool
        # worker is another crash (the pool breaks, the run fails), not the flow's.
        settings.documents_per_batch, settings.documents_processes = config.per_batch, 1
        with self.stack.connected():
            for block in blocks.values():
                block.save(DEFAULT, overwrite=True)

    def run(self, deployment: str, failpoint: str | None = None) -> Any:
        """A deployment run started through the API, run by the stack's worker, once it has
        reached a final state (its ``FlowRun``). ``failpoint`` arms the flow-run process."""
        from prefect.deployments import run_deployment

        parameters: dict[str, Any] = (
            {"as_of": AS_OF.isoformat()} if deployment == BILL_DAY else {"process_now": PROCESS_NOW}
        )
        env = {}
        if failpoint:
            env = {"OPENBILL_FAILPOINT": failpoint}
            env["OPENBILL_FAILPOINT_LOG"] = str(self.failpoint_log)
        with self.stack.connected():
            flow_run = run_deployment(
                deployment,
                parameters=parameters,
                job_variables={"env": env},
                timeout=RUN_TIMEOUT,
                poll_interval=1,
            )
        assert flow_run.state is not None and flow_run.state.is_final(), (
            f"{deployment} did not finish in {RUN_TIMEOUT} s: {flow_run.state}\n"
            f"{self.logs(flow_run)}"
        )
        return flow_run

    def completed(self, deployment: str) -> Any:
        """``run(deployment)`` without a failpoint; it must end Completed."""
        flow_run = self.run(deployment)
        assert flow_run.state.is_completed(), (
            f"{deployment} ended {flow_run.state.type.value}: {flow_run.state.message}\n"
            f"{self.logs(flow_run)}"
        )
        return flow_run

    def logs(self, flow_run: Any, chars: int = 6000) -> str:
        """The flow run's logs as the UI shows them (the end of them), for failure messages."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        with self.stack.connected(), get_client(sync_client=True) as client:
            records = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))
            )
        return "\n".join(f"{r.level} {r.message}" for r in records)[-chars:]

    def reached(self) -> list[str]:
        log = self.failpoint_log
        return log.read_text().split() if log.exists() else []


def killed_deployment(failpoint: str) -> str:
    """Which run of the day a failpoint belongs to: the e-mail sender's, or bill day's."""
    return EMAIL_SENDER if failpoint.startswith("email.") else BILL_DAY


def worker_log(stack: Stack, chars: int = 4000) -> str:
    """The end of the worker's log (scripts/server.py writes it under the stack's home)."""
    path = stack.home / "logs" / "worker.log"
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
