"""Check every Factur-X PDF under a folder: the CII it carries against the Factur-X EN 16931
XSD and the full EN 16931 Schematron, and count the VAT categories of their breakdowns.

    .venv/bin/python scripts/validate_documents.py [var/documents]

Exits 1 naming the first file that fails. Bill day samples the Schematron (docs/documents.md);
this reads back what was issued, every file.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from facturx import get_xml_from_pdf
from lxml import etree

from billing.documents.errors import InvoiceValidationError
from billing.documents.validation import validate_cii_schematron, validate_cii_xsd

RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
CATEGORIES = f".//{{{RAM}}}ApplicableHeaderTradeSettlement/{{{RAM}}}ApplicableTradeTax"


def main(folder: Path) -> int:
    categories: Counter[str] = Counter()
    pdfs = sorted(folder.rglob("*.pdf"))
    for pdf in pdfs:
        _, xml = get_xml_from_pdf(pdf.read_bytes(), check_xsd=False)
        try:
            validate_cii_xsd(etree.fromstring(xml))
            validate_cii_schematron(xml)
        except InvoiceValidationError as error:
            print(f"{pdf}: {error}")
            return 1
        for tax in etree.fromstring(xml).iterfind(CATEGORIES):
            categories[tax.findtext(f"{{{RAM}}}CategoryCode") or "?"] += 1
    shown = ", ".join(f"{code} {count}" for code, count in sorted(categories.items()))
    print(f"{len(pdfs)} PDF(s): Factur-X XSD and EN 16931 Schematron pass; VAT rows: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "var/documents")))
