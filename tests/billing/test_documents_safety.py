"""Safe rendering: customer text is escaped, and no file:// or http:// reference is fetched.

A real HTTP server on 127.0.0.1 records every request; a local SVG file carries a marker that
would show in the PDF's text if it were ever loaded. The positive control proves the marker
does show when the same file is served the allowed way (as a packaged asset).
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pypdf import PdfReader

from billing.documents.errors import UnsafeResourceError
from billing.documents.pdf import TEMPLATES, InvoiceRenderer
from billing.documents.seller import DEFAULT_SELLER
from tests.billing.test_documents import invoice

MARKER = "TOPSECRETMARKER"


@pytest.fixture
def http_server():
    """A loopback HTTP server that records the paths it is asked for."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            body = f'<svg xmlns="http://www.w3.org/2000/svg"><text>{MARKER}</text></svg>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "image/svg+xml")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


@pytest.fixture
def secret_svg(tmp_path):
    path = tmp_path / "secret.svg"
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="20">'
        f'<text x="0" y="15" font-family="DejaVu Sans" font-size="12">{MARKER}</text></svg>'
    )
    return path


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_customer_fields_cannot_inject_markup_or_fetch(http_server, secret_svg):
    url, requests = http_server
    hostile = dataclasses.replace(
        invoice().buyer,
        name=f'<img src="{url}/name.svg"><b>Evil</b>',
        address_line=f'<link rel="stylesheet" href="file://{secret_svg}"><img src="file://{secret_svg}">',
        city=f"<style>@import url({url}/style.css);</style>Lyon",
    )
    renderer = InvoiceRenderer(DEFAULT_SELLER)  # strict: a fetch attempt would raise
    html = renderer.html(invoice(buyer=hostile))
    assert f'<img src="{url}' not in html and "&lt;img src=" in html
    text = text_of(renderer.visual_pdf(html))
    assert "<b>Evil</b>" in text  # shown as text, not as markup
    assert MARKER not in text
    assert requests == []


def test_template_references_outside_the_package_are_refused(http_server, secret_svg, tmp_path):
    url, requests = http_server
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    page = templates / "invoice.html.j2"
    page.write_text(
        page.read_text()
        .replace(
            "</head>",
            f'<link rel="stylesheet" href="{url}/evil.css">'
            f'<style>body {{ background: url("{url}/bg.png"); }}</style></head>',
        )
        .replace(
            "<header>",
            f'<img src="file://{secret_svg}"><img src="{url}/pixel.svg">'
            f'<img src="data:image/svg+xml,%3Csvg%3E%3C/svg%3E"><header>',
            1,
        )
    )
    strict = InvoiceRenderer(DEFAULT_SELLER, templates=templates)
    with pytest.raises(UnsafeResourceError) as refused:
        strict.visual_pdf(strict.html(invoice()))
    assert f"file://{secret_svg}" in str(refused.value) and f"{url}/pixel.svg" in str(refused.value)
    lenient = InvoiceRenderer(DEFAULT_SELLER, templates=templates, strict=False)
    assert MARKER not in text_of(lenient.visual_pdf(lenient.html(invoice())))
    assert requests == []  # nothing ever reached the server


def test_positive_control_the_marker_shows_when_served_as_the_logo(secret_svg):
    """The same file, served the allowed way (the configured logo), does reach the PDF."""
    renderer = InvoiceRenderer(dataclasses.replace(DEFAULT_SELLER, logo_path=str(secret_svg)))
    assert MARKER in text_of(renderer.visual_pdf(renderer.html(invoice())))
