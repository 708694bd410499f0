"""The Data Docs of the checks are readable offline: no page loads anything from another host,
every file a page references exists in the site, and the index's tables are filled (by our
own script, without the CDN's jQuery and bootstrap-table) when a browser opens it from disk."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from billing.store.db import make_engine
from billing.store.migrate import upgrade
from expectations.runner import run_post_billing_checks
from expectations.suites import tables

SUITES = len(tables())
"""One suite per table the rules read (9 since the prepaid credits' wallets and entries)."""

HOST = re.compile(r"(?:https?:)?//[\w.-]+\.\w+")
ATTRIBUTE = re.compile(r"""\b(?:src|href)=["']([^"']*)["']""")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Data Docs of two check runs into one directory (the second rebuilds the site)."""
    base = tmp_path_factory.mktemp("checks")
    engine = make_engine(f"sqlite:///{base / 'billing.db'}")
    upgrade(engine)
    try:
        for as_of in (date(2027, 2, 1), date(2027, 2, 28)):
            report = run_post_billing_checks(engine, as_of, base / "output")
    finally:
        engine.dispose()
    assert report.data_docs == base / "output" / "data_docs" / "index.html"
    return report.data_docs.parent


def _text_files(site: Path) -> list[Path]:
    return [p for p in site.rglob("*") if p.suffix in {".html", ".css", ".js"}]


def test_no_page_or_stylesheet_names_another_host(site):
    pages = list(site.rglob("*.html"))
    # the index, a suite per table (bill_lines is gone), the latest run's validation of each
    assert SUITES == 9
    assert len(pages) == 1 + SUITES + SUITES
    leaks = {
        str(p.relative_to(site)): sorted(set(HOST.findall(p.read_text())))
        for p in _text_files(site)
    }
    assert {name: hosts for name, hosts in leaks.items() if hosts} == {}


def test_every_file_a_page_references_exists(site):
    missing = []
    for page in site.rglob("*.html"):
        for target in ATTRIBUTE.findall(page.read_text()):
            if not target or target.startswith(("#", "javascript:")):
                continue
            if not (page.parent / target.split("#")[0].split("?")[0]).resolve().is_file():
                missing.append((str(page.relative_to(site)), target))
    assert missing == []
    index = (site / "index.html").read_text()
    assert 'href="static/openbill/data_docs.css"' in index
    assert 'src="static/openbill/data_docs.js"' in index


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_a_browser_offline_fills_the_index_tables(site):
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            (site / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = re.findall(r"<tr[^>]*data-href=\"(validations/[^\"]+)\"", dom)
    assert len(rows) == SUITES  # one validation per suite: the index lists the latest run
    assert all((site / row).is_file() for row in rows)
    assert "<td>as-of-2027-02-28</td>" in dom
    assert "post_billing.bills" in dom
