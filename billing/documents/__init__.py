"""Invoice documents and their delivery (issue 6): XML export, Factur-X PDF, e-mail outbox.

- ``model``: immutable invoice values loaded from issued bills (``load_invoices``).
- ``xml_export``: the streamed XML export, described by ``schemas/invoice.xsd``.
- ``cii``: the EN 16931 Cross-Industry-Invoice; ``validation``: XSD and Schematron checks.
- ``pdf``: Jinja2 + WeasyPrint PDF/A-3b with the CII embedded (factur-x); ``fetcher``: the
  only resources a document may load.
- ``store``: the document store (folder or fsspec URL); ``render``: batches and processes.
- ``mail`` and ``outbox``: the Invoice Email Sender's message, transport and outbox.

Errors are described in ``errors``. Nothing here imports Prefect.
"""

from __future__ import annotations

from typing import IO

from sqlalchemy.orm import Session

from billing.documents.model import load_invoices
from billing.documents.seller import Seller
from billing.documents.xml_export import write_invoices_xml


def export_invoices_xml(session: Session, seller: Seller, out: IO[bytes]) -> int:
    """Every numbered invoice into one XML document, streamed; returns the count."""
    return write_invoices_xml(load_invoices(session), seller, out)
