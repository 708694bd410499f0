"""render-invoices: render invoice documents again, by bill numbers or by bill dates.

Rendering is deterministic (same bill, same bytes), so re-rendering only rewrites identical
files, unless the template, the seller or the code changed. E-mails are not queued again.
Deployed without a schedule as ``render-invoices/on-demand``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow
from prefect.runtime import flow_run as current_run

from flows.document_steps import DocumentsFailed, render_documents
from flows.report import RunProgress
from flows.runtime import NOT_GIVEN, Count, RunDate, TextList, given

STEPS = (("finding invoices", 5), ("rendering", 90), ("report", 5))


def render_run_name() -> str:
    """``render-invoices 2027-01-31..2027-02-01``, or by bill numbers
    ``render-invoices INV-00000001 (+1 more)``."""
    parameters = current_run.parameters
    bill_nos = given(parameters.get("bill_nos")) or []
    if bill_nos:
        more = f" (+{len(bill_nos) - 1} more)" if len(bill_nos) > 1 else ""
        return f"render-invoices {bill_nos[0]}{more}"
    first, last = given(parameters.get("date_from")), given(parameters.get("date_to"))
    return f"render-invoices {str(first)[:10] if first else '…'}..{str(last)[:10] if last else '…'}"


@flow(name="render-invoices", flow_run_name=render_run_name)
def render_invoices(
    bill_nos: TextList = NOT_GIVEN,
    date_from: RunDate = NOT_GIVEN,
    date_to: RunDate = NOT_GIVEN,
    database_block: str = "default",
    store_block: str = "default",
    seller_block: str = "default",
    processes: Count = NOT_GIVEN,
    per_batch: int = 50,
    schematron: str = "all",
    skip_existing: bool = False,
) -> dict[str, Any]:
    """Render the XML and Factur-X PDF of these invoices into the document store.

    Args:
        bill_nos: Bill numbers to render (e.g. INV-00000001). Empty: select by bill dates.
        date_from: First bill date to render (inclusive). Empty: from the first bill.
        date_to: Last bill date to render (inclusive). Empty: up to the last bill.
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
        store_block: Name of the Document Store block (folder or URL); var/documents when
            none exists.
        seller_block: Name of the Seller Identity block printed on the invoices.
        processes: Worker processes rendering side by side. Empty: one per CPU.
        per_batch: Invoices per worker batch.
        schematron: "all" checks every CII against the EN 16931 Schematron, "sample" one
            per batch.
        skip_existing: Leave invoices whose documents are already stored as they are.
    """
    bill_nos, date_from, date_to = given(bill_nos), given(date_from), given(date_to)
    processes = given(processes)
    progress = RunProgress("render-invoices-progress", "Render invoices", STEPS)
    dates = None
    if date_from is not None or date_to is not None:
        dates = (date_from or date.min, date_to or date.max)
    summary = render_documents(
        database_block,
        bill_dates=dates,
        bill_nos=bill_nos,
        store_block=store_block,
        seller_block=seller_block,
        processes=processes,
        per_batch=per_batch,
        schematron=schematron,
        skip_existing=skip_existing,
        progress=progress,
    )
    if summary["failed"]:
        names = ", ".join(sorted(summary["failed"])[:20])
        failure = DocumentsFailed(f"{len(summary['failed'])} invoice(s) not rendered: {names}")
        progress.note(f"stopped: {failure}")
        raise failure
    progress.done()
    return summary
