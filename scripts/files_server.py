"""The stack's files server: the run reports and the invoice documents over HTTP, read-only.

    python scripts/files_server.py --port 4201 --auth-file var/prefect/api-auth-string \\
        --mount output=var/output --mount documents=var/documents

It listens on 127.0.0.1 only and serves each mounted folder under ``/<name>/``: the bill runs'
output (``BillRunSettings.output_dir``: Data Docs, SEPA files) at ``/output/`` and the document
store's folder (invoice PDF and XML) at ``/documents/``, so the links in the runs' artifacts
open in the browser. Every request needs HTTP Basic auth with the API's auth string
(``user:password``, read from ``--auth-file``); without it the answer is 401 with
``WWW-Authenticate``. Only GET and HEAD; a path that leaves its folder (``..``, a symlink
pointing out) is refused. Content types are set for the files the stack writes.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import html
import mimetypes
import shutil
import signal
import sys
import threading
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

LOOPBACK = "127.0.0.1"
REALM = "openbill files"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".pdf": "application/pdf",
    ".xml": "application/xml",
    ".xsd": "application/xml",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".eot": "application/vnd.ms-fontobject",
    ".map": "application/json",
}


def content_type(path: Path) -> str:
    """The Content-Type of ``path``: our table first, then the system's, else bytes."""
    return (
        TYPES.get(path.suffix.lower())
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )


def resolve(mounts: dict[str, Path], url_path: str) -> Path | None:
    """The file or folder ``url_path`` names inside its mount, or None when it names none or
    would leave the mount (``..``, an absolute part, a NUL, a symlink pointing out)."""
    parts = unquote(url_path, errors="strict").split("/")
    if parts[0] != "" or len(parts) < 2 or parts[1] not in mounts:
        return None
    rest = [p for p in parts[2:] if p not in ("", ".")]
    if any(p == ".." or "\\" in p or "\x00" in p for p in rest):
        return None
    root = mounts[parts[1]]
    target = root.joinpath(*rest).resolve()
    return target if target == root or target.is_relative_to(root) else None


class Handler(BaseHTTPRequestHandler):
    server_version = "openbill-files"
    mounts: dict[str, Path] = {}
    credentials: str = ""

    def version_string(self) -> str:
        return self.server_version

    # -- the methods ------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def _read_only(self) -> None:
        if self._authorized():
            self._answer(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "read-only: GET and HEAD only\n",
                extra={"Allow": "GET, HEAD"},
            )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _read_only  # noqa: N815

    # -- helpers ----------------------------------------------------------------------------
    def _authorized(self) -> bool:
        """True when the request carries the credentials; otherwise answer 401 and say so."""
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            given = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            given = ""
        if scheme.lower() == "basic" and hmac.compare_digest(
            given.encode("utf-8"), self.credentials.encode("utf-8")
        ):
            return True
        self._answer(
            HTTPStatus.UNAUTHORIZED,
            "authentication required\n",
            extra={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )
        return False

    def _answer(
        self,
        status: HTTPStatus,
        text: str,
        *,
        body: bool = True,
        kind: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
    ) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(data)

    def _serve(self, *, body: bool) -> None:
        if not self._authorized():
            return
        url_path = urlsplit(self.path).path
        if url_path == "/":
            links = "".join(
                f'<li><a href="/{quote(name)}/">/{html.escape(name)}/</a></li>'
                for name in self.mounts
            )
            page = f"<!doctype html><title>openbill files</title><ul>{links}</ul>\n"
            self._answer(HTTPStatus.OK, page, body=body, kind="text/html; charset=utf-8")
            return
        try:
            target = resolve(self.mounts, url_path)
        except UnicodeDecodeError:
            target = None
        if target is None or not target.exists():
            self._answer(HTTPStatus.NOT_FOUND, "not found\n", body=body)
            return
        if target.is_dir():
            if not url_path.endswith("/"):
                self._answer(
                    HTTPStatus.MOVED_PERMANENTLY, "", body=body, extra={"Location": url_path + "/"}
                )
                return
            if (target / "index.html").is_file():
                target = target / "index.html"
            else:
                self._listing(target, url_path, body)
                return
        self._file(target, body)

    def _listing(self, folder: Path, url_path: str, body: bool) -> None:
        entries = sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name))
        rows = "".join(
            f'<li><a href="{quote(p.name)}{"/" if p.is_dir() else ""}">'
            f"{html.escape(p.name)}{'/' if p.is_dir() else ''}</a></li>"
            for p in entries
        )
        title = html.escape(unquote(url_path))
        page = (
            f"<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>"
            f'<ul><li><a href="../">../</a></li>{rows}</ul>\n'
        )
        self._answer(HTTPStatus.OK, page, body=body, kind="text/html; charset=utf-8")

    def _file(self, path: Path, body: bool) -> None:
        try:
            handle = path.open("rb")
        except OSError:
            self._answer(HTTPStatus.NOT_FOUND, "not found\n", body=body)
            return
        with handle:
            stat = path.stat()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(stat.st_size))
            self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if body:
                shutil.copyfileobj(handle, self.wfile)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")


def parse_mount(value: str) -> tuple[str, Path]:
    name, sep, folder = value.partition("=")
    if not sep or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"--mount NAME=FOLDER, got {value!r}")
    return name, Path(folder).resolve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/files_server.py", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--auth-file", required=True, help="file holding user:password")
    parser.add_argument(
        "--mount",
        type=parse_mount,
        action="append",
        default=[],
        help="NAME=FOLDER: serve FOLDER at /NAME/ (repeatable)",
    )
    args = parser.parse_args(argv)
    credentials = Path(args.auth_file).read_text().strip()
    if ":" not in credentials:
        parser.error(f"{args.auth_file} must hold user:password")
    Handler.mounts = dict(args.mount)
    Handler.credentials = credentials
    httpd = ThreadingHTTPServer((LOOPBACK, args.port), Handler)
    httpd.daemon_threads = True
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=httpd.shutdown).start())
    shown = ", ".join(f"/{name}/ = {folder}" for name, folder in Handler.mounts.items())
    print(f"files server on http://{LOOPBACK}:{args.port}: {shown}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
        print("files server stopped", flush=True)


if __name__ == "__main__":
    main()
