"""The Cn285 Invoice Email Sender daemon, defined once.

    recover_interrupted_emails -> find_due_emails -> send_invoice_emails-1 -> ...

Sends the queued invoice e-mails (``email_outbox``) of bills dated up to *Process Now*, each
with its Factur-X PDF from the document store, ``per_batch`` per SMTP connection. First it
settles the messages a crash left in ``sending`` without sending them again
(billing/documents/outbox.py explains why an invoice is never sent twice). The Prefect flow
``flows/invoice_email_sender.py`` reads the SMTP, document store and seller blocks and runs
this job with ``PrefectRunner``; ``run_invoice_email_sender`` runs it in process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from billing.documents import outbox
from billing.documents.mail import SmtpSettings, SmtpTransport
from billing.documents.outbox import SendResult
from billing.documents.store import DocumentStore
from billing.jobs.database import Database, engine_of
from billing.jobs.runner import Call, InProcessRunner, Runner, batches_in_order
from billing.store.db import unit_of_work

PROGRESS = (("finding e-mails", 5), ("sending", 95))
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mail:
    """How the e-mails go out: the SMTP server, the document store the PDFs are read from,
    and the seller's name (the sender)."""

    smtp: SmtpSettings
    store_url: str
    seller_name: str


@dataclass(frozen=True)
class EmailJob:
    """What a run needs: the database, *Process Now* (bills dated later wait), how the mail
    goes out, and e-mails per SMTP connection."""

    database: Database
    process_now: datetime
    mail: Mail
    per_batch: int = 200


@dataclass
class EmailResult:
    due: int = 0
    recovered: dict[str, int] = field(default_factory=dict)
    sent: SendResult = field(default_factory=SendResult)

    @property
    def incomplete(self) -> bool:
        """Some e-mails failed, lost the link after their data, or were interrupted."""
        return bool(self.sent.failed or self.sent.unknown or self.recovered.get("unknown"))


# ---- the steps: each opens its unit of work and commits before it returns; none retries ----


def recover_interrupted_emails(
    database: Database, process_now: datetime, delivery_log: str = ""
) -> dict[str, int]:
    """Settle e-mails left in 'sending' by a crash, without sending them again: looked up in
    the mail server's Message-ID log when the SMTP settings name one, else parked as failed."""
    check = outbox.delivery_check(delivery_log)
    with unit_of_work(engine_of(database)) as session:
        return dict(outbox.recover_interrupted(session, check, today=process_now.date()).__dict__)


def find_due_emails(database: Database, process_now: datetime) -> list[int]:
    """The queued invoice e-mails of bills dated up to ``process_now``."""
    with unit_of_work(engine_of(database)) as session:
        return outbox.due_messages(session, process_now.date())


def send_invoice_emails(
    database: Database, outbox_ids: list[int], process_now: datetime, mail: Mail
) -> SendResult:
    """Send one batch of invoice e-mails over one SMTP connection."""
    return outbox.send_outbox(
        engine_of(database),
        outbox_ids,
        transport=SmtpTransport(mail.smtp),
        settings=mail.smtp,
        store=DocumentStore(mail.store_url),
        seller_name=mail.seller_name,
        now=process_now,
    )


# ---- the job ----


def invoice_email_sender(
    runner: Runner, job: EmailJob, log: logging.Logger | logging.LoggerAdapter = LOG
) -> EmailResult:
    """Recover interrupted e-mails, find the due ones, send them batch by batch."""
    recovered = runner.step(
        Call(
            "recover_interrupted_emails",
            recover_interrupted_emails,
            (job.database, job.process_now, job.mail.smtp.delivery_log),
        )
    )
    ids = runner.step(Call("find_due_emails", find_due_emails, (job.database, job.process_now)))
    runner.progress("finding e-mails", note=f"{len(ids)} e-mail(s) queued")
    log.info("invoice e-mails as of %s: %s queued", job.process_now, len(ids))
    total = SendResult()
    for number, done in batches_in_order(
        runner,
        "send_invoice_emails",
        send_invoice_emails,
        ids,
        job.per_batch,
        lambda batch: (job.database, batch, job.process_now, job.mail),
        "sending",
    ):
        log.info(
            "batch %s: %s sent, %s retried, %s waiting for their PDF, %s failed",
            number,
            done.sent,
            done.retried,
            done.waiting,
            len(done.failed),
        )
        total = total.merge(done)
    return EmailResult(due=len(ids), recovered=recovered, sent=total)


def run_invoice_email_sender(
    database: Database, process_now: datetime, mail: Mail, *, per_batch: int = 200
) -> EmailResult:
    """The whole daemon in this process (no Prefect)."""
    return invoice_email_sender(InProcessRunner(), EmailJob(database, process_now, mail, per_batch))
