"""The whole bill day in a child process, so that a failpoint can kill it with SIGKILL.

It runs the steps of ``flows/bill_day.py`` and then the Invoice Email Sender, in the flow's
order and with the flow's choices, calling the same ``billing`` functions the tasks call:
deferred actions, billing in batches, numbering, cycle fees, collection and refunds (each
repeated while the processor answers transiently, as the tasks' retries do), the checks gate
(optional: Great Expectations takes seconds to import), the documents of this bill day with
their e-mails queued, then e-mail over SMTP with interrupted messages settled first. The steps
the flow runs as tasks are retried on transient database errors, as the tasks are.

Usage: ``python -m tests.reliability.full_day CONFIG.json``; the config is ``DayConfig``'s
fields. ``OPENBILL_FAILPOINT`` arms the kill (billing/failpoints.py).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from billing.documents.mail import SmtpSettings, SmtpTransport
from billing.documents.model import invoice_ids
from billing.documents.outbox import SendResult, due_messages, recover_interrupted, send_outbox
from billing.documents.render import RenderSettings, render_in_processes
from billing.documents.seller import DEFAULT_SELLER
from billing.documents.store import DocumentStore
from billing.jobs.bill_day import run_bill_day
from billing.payments import collect, refund
from billing.payments.config import PaymentConfig
from billing.payments.sandbox import SandboxGateway
from billing.payments.sepa import Creditor
from billing.store.db import make_engine, unit_of_work

CREDITOR = Creditor("Openbill Demo SA", "FR7630006000011234567890189", "AGRIFRPP", "FR72ZZZ123456")
PAYMENT_TRIES = 4  # the first call and the tasks' 3 retries
TASK_RETRY_DELAYS = (0.5, 1.0, 2.0)
T = TypeVar("T")


@dataclass(frozen=True)
class DayConfig:
    url: str
    as_of: str
    workdir: str  # sandbox ledger, SEPA files, documents, mail log, Data Docs
    smtp_port: int
    per_batch: int = 5
    checks: bool = False

    @property
    def root(self) -> Path:
        return Path(self.workdir)

    @property
    def ledger(self) -> Path:
        return self.root / "sandbox-ledger.sqlite"

    @property
    def documents(self) -> Path:
        return self.root / "documents"

    @property
    def mail_log(self) -> Path:
        return self.root / "mail.log"

    def dump(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path


class MailLog:
    """A ``DeliveryCheck`` that looks the Message-ID up in the SMTP server's log.

    The test's server appends each accepted Message-ID, one a line, before it answers 250 (as
    an MTA logs a queued message), so "absent" means the server never accepted it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def delivered(self, message_id: str) -> bool:
        if not self.path.exists():
            return False
        return message_id in self.path.read_text(encoding="utf-8").splitlines()


def task(work: Callable[[], T]) -> T:
    """Run a step as the flow runs its task: again after a transient database error (the
    tasks' ``retry_condition_fn``), a few times, with backoff."""
    for delay in (*TASK_RETRY_DELAYS, None):
        try:
            return work()
        except OperationalError:
            if delay is None:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def run_day(config: DayConfig) -> None:
    engine = make_engine(config.url)
    as_of = date.fromisoformat(config.as_of)
    run_id = str(uuid.uuid4())  # a new run id each time, as each flow run has its own
    # Billing steps retry inside billing/jobs/bill_day.py; the flow's batch fetch is not a task.
    run_bill_day(engine, as_of, run_id, per_batch=config.per_batch, fetch_size=50)
    gateway = SandboxGateway(config.ledger)
    # Chunks of two: a kill lands between chunks and inside a multi-payment chunk. Pages of
    # two accounts: collection and refunds plan, charge and write page after page.
    payments = PaymentConfig(
        output_dir=config.root / "out", creditor=CREDITOR, card_chunk=2, page_size=2
    )
    for _ in range(PAYMENT_TRIES):
        collected = task(
            lambda: collect.collect_payments(engine, as_of, gateway, payments, run_id=run_id)
        )
        if not collected.transient:
            break
    for _ in range(PAYMENT_TRIES):
        refunded = task(
            lambda: refund.refund_payments(engine, as_of, gateway, payments, run_id=run_id)
        )
        if not refunded.transient:
            break
    if config.checks:
        from expectations.runner import run_post_billing_checks

        report = run_post_billing_checks(engine, as_of, config.root / "checks")
        if not report.success:
            raise SystemExit(f"post-billing checks failed: {[r.name for r in report.failed]}")

    def find() -> list[int]:
        with unit_of_work(engine) as session:
            return invoice_ids(  # the flow's documents step picks the same
                session, run_id=run_id, bill_dates=(as_of, as_of), unqueued_through=as_of
            )

    ids = task(find)
    settings = RenderSettings(
        database_url=config.url,
        store_url=str(config.documents),
        seller=DEFAULT_SELLER.to_dict(),
        enqueue_email=True,
        email_domain=DEFAULT_SELLER.mail_domain,
    )
    rendered = task(
        lambda: render_in_processes(settings, ids, processes=1, per_batch=config.per_batch)
    )
    if rendered.failed:
        raise SystemExit(f"invoices not rendered: {rendered.failed}")
    sent = task(lambda: send_emails(engine, config, as_of))
    if sent.failed or sent.waiting:
        raise SystemExit(f"e-mails failed {sent.failed}, waiting {sent.waiting}")
    engine.dispose()


def send_emails(engine: Engine, config: DayConfig, as_of: date) -> SendResult:
    """The Invoice Email Sender: settle interrupted messages, then send what is queued."""
    with unit_of_work(engine) as session:
        recover_interrupted(session, MailLog(config.mail_log), today=as_of)
    with unit_of_work(engine) as session:
        ids = due_messages(session, as_of)
    # A generous timeout: on a loaded machine a 10 s timeout after DATA made a send look
    # transient although the server had taken it (see docs/reliability.md, known limits).
    smtp = SmtpSettings(host="127.0.0.1", port=config.smtp_port, security="none", timeout=60)
    return send_outbox(
        engine,
        ids,
        transport=SmtpTransport(smtp),
        settings=smtp,
        store=DocumentStore(str(config.documents)),
        seller_name=DEFAULT_SELLER.name,
        now=datetime.combine(as_of, datetime.min.time()).replace(hour=9),
        retry_delays=(0.05, 0.1),
    )


if __name__ == "__main__":
    raw = json.loads(Path(sys.argv[1]).read_text())
    run_day(DayConfig(**raw))
