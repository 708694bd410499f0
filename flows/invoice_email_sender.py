"""invoice-email-sender: the Cn285 *Invoice Email Sender* daemon as a Prefect flow.

The job (``billing.jobs.invoice_email_sender``) sends the queued invoice e-mails
(``email_outbox``) of bills dated up to *Process Now*, each with its Factur-X PDF from the
document store, over the SMTP server of the ``SmtpServer`` block. First it settles the
messages a crash left in ``sending`` without sending them again (billing/documents/outbox.py
explains why an invoice is never sent twice). This flow is its thin adapter: the blocks read
once (strictly: a broken SMTP block stops the run before anything is sent), the job run by
``PrefectRunner``, artifacts out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from billing.jobs.invoice_email_sender import PROGRESS, EmailJob, EmailResult, Mail
from billing.jobs.invoice_email_sender import invoice_email_sender as email_job
from billing.ops.run_report import shown
from flows.jobs import PrefectRunner
from flows.report import Measures, RunProgress
from flows.runtime import (
    NOT_GIVEN,
    DaemonFailed,
    RunMoment,
    load_seller,
    load_smtp,
    load_store_url,
    resolve_database_url,
    run_moment,
    timed_run_name,
)

TITLE = "Invoice Email Sender"


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
    mail = Mail(
        smtp=load_smtp(smtp_block),
        store_url=load_store_url(store_block),
        seller_name=load_seller(seller_block).name,
    )
    job = EmailJob(resolve_database_url(database_block), process_now, mail, per_batch)
    progress = RunProgress(
        "invoice-email-sender-progress", f"{TITLE} {shown(process_now)}", PROGRESS
    )
    result = email_job(PrefectRunner(progress), job, get_run_logger())
    summary = _report(process_now, result)
    if result.incomplete:
        total, recovered = result.sent, result.recovered
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


def _report(process_now: datetime, run: EmailResult) -> dict[str, Any]:
    """The run's table artifact (the Cn285 QS / Message log)."""
    result, recovered = run.sent, run.recovered
    measures = Measures()
    measures.add("process_now", process_now)
    measures.add("queued", run.due)
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
