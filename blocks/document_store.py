"""Where invoice documents (XML and PDF) are written: a folder, or any fsspec URL."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field


class DocumentStoreLocation(Block):
    """A local folder (``var/documents``) or an fsspec URL (``s3://bucket/invoices``).

    Credentials for remote stores come from the environment, as fsspec reads them.
    """

    _block_type_name = "Document Store"
    _description = "Folder or fsspec URL where invoice XML and PDF files are stored."

    url: str = Field("var/documents", description="Folder path or fsspec URL.")
