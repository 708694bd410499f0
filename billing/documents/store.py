"""Where invoice documents live: a local folder, or any fsspec URL (s3://, gcs://, memory://).

A bill's files have stable names derived from the bill, ``YYYY/MM/<bill_no>.pdf`` and
``.xml``, so re-rendering overwrites them with the same bytes and the e-mail sender finds
them without a lookup table. Local writes go to a temporary file renamed into place, so a
crash never leaves half a PDF behind.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from billing.documents.errors import DocumentError
from billing.documents.model import Invoice

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def document_name(invoice: Invoice | tuple[str, Any], extension: str) -> str:
    """``2027/02/INV-00000001.pdf``: the bill date's month, then the bill number."""
    bill_no, bill_date = (
        (invoice.bill_no, invoice.bill_date) if isinstance(invoice, Invoice) else invoice
    )
    safe = _UNSAFE.sub("_", bill_no)
    if not safe.strip("._"):
        raise DocumentError(f"bill number {bill_no!r} cannot name a file")
    return f"{bill_date:%Y}/{bill_date:%m}/{safe}.{extension}"


class DocumentStore:
    """Reads and writes documents under a root: a folder path or an fsspec URL."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._local = "://" not in root or root.startswith("file://")
        if self._local:
            self._base = Path(root.removeprefix("file://"))
        else:
            from fsspec.core import url_to_fs

            self._fs, self._fs_root = url_to_fs(root)

    def __repr__(self) -> str:
        return f"DocumentStore({self.root!r})"

    def _remote(self, name: str) -> str:
        return f"{self._fs_root.rstrip('/')}/{name}"

    def write(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing what was there in one step."""
        if not self._local:
            parent = self._remote(name).rsplit("/", 1)[0]
            self._fs.makedirs(parent, exist_ok=True)
            self._fs.pipe_file(self._remote(name), data)
            return
        path = self._base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, name: str) -> bytes:
        """The bytes stored under ``name`` (``FileNotFoundError`` when there are none)."""
        if self._local:
            return (self._base / name).read_bytes()
        return bytes(self._fs.cat_file(self._remote(name)))

    def exists(self, name: str) -> bool:
        if self._local:
            return (self._base / name).is_file()
        return bool(self._fs.exists(self._remote(name)))
