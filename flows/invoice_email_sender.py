"""invoice-email-sender: the Cn285 *Invoice Email Sender* daemon as a Prefect flow.

Sends the queued invoice e-mails (``email_outbox``) of bills dated up to *Process Now*, each
with its Factur-X PDF from the document store, over the SMTP server of the ``SmtpServer``
block. First it settles the messages a crash left in ``sending`` without sending them again
(billing/documents/outbox.py explains why an invoice is never sent twice).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task

from billing.documents import outbox
from billing.documents.mail import SmtpTransport
from billing.documents.store import DocumentStore
from billing.ops.run_report import share, shown
from billing.store.db import unit_of_work
from flows.document_steps import RETRIES, load_seller, load_smtp, load_store_url
from flows.report import Measures, RunProgress
from flows.runtime import NOT_GIVEN, DaemonFailed, RunMoment, engine_for, run_moment, timed_run_name


@task(name="recover_interrupted_emails", **RETRIES)
def recover_interrupted_emails(database: str | None, process_now: datetime) -> dict[str, int]:
    """Settle e-mails left in 'sending' by a crash, without sending them again."""
    with unit_of_work(engine_for(database)) as session:
        return outbox.recover_interrupted(session, None, today=process_now.date()).__dict__


@task(name="find_due_emails", **RETRIES)
def find_due_emails(database: str | None, process_now: datetime) -> list[int]:
    """List the queued invoice e-mails of bills dated up to process_now."""
    with unit_of_work(engine_for(database)) as session:
        return outbox.due_messages(session, process_now.date())


@task(name="send_invoice_emails", **RETRIES)
def send_invoice_emails(
    database: str | None,
    outbox_ids: list[int],
    process_now: datetime,
    smtp_block: str,
    store_block: str,
    seller_block: str,
) -> outbox.SendResult:
    """Send one batch of invoice e-mails over one SMTP connection."""
    settings = load_smtp(smtp_block)
    return outbox.send_outbox(
        engine_for(database),
        outbox_ids,
        transport=SmtpTransport(settings),
        settings=settings,
        store=DocumentStore(load_store_url(store_block)),
        seller_name=load_seller(seller_block).name,
        now=process_now,
    )


@flow(name="invoice-email-sender", flow_run_name=timed_run_name)
def invoice_email_sender(
    process_now: RunMoment = NOT_GIVEN,
    database_block: str = "default",
    smtp_block: str = "default",
    store_block: str = "default",
    seller_block: str = "default",
    per_batch: int = 200,
) -> dict[str, Any]:
    """Cn285 Invoice Email Sender: e-mail the queued invoices dated up to process_now.

    Args:
        process_now: Cn285 "Process Now" (UTC); bills dated later wait. Leave it empty for
            the moment the run was scheduled for (now, for a run started by hand).
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
        smtp_block: Name of the SMTP Server block; localhost:8025 when none exists.
        store_block: Name of the Document Store block the PDFs are read from.
        seller_block: Name of the Seller Identity block (the sender's name).
        per_batch: E-mails sent per SMTP connection.
    """
    process_now = run_moment(process_now)
    logger = get_run_logger()
    progress = RunProgress(
        "invoice-email-sender-progress", f"{TITLE} {shown(process_now)}", PROGRESS
    )
    recovered = recover_interrupted_emails(database_block, process_now)
    ids = find_due_emails(database_block, process_now)
    progress.step("finding e-mails", note=f"{len(ids)} e-mail(s) queued")
    logger.info("invoice e-mails as of %s: %s queued", process_now, len(ids))
    total = outbox.SendResult()
    batches = range(0, len(ids), per_batch)
    for number, start in enumerate(batches, start=1):
        done = send_invoice_emails.with_options(name=f"send_invoice_emails-{number}")(
            database_block,
            ids[start : start + per_batch],
            process_now,
            smtp_block,
            store_block,
            seller_block,
        )
        logger.info(
            "batch %s: %s sent, %s retried, %s waiting for their PDF, %s failed",
            number,
            done.sent,
            done.retried,
            done.waiting,
            len(done.failed),
        )
        total = total.merge(done)
        progress.step("sending", share(number, len(batches)), note=f"batch {number} sent")
    summary = _report(process_now, len(ids), recovered, total)
    if total.failed or total.unknown or recovered["unknown"]:
        names = ", ".join(sorted(total.failed)[:20])
        unsure = ", ".join(sorted(total.unknown)[:20])
        failure = DaemonFailed(
            f"{len(total.failed)} invoice e-mail(s) failed: {names}; "
            f"{len(total.unknown)} lost the link after their data went out: {unsure} "
            "(left 'sending'; the next run settles them); "
            f"{recovered['unknown']} interrupted while sending (delivery unknown, not re-sent). "
            "See email_outbox.last_error."
        )
        progress.note(f"stopped: {failure}")
        raise failure
    progress.done()
    return summary


TITLE = "Invoice Email Sender"
PROGRESS = (("finding e-mails", 5), ("sending", 95))


def _report(
    process_now: datetime, due: int, recovered: dict[str, int], result: outbox.SendResult
) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log)."""
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("queued", due)
    measures.add("sent", result.sent)
    measures.add("retried (transient)", result.retried)
    measures.add("waiting for their PDF", result.waiting)
    measures.add("failed", len(result.failed))
    measures.add("link lost after the data (delivery unknown)", len(result.unknown))
    measures.add("recovered as sent", recovered["sent"])
    measures.add("recovered as queued", recovered["requeued"])
    measures.add("interrupted, delivery unknown", recovered["unknown"])
    for no, why in sorted(result.failed.items()):
        measures.add(f"failed {no}", why)
    return measures.publish("invoice-email-sender-summary", f"{TITLE} {shown(process_now)}")
