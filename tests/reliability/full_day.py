"""The whole bill day in a child process, so that a failpoint can kill it with SIGKILL.

It runs the one bill-day job (``billing.jobs.bill_day.bill_day``) with the in-process runner,
configured as the flow configures it: deferred actions, billing in batches, numbering, cycle
fees, collection and refunds (the job's retry policy runs a step again after a transient
error, as the flow's task retries do), the checks gate (optional: Great Expectations takes
seconds to import), the documents of this bill day with their e-mails queued; then the
Invoice Email Sender: e-mail over SMTP with interrupted messages settled first.

Usage: ``python -m tests.reliability.full_day CONFIG.json``; the config is ``DayConfig``'s
fields. ``OPENBILL_FAILPOINT`` arms the kill (billing/failpoints.py).
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine

from billing.documents.mail import SmtpSettings
from billing.documents.outbox import SendResult
from billing.documents.seller import DEFAULT_SELLER
from billing.jobs.bill_day import (
    BillDayFailed,
    BillDayJob,
    ChecksReport,
    Documents,
    Payments,
    bill_day,
)
from billing.jobs.invoice_email_sender import EmailJob, Mail, invoice_email_sender
from billing.jobs.runner import InProcessRunner
from billing.payments.config import PaymentConfig
from billing.payments.sandbox import SandboxGateway
from billing.store.db import make_engine
from flows.payment_steps import creditor_of

CREDITOR = creditor_of(DEFAULT_SELLER)  # the seller is the creditor, as on the flow


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


def checks(database: Engine | str, as_of: date, output_dir: Path) -> ChecksReport:
    """The flow's gate: the Great Expectations suites over the billed data."""
    from billing.jobs.bill_day import engine_of
    from expectations.runner import run_post_billing_checks

    return run_post_billing_checks(engine_of(database), as_of, output_dir)


def day_job(config: DayConfig, engine: Engine) -> BillDayJob:
    """Bill day as the flow runs it, at the scale of the crash tests."""
    as_of = date.fromisoformat(config.as_of)
    # Chunks of two: a kill lands between chunks and inside a multi-payment chunk. Pages of
    # two accounts: collection and refunds plan, charge and write page after page.
    # A 60-day debit horizon (a bank that holds files) keeps bill day's debits, due 30 days
    # out, in its pain.008, so a kill can land while that file is written.
    payments = PaymentConfig(
        output_dir=config.root / "out",
        creditor=CREDITOR,
        card_chunk=2,
        page_size=2,
        debit_horizon_days=60,
    )
    return BillDayJob(
        database=engine,
        as_of=as_of,
        run_id=str(uuid.uuid4()),  # a new run id each time, as each flow run has its own
        per_batch=config.per_batch,
        fetch_size=50,
        payments=Payments(SandboxGateway(config.ledger), payments),
        checks=checks if config.checks else None,
        checks_dir=config.root / "checks",
        documents=Documents(
            store_url=str(config.documents),
            seller=DEFAULT_SELLER,
            processes=1,
            per_batch=config.per_batch,
        ),
    )


def run_day(config: DayConfig) -> None:
    engine = make_engine(config.url)
    runner = InProcessRunner()
    result = bill_day(runner, day_job(config, engine))
    if result.problem is not None and not isinstance(result.problem, BillDayFailed):
        raise SystemExit(str(result.problem))  # the gate or the documents failed
    as_of = date.fromisoformat(config.as_of)
    sent = send_emails(engine, config, as_of)
    if sent.failed or sent.waiting:
        raise SystemExit(f"e-mails failed {sent.failed}, waiting {sent.waiting}")
    engine.dispose()


def send_emails(engine: Engine, config: DayConfig, as_of: date) -> SendResult:
    """The Invoice Email Sender job, as its deployed flow runs it: settle interrupted messages
    by the mail server's Message-ID log (the SMTP settings' ``delivery_log``), then send."""
    # A generous timeout: on a loaded machine a 10 s timeout after DATA made a send look
    # transient although the server had taken it (see docs/reliability.md, known limits).
    smtp = SmtpSettings(
        host="127.0.0.1",
        port=config.smtp_port,
        security="none",
        timeout=60,
        delivery_log=str(config.mail_log),
    )
    mail = Mail(smtp, str(config.documents), DEFAULT_SELLER.name)
    nine = datetime.combine(as_of, datetime.min.time()).replace(hour=9)
    return invoice_email_sender(InProcessRunner(), EmailJob(engine, nine, mail)).sent


if __name__ == "__main__":
    raw = json.loads(Path(sys.argv[1]).read_text())
    run_day(DayConfig(**raw))
