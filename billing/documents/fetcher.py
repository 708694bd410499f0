"""The only way a rendered invoice reaches outside resources: packaged assets, by name.

WeasyPrint asks its ``url_fetcher`` for every image, stylesheet and font a document names.
``AssetFetcher`` answers ``openbill-asset:<name>`` from an in-memory table (the logo and the
packaged assets) and refuses everything else: ``file:``, ``http(s):``, ``data:``, ``ftp:``.
Refused URLs are kept, so that the renderer can fail loudly in strict mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from weasyprint.urls import URLFetcher, URLFetcherResponse

from billing.documents.errors import UnsafeResourceError

ASSET_SCHEME = "openbill-asset:"
ASSETS = Path(__file__).parent / "assets"
MIME_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".css": "text/css",
}


def asset(path: Path, name: str | None = None) -> tuple[str, tuple[bytes, str]]:
    """A table entry for a file: (name, (bytes, MIME type))."""
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        raise UnsafeResourceError(f"{path.name}: only {', '.join(MIME_TYPES)} assets are served")
    return name or path.name, (path.read_bytes(), mime)


def packaged_assets() -> dict[str, tuple[bytes, str]]:
    """Every file in billing/documents/assets, by file name."""
    return dict(asset(p) for p in sorted(ASSETS.iterdir()) if p.suffix.lower() in MIME_TYPES)


class AssetFetcher(URLFetcher):
    """Serves ``openbill-asset:<name>`` from ``assets``; refuses (and records) anything else."""

    def __init__(self, assets: Mapping[str, tuple[bytes, str]]) -> None:
        super().__init__(allowed_protocols=(), allow_redirects=False, fail_on_errors=False)
        self._assets = dict(assets)
        self.refused: list[str] = []

    def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
        if url.startswith(ASSET_SCHEME) and url[len(ASSET_SCHEME) :] in self._assets:
            data, mime = self._assets[url[len(ASSET_SCHEME) :]]
            return URLFetcherResponse(url, data, {"Content-Type": mime})
        self.refused.append(url)
        raise UnsafeResourceError(f"refused to fetch {url[:200]!r}: only packaged assets")
