"""Make a built Data Docs site readable offline: no page loads anything from another host.

Great Expectations links bootstrap, bootstrap-table, jQuery, font-awesome, vega and its logo
from CDNs, so without internet the pages are unstyled and the index tables (filled by
bootstrap-table) are empty. ``make_offline(site)`` rewrites every page of the site:

- each external ``<link>`` and ``<script src>`` goes; the first one's place gets our own
  ``static/openbill/data_docs.css`` and ``data_docs.js`` (shipped in ``expectations/static``
  and copied into the site), which style the pages and fill the tables;
- the external logo becomes the local copy GE ships (``static/images/logo-long.png``);
- links to other hosts keep their text and lose their address;
- links to the site's ``static/`` files get the right number of ``../`` (GE's validation
  pages count one level too few, so their favicon was not found);
- in the site's stylesheets, ``url(...)`` of another host becomes ``none``.

The result references only files under the site, so it can be opened from disk or served
by the local stack as it is.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ASSETS = Path(__file__).parent / "static"
ASSET_DIR = "static/openbill"
FILES = ("data_docs.css", "data_docs.js")

_EXTERNAL = r"""(?:https?:)?//[^"'\s>]+"""
_LINK = re.compile(rf"""<link\b[^>]*\bhref=["']{_EXTERNAL}["'][^>]*>""", re.I)
_SCRIPT = re.compile(rf"""<script\b[^>]*\bsrc=["']{_EXTERNAL}["'][^>]*>\s*</script>""", re.I)
_LOGO = re.compile(rf"""(<img\b[^>]*\bsrc=)["']{_EXTERNAL}["']""", re.I)
_ANCHOR = re.compile(rf"""(<a\b[^>]*?)\s+href=["']{_EXTERNAL}["']""", re.I)
_STATIC = re.compile(r"""\b(href|src)=(["'])(?:\.\./)*static/""")
_CSS_URL = re.compile(rf"""url\(\s*["']?{_EXTERNAL}["']?\s*\)""", re.I)
_MARK = "<!--openbill-offline-->"


def make_offline(site: Path) -> None:
    """Rewrite every page and stylesheet of the Data Docs ``site`` to use local files only.

    Idempotent: a page already rewritten is left as it is (a run into the same directory
    rebuilds the index and adds its pages next to the older ones).
    """
    site = Path(site)
    target = site / ASSET_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(ASSETS / name, target / name)
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if _MARK not in text:
            page.write_text(_offline_page(text, _prefix(page, site)), encoding="utf-8")
    for sheet in (site / "static").rglob("*.css"):
        text = sheet.read_text(encoding="utf-8")
        cleaned = _CSS_URL.sub("none", text)
        if cleaned != text:
            sheet.write_text(cleaned, encoding="utf-8")


def _prefix(page: Path, site: Path) -> str:
    """The relative path from ``page`` up to the site's root, ``""`` or ``"../../"``."""
    up = os.path.relpath(site, page.parent)
    return "" if up == "." else up.replace(os.sep, "/") + "/"


def _offline_page(text: str, prefix: str) -> str:
    ours = (
        f'{_MARK}<link rel="stylesheet" href="{prefix}{ASSET_DIR}/data_docs.css">'
        f'<script src="{prefix}{ASSET_DIR}/data_docs.js"></script>'
    )
    placed = False

    def first_only(_match: re.Match[str]) -> str:
        nonlocal placed
        if placed:
            return ""
        placed = True
        return ours

    text = _SCRIPT.sub(first_only, text)
    text = _LINK.sub("", text)
    if not placed:  # a page without CDN scripts still gets the stylesheet
        text = text.replace("</head>", f"{ours}</head>", 1)
    # GE counts one level too few on validation pages (their favicon is not found).
    text = _STATIC.sub(lambda m: f"{m.group(1)}={m.group(2)}{prefix}static/", text)
    logo = prefix + "static/images/logo-long.png"
    text = _LOGO.sub(lambda m: f'{m.group(1)}"{logo}"', text)
    text = _ANCHOR.sub(lambda m: m.group(1), text)
    return _CSS_URL.sub("none", text)
