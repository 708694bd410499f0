"""The translation catalogue is complete for every key the invoice and its e-mail use.

The keys are found by parsing, not listed by hand: the template's ``t("key", ...)`` calls
(a Jinja AST walk) and the Python sources' ``.text("key", ...)`` / ``translate(lang, "key")``
calls (an ``ast`` walk over billing/documents). A new string used without a translation in
fr, pt, de or en makes ``test_every_used_key_is_translated_in_every_language`` fail.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import string
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from jinja2 import Environment, nodes
from sqlalchemy import select

import billing.documents
from billing.documents.formatting import Formatter
from billing.documents.model import ProductName, line_description, load_invoices
from billing.documents.outbox import enqueue_invoices
from billing.documents.pdf import TEMPLATES, InvoiceRenderer
from billing.documents.render import render_invoice
from billing.documents.seller import DEFAULT_SELLER
from billing.documents.translations import CATALOGUE, LANGUAGES, SAME_AS_ENGLISH, translate
from billing.domain.errors import ImportFileError
from billing.ingest.importer import import_file
from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import Account, OutboxMessage, Product
from tests.billing.test_billday import population  # noqa: F401
from tests.billing.test_documents import invoice, pdf_text

DOCUMENTS = Path(billing.documents.__file__).parent
TEMPLATE = TEMPLATES / "invoice.html.j2"


# --- finding the keys -------------------------------------------------------------------------


def template_keys(source: str) -> tuple[set[str], list[str]]:
    """The literal keys of the template's ``t(...)`` calls, and every use of ``t`` that is not
    such a call (``t.key``, ``t[key]``, ``t(variable)``): those could not be checked."""
    tree = Environment().parse(source)
    keys: set[str] = set()
    problems: list[str] = []
    calls = list(tree.find_all(nodes.Call))
    called = set()
    for call in calls:
        if isinstance(call.node, nodes.Name) and call.node.name == "t":
            called.add(id(call.node))
            if call.args and isinstance(call.args[0], nodes.Const):
                keys.add(call.args[0].value)
            else:
                problems.append(f"line {call.lineno}: t() without a literal key")
    for name in tree.find_all(nodes.Name):
        if name.name == "t" and id(name) not in called:
            problems.append(f"line {name.lineno}: t used other than as t('key')")
    return keys, problems


PLUMBING = {"text", "translate", "words"}
"""The catalogue's own functions, which pass a key through."""


def python_keys(source: str, where: str) -> tuple[set[str], list[str]]:
    """The literal keys of ``x.text("key")`` and ``translate(lang, "key")`` calls in a module,
    and the calls whose key is not a literal (outside the catalogue's own functions)."""
    keys: set[str] = set()
    problems: list[str] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef) else function
            if isinstance(child, ast.Call):
                func = child.func
                if isinstance(func, ast.Attribute):  # f.text("key"), translations.translate(...)
                    position = {"text": 0, "translate": 1}.get(func.attr)
                    name = func.attr
                else:  # translate(lang, "key"); a bare text() is SQLAlchemy's
                    name = getattr(func, "id", "")
                    position = {"translate": 1}.get(name)
                if position is not None and function not in PLUMBING:
                    args = child.args
                    if len(args) > position and isinstance(args[position], ast.Constant):
                        keys.add(args[position].value)
                    else:
                        problems.append(f"{where}:{child.lineno}: {name}() without a literal key")
            visit(child, inner)

    visit(ast.parse(source), "")
    return keys, problems


def used_keys() -> tuple[set[str], list[str]]:
    keys, problems = template_keys(TEMPLATE.read_text(encoding="utf-8"))
    for module in sorted(DOCUMENTS.rglob("*.py")):
        found, wrong = python_keys(module.read_text(encoding="utf-8"), module.name)
        keys |= found
        problems += wrong
    return keys, problems


def untranslated(keys: set[str], catalogue: dict[str, dict[str, str]]) -> list[str]:
    """Every (language, key) without a proper translation: missing, empty, the English text
    where that is not listed as genuinely the same, or other placeholders than English."""
    found = []
    english = catalogue["en"]
    for key in sorted(keys):
        for language in LANGUAGES:
            text = catalogue.get(language, {}).get(key)
            if text is None or not text.strip():
                found.append(f"{language}.{key}: missing or empty")
                continue
            if language == "en":
                continue
            if key not in english:
                found.append(f"en.{key}: no English text to compare with")
            elif text == english[key] and key not in SAME_AS_ENGLISH.get(language, ()):
                found.append(f"{language}.{key}: the same as English ({text!r})")
            elif _placeholders(text) != _placeholders(english[key]):
                found.append(f"{language}.{key}: placeholders differ from English")
    return found


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


# --- the guard --------------------------------------------------------------------------------


def test_the_keys_are_found_in_the_template_and_the_code():
    keys, problems = used_keys()
    assert problems == []
    assert {"invoice", "due", "period", "vat", "iban", "payment"} <= keys  # the template
    assert {"terms_on_receipt", "terms_days", "email_subject", "email_body"} <= keys  # Python
    assert {"line_cancelled"} <= keys  # model.py


def test_every_used_key_is_translated_in_every_language():
    keys, _ = used_keys()
    assert untranslated(keys, CATALOGUE) == []


def test_the_catalogue_holds_no_unused_key():
    keys, _ = used_keys()
    for language in LANGUAGES:
        assert set(CATALOGUE[language]) - keys == set(), language


def test_the_guard_fails_on_a_new_untranslated_string():
    """The checks can fail: a new key in the template or the code, a copied English text."""
    source = TEMPLATE.read_text(encoding="utf-8")
    assert "<h1" in source
    source = source.replace("<h1", '{{ t("brand_new_heading") }}<h1', 1)
    keys, problems = template_keys(source)
    assert problems == [] and "brand_new_heading" in keys
    assert "de.brand_new_heading: missing or empty" in untranslated(keys, CATALOGUE)
    code, _ = python_keys('def f(x):\n    return x.text("brand_new_word")\n', "new.py")
    assert untranslated(code, CATALOGUE)[0] == "en.brand_new_word: missing or empty"
    copied = {**CATALOGUE, "de": {**CATALOGUE["de"], "due": CATALOGUE["en"]["due"]}}
    assert untranslated({"due"}, copied) == ["de.due: the same as English ('Due date')"]
    empty = {**CATALOGUE, "pt": {**CATALOGUE["pt"], "vat": " "}}
    assert untranslated({"vat"}, empty) == ["pt.vat: missing or empty"]
    _, dynamic = template_keys("{{ t.invoice }} {{ t(name) }}")
    assert len(dynamic) == 2
    _, dynamic = python_keys("def f(x, k):\n    return x.text(k)\n", "new.py")
    assert dynamic == ["new.py:2: text() without a literal key"]


# --- what the words say -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "days", "expected"),
    [
        ("en", 0, "Due on receipt."),
        ("fr", 0, "Payable à réception."),
        ("pt", 0, "Pagamento na receção da fatura."),
        ("de", 0, "Zahlbar sofort nach Erhalt."),
        ("en", 1, "Payable within 1 day, by 2 February 2027."),
        ("fr", 1, "Payable sous 1 jour, au plus tard le 2 février 2027."),
        ("pt", 1, "Pagável no prazo de 1 dia, até 2 de fevereiro de 2027."),
        ("de", 1, "Zahlbar innerhalb von 1 Tag ohne Abzug bis zum 2. Februar 2027."),
        ("en", 30, "Payable within 30 days, by 2 February 2027."),
        ("fr", 30, "Payable sous 30 jours, au plus tard le 2 février 2027."),
        ("pt", 30, "Pagável no prazo de 30 dias, até 2 de fevereiro de 2027."),
        ("de", 30, "Zahlbar innerhalb von 30 Tagen ohne Abzug bis zum 2. Februar 2027."),
    ],
)
def test_payment_terms_read_naturally(language, days, expected):
    country = {"en": "GB", "fr": "FR", "pt": "PT", "de": "DE"}[language]
    assert Formatter.for_account(language, country, "EUR").terms(days, date(2027, 2, 2)) == expected


@pytest.mark.parametrize(
    ("language", "country", "money", "day"),
    [
        ("de", "DE", "1.234,56\u00a0€", "30.01.2027"),
        ("fr", "FR", "1\u202f234,56\u00a0€", "30/01/2027"),
        ("pt", "PT", "1\u00a0234,56\u00a0€", "30/01/2027"),
        ("en", "GB", "€1,234.56", "30 Jan 2027"),
    ],
)
def test_amounts_and_dates_follow_the_language(language, country, money, day):
    f = Formatter.for_account(language, country, "EUR")
    assert f.money(Decimal("1234.56")) == money
    assert f.date(date(2027, 1, 30)) == day


def test_line_descriptions_use_the_product_name_of_the_language():
    fibre = ProductName("Fibre 1 Gbit/s", {"de": "Glasfaser 1 Gbit/s", "pt": "Fibra 1 Gbit/s"})
    de = Formatter.for_account("de", "DE", "EUR")
    assert line_description("Fibre 1 Gbit/s", fibre, de) == "Glasfaser 1 Gbit/s"
    assert (
        line_description("Fibre 1 Gbit/s (cancelled 2027-01-15)", fibre, de)
        == "Glasfaser 1 Gbit/s (gekündigt zum 15.01.2027)"
    )
    fr = Formatter.for_account("fr", "FR", "EUR")  # no French name: the base name
    assert line_description("Fibre 1 Gbit/s", fibre, fr) == "Fibre 1 Gbit/s"
    assert line_description("Late fee", None, de) == "Late fee"  # no product: as billed
    assert line_description("Other name", fibre, de) == "Other name"


@pytest.fixture(scope="module")
def renderer() -> InvoiceRenderer:
    return InvoiceRenderer(DEFAULT_SELLER)


@pytest.mark.parametrize("language", ["fr", "pt", "de"])
def test_no_english_word_is_left_on_the_invoice(renderer, language):
    """Every English text of the catalogue is absent from the fr, pt and de HTML."""
    html = renderer.html(invoice(language))
    for key, text in CATALOGUE["en"].items():
        if key in SAME_AS_ENGLISH.get(language, ()) or "{" in text:
            continue
        assert text not in html, (key, text)


def test_german_and_portuguese_pdfs_due_on_receipt(renderer):
    de = invoice(
        "de",
        due_date=date(2027, 2, 1),
        payment=dataclasses.replace(invoice().payment, terms_days=0),
        buyer=dataclasses.replace(invoice().buyer, country="DE"),
    )
    text = pdf_text(render_invoice(de, renderer, schematron=False).pdf)
    for word in (
        "Rechnung",
        "Rechnungsdatum",
        "Leistungszeitraum",
        "Fällig am",
        "Zwischensumme",
        "USt.",
        "Zahlbar sofort nach Erhalt",
        "Mandatsreferenz",
        "01.02.2027",
    ):
        assert word in text, word
    pt = dataclasses.replace(de, language="pt", buyer=dataclasses.replace(de.buyer, country="PT"))
    text = pdf_text(render_invoice(pt, renderer, schematron=False).pdf)
    for word in ("Fatura", "Data da fatura", "Data de vencimento", "IVA", "Pagamento na rece"):
        assert word in text, word
    assert "0 dias" not in text


def test_email_body_due_on_receipt_and_in_the_language():
    f = Formatter.for_account("de", "DE", "EUR")
    body = f.email_body(
        name="Frau Muster",
        number="INV-1",
        bill_date=date(2027, 2, 1),
        amount=Decimal("12.50"),
        due=date(2027, 2, 1),
        seller="Openbill",
    )
    assert "zahlbar sofort nach Erhalt" in body and "12,50\u00a0€" in body
    assert translate("pt-PT", "email_subject", number="X") == "Fatura X"


def test_invoices_from_the_database_name_products_in_the_account_language(population):  # noqa: F811
    engine = population
    with unit_of_work(engine) as s:
        a = s.scalars(select(Account).where(Account.ref == "A")).one()
        a.language = "de"
        pro = s.scalars(select(Product).where(Product.code == "P-PRO")).one()
        base = pro.name
        pro.name_translations = {"de": "Profi-Paket", "fr": "Offre Pro"}
    run_bill_day(engine, date(2027, 2, 1), "run-1")
    with unit_of_work(engine) as s:
        invoices = {i.account_ref: i for i in load_invoices(s)}
        enqueue_invoices(s, invoices.values(), domain="openbill.example")
        subjects = sorted(s.scalars(select(OutboxMessage.subject)))
    names = [li.description for li in invoices["A"].lines]
    assert "Profi-Paket" in names and base not in names
    assert subjects[0].startswith("Invoice ") and subjects[1].startswith("Rechnung ")
    with unit_of_work(engine) as s:  # back to no translation: the base name
        s.scalars(select(Product).where(Product.code == "P-PRO")).one().name_translations = None
    with unit_of_work(engine) as s:
        again = {i.account_ref: i for i in load_invoices(s)}
    assert base in [li.description for li in again["A"].lines]


# --- the catalogue's translated names come in by import and seed ------------------------------


def test_the_import_stores_translated_product_names_and_refuses_bad_ones(engine, tmp_path):
    demo = Path(__file__).parents[2] / "examples" / "demo-import.json"
    for _ in range(2):  # the second import finds them unchanged
        with unit_of_work(engine) as s:
            report = import_file(s, demo)
    assert report.of("products").unchanged == 7
    with unit_of_work(engine) as s:
        names = dict(s.execute(select(Product.code, Product.name_translations)).tuples().all())
    assert names["HOSTING"] == {
        "fr": "Hébergement infogéré",
        "pt": "Alojamento gerido",
        "de": "Managed Hosting",
    }
    assert all(set(n or ()) == {"fr", "pt", "de"} for n in names.values())
    bad = tmp_path / "bad.json"
    product = {"code": "X", "name": "X", "tax_category": "STD", "name_translations": {"fr": ""}}
    bad.write_text(json.dumps({"products": [product]}), encoding="utf-8")
    with unit_of_work(engine) as s, pytest.raises(ImportFileError, match="name_translations"):
        import_file(s, bad)


def test_the_synthetic_catalogue_names_every_product_in_fr_pt_and_de(engine):
    seed(engine, accounts=2, usage_per_account=1, start=date(2027, 1, 1))
    with unit_of_work(engine) as s:
        rows = s.execute(select(Product.name, Product.name_translations)).tuples().all()
    assert [name for name, names in rows if set(names or ()) != {"fr", "pt", "de"}] == []
    assert any(names["de"] != name for name, names in rows)
