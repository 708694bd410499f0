"""The Prefect UI, offline, in headless Debian chromium: log in, find the bill-day run.

The server requires the API auth string, so the UI first shows its login page; the test logs
in there with the string ``scripts/server.py`` wrote, as an operator would, and then finds the
run on the runs page.

The screenshot goes to the test's tmp dir. ``make ui-screenshot`` sets OPENBILL_UI_SCREENSHOT
to write the same picture to docs/ui-bill-day-run.png as well.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.operations.conftest import RUN_NAME

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_ENV = "OPENBILL_UI_SCREENSHOT"


def _require_chromium() -> None:
    """Skip locally, fail in CI, when Debian's chromium is not installed."""
    if Path(CHROMIUM).exists():
        return
    message = f"no browser at {CHROMIUM} (scripts/system-deps.sh installs Debian's chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def log_in(page, auth_string: str) -> None:
    """The UI's login page (it asks because the API requires auth): type the string, submit."""
    password = page.locator("input[type=password]")
    password.wait_for(timeout=60_000)
    assert "login" in page.url
    password.fill(auth_string)
    page.get_by_role("button", name="Login").click()
    page.wait_for_url(lambda url: "login" not in url, timeout=60_000)


def test_runs_page_shows_the_bill_day_run(deployed, bill_day_run, tmp_path):
    _require_chromium()
    from playwright.sync_api import sync_playwright

    offsite: list[str] = []
    shot = tmp_path / "ui-bill-day-run.png"
    with sync_playwright() as playwright:
        # A fresh profile (--user-data-dir) per run; Playwright takes it as an argument.
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=FLAGS,
            viewport={"width": 1400, "height": 900},
            timeout=60_000,
        )
        try:
            page = browser.new_page()
            page.on(
                "request",
                lambda r: (
                    offsite.append(r.url)
                    if r.url.startswith("http") and not r.url.startswith(deployed.ui)
                    else None
                ),
            )
            page.goto(f"{deployed.ui}/runs", wait_until="domcontentloaded", timeout=60_000)
            log_in(page, deployed.auth_string)
            page.get_by_text(RUN_NAME, exact=True).first.wait_for(timeout=60_000)
            page.get_by_text("Completed").first.wait_for(timeout=30_000)
            page.wait_for_timeout(1_000)  # let the chart settle for the picture
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert offsite == [], "the UI must work without internet"
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])
