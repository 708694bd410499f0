"""render-invoices: render invoice documents again, by bill numbers or by bill dates.

Rendering is deterministic (same bill, same bytes), so re-rendering only rewrites identical
files, unless the template, the seller or the code changed. E-mails are not queued again.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from flows.document_steps import DocumentsFailed, render_documents


@flow(name="render-invoices")
def render_invoices(
    bill_nos: list[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    database_block: str = "default",
    store_block: str = "default",
    seller_block: str = "default",
    processes: int | None = None,
    per_batch: int = 50,
    schematron: str = "all",
    skip_existing: bool = False,
) -> dict[str, Any]:
    """Render the XML and Factur-X PDF of these invoices into the document store.

    bill_nos: bill numbers to render; date_from / date_to: bill dates (inclusive).
    schematron: "all" checks every CII against the EN 16931 Schematron, "sample" one per batch.
    """
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
    )
    if summary["failed"]:
        names = ", ".join(sorted(summary["failed"])[:20])
        raise DocumentsFailed(f"{len(summary['failed'])} invoice(s) not rendered: {names}")
    return summary
