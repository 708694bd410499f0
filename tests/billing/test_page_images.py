"""The invoice as a customer sees it: page 1 of a business invoice paid by direct debit, in
French, Portuguese, German and English, rendered through pdftoppm (Debian's poppler-utils).

Each page must be one page, not blank, with ink in the header, the lines and the payment
block. ``make page-images`` writes the same pictures to docs/invoice-<language>.png, which
are reviewed by eye and committed (docs/documents.md shows them).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
from PIL import Image

from billing.documents.pdf import InvoiceRenderer
from billing.documents.render import render_invoice
from billing.documents.seller import DEFAULT_SELLER
from billing.domain.printed import PrintedLine
from tests.billing.test_documents import invoice

PAGE_IMAGES_ENV = "OPENBILL_PAGE_IMAGES"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _sample(language: str):
    value = invoice(language)
    # The ADDON line of the sample is a fee prorated 21 of 31 days: say so, as bill day does.
    addon = value.lines[3]
    prorated = PrintedLine(addon.quantity, D("31.00"), addon.net, days=(21, 31))
    lines = (*value.lines[:3], dataclasses.replace(addon, printed=prorated), *value.lines[4:])
    value = dataclasses.replace(value, lines=lines)
    buyer = value.buyer  # a French business (its address and VAT id), whatever its language
    payment = dataclasses.replace(
        value.payment, debit_amount=value.gross, debit_on=date(2027, 3, 3)
    )
    return dataclasses.replace(value, buyer=buyer, payment=payment)


def _ink(image: Image.Image, top: float, bottom: float) -> int:
    """Dark pixels in a horizontal band of the page (fractions of its height)."""
    gray = image.convert("L")
    width, height = gray.size
    band = gray.crop((0, int(top * height), width, int(bottom * height)))
    return sum(1 for value in band.getdata() if value < 128)


@pytest.mark.parametrize("language", ["fr", "pt", "de", "en"])
def test_page_one_as_a_picture(language, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.fail("pdftoppm is missing: scripts/system-deps.sh installs poppler-utils")
    documents = render_invoice(_sample(language), InvoiceRenderer(DEFAULT_SELLER), schematron=False)
    pdf = tmp_path / f"invoice-{language}.pdf"
    pdf.write_bytes(documents.pdf)
    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", "-singlefile", str(pdf), str(tmp_path / language)],
        check=True,
        timeout=60,
    )
    png = tmp_path / f"{language}.png"
    with Image.open(png) as image:
        assert image.size[1] > image.size[0]  # a portrait A4 page
        assert _ink(image, 0.0, 0.2) > 500  # seller, title, invoice facts
        assert _ink(image, 0.3, 0.55) > 1000  # the lines
        assert _ink(image, 0.6, 0.85) > 200  # payment, pre-notification, legal mentions
    if os.environ.get(PAGE_IMAGES_ENV):
        shutil.copyfile(png, DOCS / f"invoice-{language}.png")
