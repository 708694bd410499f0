"""scripts/files_server.py, run as the stack runs it: Basic auth, read-only, no way out, types.

Fast: the server process is started on a free loopback port over two tmp folders (the
stack's ``output`` and ``documents``), with an auth file like the one ``server.py`` writes.
tests/operations/test_stack_services.py checks the one ``make server`` starts.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
AUTH = "admin:s3cret-Token_value"
TYPES = {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "INV-1.pdf": "application/pdf",
    "INV-1.xml": "application/xml",
    "lines.csv": "text/csv; charset=utf-8",
    "logo.png": "image/png",
    "logo.svg": "image/svg+xml",
    "font.woff": "font/woff",
    "font.woff2": "font/woff2",
}


@dataclass
class Files:
    url: str
    port: int
    output: Path
    documents: Path
    secret: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    base = tmp_path_factory.mktemp("files")
    output, documents = base / "data" / "output", base / "data" / "documents"
    (output / "2027-02-01" / "run" / "data_docs").mkdir(parents=True)
    (documents / "2027" / "02").mkdir(parents=True)
    for name in TYPES:
        (output / name).write_bytes(f"content of {name}".encode())
    (output / "2027-02-01" / "run" / "data_docs" / "index.html").write_text("<h1>docs</h1>")
    (documents / "2027" / "02" / "INV-00000001.pdf").write_bytes(b"%PDF-1.7 invoice")
    secret = base / "data" / "secret.txt"  # beside the mounts: must stay out of reach
    secret.write_text("not for the web")
    (output / "escape").symlink_to(secret)
    auth_file = base / "auth"
    auth_file.write_text(AUTH + "\n")
    port = _free_port()
    argv = [sys.executable, str(ROOT / "scripts" / "files_server.py"), "--port", str(port)]
    argv += ["--auth-file", str(auth_file)]
    argv += ["--mount", f"output={output}", "--mount", f"documents={documents}"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "files server exited"
                assert time.monotonic() < deadline, "files server never listened"
                time.sleep(0.1)
        yield Files(f"http://127.0.0.1:{port}", port, output, documents, secret)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _raw(
    files: Files, path: str, auth: str | None = AUTH, method: str = "GET"
) -> tuple[int, bytes]:
    """A request with ``path`` sent byte for byte (no client-side ``..`` clean-up)."""
    connection = http.client.HTTPConnection("127.0.0.1", files.port, timeout=10)
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def test_without_credentials_the_answer_is_401_with_a_basic_challenge(files):
    for path in ("/", "/output/index.html", "/documents/2027/02/INV-00000001.pdf", "/nothing"):
        response = httpx.get(files.url + path, timeout=10)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert b"content of" not in response.content


def test_wrong_credentials_are_refused(files):
    for auth in (("admin", "wrong"), ("other", AUTH.split(":", 1)[1]), ("admin", "")):
        assert httpx.get(f"{files.url}/output/index.html", auth=auth, timeout=10).status_code == 401
    assert _raw(files, "/output/index.html", auth="admin")[0] == 401  # no colon at all


def test_with_credentials_each_file_comes_with_its_type(files):
    user, password = AUTH.split(":", 1)
    for name, kind in TYPES.items():
        response = httpx.get(f"{files.url}/output/{name}", auth=(user, password), timeout=10)
        assert response.status_code == 200, name
        assert response.headers["Content-Type"] == kind, name
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.content == f"content of {name}".encode()
    pdf = httpx.get(
        f"{files.url}/documents/2027/02/INV-00000001.pdf", auth=(user, password), timeout=10
    )
    assert (pdf.status_code, pdf.headers["Content-Type"]) == (200, "application/pdf")
    assert pdf.content == b"%PDF-1.7 invoice"


def test_a_folder_serves_its_index_or_a_listing(files):
    user, password = AUTH.split(":", 1)
    docs = httpx.get(
        f"{files.url}/output/2027-02-01/run/data_docs/", auth=(user, password), timeout=10
    )
    assert (docs.status_code, docs.text) == (200, "<h1>docs</h1>")
    listing = httpx.get(f"{files.url}/documents/2027/02/", auth=(user, password), timeout=10)
    assert listing.status_code == 200 and 'href="INV-00000001.pdf"' in listing.text
    bare = httpx.get(f"{files.url}/documents/2027", auth=(user, password), timeout=10)
    assert (bare.status_code, bare.headers["Location"]) == (301, "/documents/2027/")


@pytest.mark.parametrize(
    "path",
    [
        "/output/../secret.txt",
        "/output/%2e%2e/secret.txt",
        "/output/..%2fsecret.txt",
        "/output/%2E%2E%2Fsecret.txt",
        "/output/2027-02-01/../../secret.txt",
        "/documents/..%5csecret.txt",
        "/output/escape",  # a symlink pointing out of the folder
        "/output/%00",
        "/../data/secret.txt",
        "//etc/passwd",
        "/output//etc/passwd",
        "/secret.txt",
    ],
)
def test_no_path_leaves_the_served_folders(files, path):
    status, body = _raw(files, path)
    assert status == 404, (path, status)
    assert b"not for the web" not in body


def test_it_is_read_only(files):
    for method in ("PUT", "POST", "DELETE", "PATCH"):
        status, _ = _raw(files, "/output/index.html", method=method)
        assert status == 405, method
        assert _raw(files, "/output/index.html", auth=None, method=method)[0] == 401
    assert (files.output / "index.html").read_bytes() == b"content of index.html"
    assert os.listdir(files.output / "2027-02-01") == ["run"]
