"""What ``make server`` adds around Prefect, on the shared stack: API authentication, the
files server, the mail catcher with the Invoice Email Sender, and a second start that
changes nothing.
"""

from __future__ import annotations

import mailbox
from email import policy
from email.parser import BytesParser

import httpx
import pytest

from flows.stack import STACK_FILE, local_stack
from tests.operations.conftest import AS_OF, EMAIL_SENDER, server_script

pytestmark = pytest.mark.slow
SECRETS = {"include_secrets": True, "offset": 0, "limit": 200}


# -- API authentication ---------------------------------------------------------------------


def test_api_refuses_every_request_without_the_auth_string(deployed):
    database = deployed.database_url
    url = f"{deployed.api}/block_documents/filter"
    for auth in (None, ("admin", "wrong"), ("someone", deployed.auth[1])):
        refused = httpx.post(url, json=SECRETS, auth=auth, timeout=30)
        assert refused.status_code == 401, auth
        assert database not in refused.text
    for path in ("/flows/filter", "/deployments/filter", "/flow_runs/filter"):
        assert httpx.post(f"{deployed.api}{path}", json={}, timeout=30).status_code == 401
    assert httpx.get(f"{deployed.api}/admin/settings", timeout=30).status_code == 401
    # With the string, the same request shows the secret the 401 kept back.
    allowed = httpx.post(url, json=SECRETS, auth=deployed.auth, timeout=30)
    assert allowed.status_code == 200
    assert database in allowed.text


def test_prefect_clients_need_the_auth_string_too(deployed):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    bare = temporary_settings(
        updates={PREFECT_API_URL: deployed.api}, restore_defaults={PREFECT_API_AUTH_STRING}
    )
    with bare, get_client(sync_client=True) as client:
        with pytest.raises(PrefectHTTPStatusError, match="401"):
            client.read_work_pools()
    with deployed.connected(), get_client(sync_client=True) as client:
        assert "billing-pool" in [pool.name for pool in client.read_work_pools()]


def test_auth_string_file_is_for_its_owner_only_and_not_in_the_record(deployed):
    stack = local_stack(deployed.home)
    assert stack is not None
    assert stack.auth_file.stat().st_mode & 0o777 == 0o600
    assert deployed.auth_string not in (deployed.home / STACK_FILE).read_text()
    assert (stack.api_url, stack.ui_url, stack.files_url) == (
        deployed.api,
        deployed.ui,
        deployed.files,
    )
    assert (stack.mail_dir, stack.smtp_port) == (deployed.mail_dir, deployed.smtp_port)


# -- the files server -----------------------------------------------------------------------


def test_files_url_serves_the_runs_data_docs_and_invoices(deployed, bill_day_run):
    from blocks.bill_run_settings import BillRunSettings

    with deployed.connected():
        files_url = BillRunSettings.load("default").files_url
    assert files_url == deployed.files
    docs = f"{files_url}/output/{AS_OF}/{bill_day_run.id}/data_docs/index.html"
    pdf = f"{files_url}/documents/2027/02/INV-00000002.pdf"
    xml = f"{files_url}/documents/2027/01/INV-00000001.xml"
    for url in (docs, pdf, xml):
        refused = httpx.get(url, timeout=30)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    page = httpx.get(docs, auth=deployed.auth, timeout=30)
    assert (page.status_code, page.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert "<html" in page.text.lower()
    invoice = httpx.get(pdf, auth=deployed.auth, timeout=30)
    assert (invoice.status_code, invoice.headers["Content-Type"]) == (200, "application/pdf")
    assert invoice.content.startswith(b"%PDF-")
    data = httpx.get(xml, auth=deployed.auth, timeout=30)
    assert (data.status_code, data.headers["Content-Type"]) == (200, "application/xml")
    assert b"INV-00000001" in data.content


# -- the mail catcher -----------------------------------------------------------------------


def test_email_sender_deployment_delivers_the_queued_invoices_to_the_maildir(
    deployed, bill_day_run
):
    from prefect.deployments import run_deployment

    before = len(mailbox.Maildir(deployed.mail_dir, create=False))
    with deployed.connected():
        run = run_deployment(
            EMAIL_SENDER,
            parameters={"process_now": "2027-02-02T00:00:00"},
            timeout=150,
            poll_interval=1,
        )
    log = (deployed.home / "logs" / "worker.log").read_text(errors="replace")[-4000:]
    assert run.state.type.value == "COMPLETED", f"{run.state}\n{log}"
    parse = BytesParser(policy=policy.default).parsebytes
    messages = [parse(m.as_bytes()) for m in mailbox.Maildir(deployed.mail_dir, create=False)]
    assert before == 0 and len(messages) == 2
    by_recipient = {m["To"].addresses[0].addr_spec: m for m in messages}
    assert sorted(by_recipient) == ["a@example.test", "b@example.test"]
    for recipient, bill_no in (
        ("a@example.test", "INV-00000002"),
        ("b@example.test", "INV-00000001"),
    ):
        message = by_recipient[recipient]
        assert message["X-RcptTo"] == recipient  # the envelope, as the catcher saw it
        assert "billing@openbill.example" in str(message["From"])
        [pdf] = [p for p in message.iter_attachments() if p.get_content_type() == "application/pdf"]
        assert pdf.get_filename() == f"{bill_no}.pdf"
        assert pdf.get_content().startswith(b"%PDF-")


# -- make server, twice ---------------------------------------------------------------------


def test_starting_the_stack_again_keeps_everything_running_as_it_is(deployed):
    pids = {p.stem: p.read_text() for p in (deployed.home / "run").glob("*.pid")}
    assert sorted(pids) == ["files", "mail", "server", "worker"]
    output = server_script(deployed, "start", "--database", deployed.database_url)
    for name in ("server", "mail catcher", "files server", "worker"):
        assert f"{name} already running" in output
    assert ": saved" not in output  # every block kept
    assert {p.stem: p.read_text() for p in (deployed.home / "run").glob("*.pid")} == pids
    assert httpx.get(f"{deployed.api}/health", timeout=30).status_code == 200


# -- the billing CLI on the running stack ---------------------------------------------------


def test_billing_run_reports_to_the_running_stack_with_its_auth_string(deployed):
    """``billing run`` with no PREFECT_API_URL finds the stack under PREFECT_HOME: the run is
    on the stack's server (it needs the auth string from the 0600 file to get there) and uses
    the stack's database block."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.operations.conftest import ROOT

    env = {k: v for k, v in deployed.env.items() if k not in ("PREFECT_API_URL",)}
    env.update(PREFECT_HOME=str(deployed.home))
    env.pop("PREFECT_API_AUTH_STRING", None)
    env.pop("BILLING_DATABASE_URL", None)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("billing")), "run", "contract-change-process"]
        + ["--process-now", "2027-02-03T04:05"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"on the local stack: {deployed.ui}" in done.stderr
    body = {"flow_runs": {"name": {"any_": ["contract-change-process 2027-02-03 04:05"]}}}
    runs = httpx.post(f"{deployed.api}/flow_runs/filter", json=body, auth=deployed.auth).json()
    assert [run["state_type"] for run in runs] == ["COMPLETED"]
