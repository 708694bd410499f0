"""The operator's path through the UI, in headless Debian chromium, on the ``make server`` stack.

Log in with the auth string, open bill-day's deployment, Run -> Custom run, pick the next
bill date in the form's date picker, submit. The worker runs it; the run's summary artifact
links the checks' Data Docs on the files server (http, same credentials), which render with
their own stylesheet while every request off the machine is refused; the Invoice Email
Sender then delivers the new invoices to the mail catcher. The picture of the summary goes
to the test's tmp dir (``make ui-screenshot`` copies it to docs/).
"""

from __future__ import annotations

import mailbox
import os
import shutil
import time
from email import policy
from email.parser import BytesParser

import httpx
import pytest
from sqlalchemy import func, select

from billing.store.db import make_engine, unit_of_work
from billing.store.models import Bill
from tests.operations.conftest import BILL_DAY, EMAIL_SENDER
from tests.operations.test_ui import CHROMIUM, FLAGS, _require_chromium, log_in

pytestmark = pytest.mark.slow
NEXT_DATE = "2027-03-01"  # the fixture billed 2027-02-01; A bills monthly, B on the 31st
SCREENSHOT_ENV = "OPENBILL_UI_SUMMARY_SCREENSHOT"


def _bills(url: str) -> int:
    engine = make_engine(url)
    try:
        with unit_of_work(engine) as session:
            return session.scalar(select(func.count()).select_from(Bill)) or 0
    finally:
        engine.dispose()


def _wait_for_run(deployed, page, name: str, timeout: float = 240) -> dict:
    """The finished run ``name``; the page's own clock waits between looks, so Playwright
    keeps serving the page's routed requests meanwhile (``time.sleep`` would stall them)."""
    body = {"flow_runs": {"name": {"any_": [name]}}}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = httpx.post(f"{deployed.api}/flow_runs/filter", json=body, auth=deployed.auth).json()
        if runs and runs[0]["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return runs[0]
        page.wait_for_timeout(1_000)
    every = httpx.post(f"{deployed.api}/flow_runs/filter", json={}, auth=deployed.auth).json()
    seen = [(r["name"], r["state_type"], r["parameters"]) for r in every]
    raise AssertionError(f"no finished run {name!r} after {timeout:.0f} s; runs: {seen}")


def _offline(context, offsite: list[str]) -> None:
    """Refuse (and note) every request that would leave the machine: the network is off."""

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(("http://127.0.0.1", "data:", "blob:")):
            request_route.continue_()
        else:
            offsite.append(url)
            request_route.abort()

    context.route("**/*", route)


def test_bill_day_started_from_the_run_form_bills_links_data_docs_and_mails(
    deployed, bill_day_run, tmp_path
):
    _require_chromium()
    from playwright.sync_api import sync_playwright

    bills_before = _bills(deployed.database_url)
    offsite: list[str] = []
    user, password = deployed.auth
    summary_shot, docs_shot = tmp_path / "ui-run-summary.png", tmp_path / "data-docs.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            ui = browser.new_context(viewport={"width": 1400, "height": 1300})
            _offline(ui, offsite)
            page = ui.new_page()
            page.goto(f"{deployed.ui}/deployments", timeout=60_000)
            log_in(page, deployed.auth_string)
            page.reload()  # drops the toasts of the requests made before the login
            page.get_by_text(BILL_DAY.split("/")[1]).first.click(timeout=60_000)
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Custom run").first.click()
            page.get_by_text("Select date").click()  # as_of: a plain date field
            page.locator("input[type=date]").fill(NEXT_DATE)
            page.get_by_role("button", name="Apply").click()
            page.get_by_role("button", name="Submit").click()
            page.wait_for_url(lambda url: url.endswith("?tab=Runs"), timeout=60_000)

            run = _wait_for_run(deployed, page, f"bill-day {NEXT_DATE}")
            assert run["state_type"] == "COMPLETED", run["state"]
            assert run["parameters"]["as_of"] == NEXT_DATE
            assert run["auto_scheduled"] is False

            page.goto(f"{deployed.ui}/runs/flow-run/{run['id']}", timeout=60_000)
            page.get_by_text("Completed").first.wait_for(timeout=60_000)
            page.locator("li.p-tab#artifacts").click()
            page.locator(".artifact-card__title", has_text="bill-day-run-summary").click()
            # The markdown renders after the page: wait for the link itself, then read it.
            link = page.locator(f'a[href^="{deployed.files}/output/"][href*="/data_docs/"]')
            link.first.wait_for(timeout=60_000)
            page.screenshot(path=str(summary_shot), full_page=True)
            # The UI re-renders the artifact as it polls: read the link once it is there again.
            hrefs: list[str] = []
            for _ in range(120):
                hrefs = link.evaluate_all("els => els.map(e => e.href)")
                if hrefs:
                    break
                page.wait_for_timeout(500)
            [data_docs] = hrefs

            files = browser.new_context(
                viewport={"width": 1400, "height": 900},
                http_credentials={"username": user, "password": password},
            )
            _offline(files, offsite)
            docs = files.new_page()
            answer = docs.goto(data_docs, timeout=60_000)
            assert answer is not None and answer.status == 200
            docs.wait_for_load_state("networkidle")
            styled = docs.evaluate(
                """() => ({
                    sheets: [...document.querySelectorAll('link[rel=stylesheet]')]
                        .map(l => l.sheet ? l.sheet.cssRules.length : 0),
                    fontSize: getComputedStyle(document.body).fontSize,
                    rows: document.querySelectorAll('table tbody tr').length,
                })"""
            )
            docs.screenshot(path=str(docs_shot))
        finally:
            browser.close()

    bills_after = _bills(deployed.database_url)
    assert bills_after > bills_before, "the run from the form billed nothing"
    assert styled["sheets"] and all(n > 0 for n in styled["sheets"]), styled
    assert styled["fontSize"] == "14px", styled  # expectations/static/data_docs.css, not 16px
    assert styled["rows"] > 0, styled  # the validation runs are listed
    assert offsite == [], "nothing may come from off the machine"

    from prefect.deployments import run_deployment

    with deployed.connected():
        sent = run_deployment(
            EMAIL_SENDER,
            parameters={"process_now": f"{NEXT_DATE}T06:00:00"},
            timeout=150,
            poll_interval=1,
        )
    assert sent.state.type.value == "COMPLETED", sent.state
    parse = BytesParser(policy=policy.default).parsebytes
    messages = [parse(m.as_bytes()) for m in mailbox.Maildir(deployed.mail_dir, create=False)]
    attached = {
        part.get_filename()
        for message in messages
        for part in message.iter_attachments()
        if part.get_content_type() == "application/pdf"
    }
    new_numbers = {f"INV-{n:08d}.pdf" for n in range(bills_before + 1, bills_after + 1)}
    assert new_numbers <= attached, (new_numbers, attached)
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(summary_shot, os.environ[SCREENSHOT_ENV])
        shutil.copyfile(
            docs_shot,
            os.path.join(os.path.dirname(os.environ[SCREENSHOT_ENV]), "data-docs-offline.png"),
        )
