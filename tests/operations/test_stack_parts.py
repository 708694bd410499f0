"""The local stack's parts, each on its own (fast): the auth-string file, the mail catcher,
the default blocks ``make server`` registers, and flows/stack.py.

The whole stack, with these parts in place, is exercised by the slow tests beside this file.
"""

from __future__ import annotations

import importlib.util
import mailbox
import os
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from billing.documents.seller import DEFAULT_SELLER
from flows import stack as local

ROOT = Path(__file__).resolve().parents[2]


def _server_module():
    """scripts/server.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("openbill_server", ROOT / "scripts/server.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the auth string ----------------------------------------------------------------------


def test_auth_string_is_made_once_in_a_file_only_its_owner_reads(tmp_path):
    server = _server_module()
    old = os.umask(0)  # even with nothing masked, the file never gets more than 0600
    try:
        first = server.auth_string(tmp_path / "home")
    finally:
        os.umask(old)
    path = tmp_path / "home" / local.AUTH_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    user, _, password = first.partition(":")
    assert user == "admin" and len(password) >= 32
    assert server.auth_string(tmp_path / "home") == first  # read back, not made again
    assert server.auth_string(tmp_path / "other") != first  # random, not a constant


def test_auth_string_file_is_created_exclusively_with_its_mode(tmp_path, monkeypatch):
    """The file is opened with O_CREAT|O_EXCL and mode 0600 in the same call (never chmod'ed
    after being written), so no other user can open it between creation and write."""
    server = _server_module()
    calls = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        calls.append((Path(path).name, flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(server.os, "open", spy)
    server.auth_string(tmp_path)
    [(name, flags, mode)] = calls
    assert name == local.AUTH_FILE
    assert flags & os.O_CREAT and flags & os.O_EXCL
    assert mode == 0o600


def test_a_loosened_auth_file_is_tightened_again(tmp_path):
    server = _server_module()
    value = server.auth_string(tmp_path)
    path = tmp_path / local.AUTH_FILE
    path.chmod(0o644)
    assert server.auth_string(tmp_path) == value
    assert path.stat().st_mode & 0o777 == 0o600


# -- the mail catcher ----------------------------------------------------------------------


def test_mail_catcher_keeps_every_message_in_its_maildir(tmp_path):
    port, maildir = _free_port(), tmp_path / "var" / "mail"
    argv = [sys.executable, str(ROOT / "scripts" / "mail_catcher.py"), "--port", str(port)]
    process = subprocess.Popen([*argv, "--maildir", str(maildir)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=5)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        with client:
            for number in (1, 2):
                message = EmailMessage()
                message["From"] = "billing@openbill.example"
                message["To"] = f"customer{number}@example.test"
                message["Subject"] = f"Invoice INV-{number}"
                message.set_content("Please find your invoice attached.")
                message.add_attachment(b"%PDF-1.7", maintype="application", subtype="pdf")
                client.send_message(message)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0  # SIGTERM is a clean stop
    kept = sorted(mailbox.Maildir(maildir, create=False), key=lambda m: m["Subject"])
    assert [(m["To"], m["Subject"], m["X-RcptTo"]) for m in kept] == [
        ("customer1@example.test", "Invoice INV-1", "customer1@example.test"),
        ("customer2@example.test", "Invoice INV-2", "customer2@example.test"),
    ]
    [attachment] = [p for p in kept[0].walk() if p.get_content_type() == "application/pdf"]
    assert attachment.get_payload(decode=True) == b"%PDF-1.7"


# -- the default blocks ---------------------------------------------------------------------


def test_server_registers_the_database_make_demo_writes(tmp_path, monkeypatch):
    """No BILLING_DATABASE_URL: both are var/billing.db of the directory they run in."""
    from blocks.register import default_blocks
    from flows.demo import default_database

    monkeypatch.delenv("BILLING_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    url = default_blocks()["billing-database"].url.get_secret_value()
    assert url == default_database() == f"sqlite:///{tmp_path / 'var' / 'billing.db'}"
    monkeypatch.setenv("BILLING_DATABASE_URL", "postgresql+psycopg2://u@db/billing")
    url = default_blocks()["billing-database"].url.get_secret_value()
    assert url == default_database() == "postgresql+psycopg2://u@db/billing"


def test_default_blocks_point_at_the_local_stack(tmp_path):
    from blocks.register import default_blocks

    blocks = default_blocks(
        data_dir=tmp_path / "var", files_url="http://127.0.0.1:4201", smtp_port=4202
    )
    assert sorted(blocks) == [
        "bill-run-settings",
        "billing-database",
        "document-store",
        "payment-gateway",
        "payment-settings",
        "seller-identity",
        "smtp-server",
    ]
    settings = blocks["bill-run-settings"]
    assert (settings.output_dir, settings.files_url) == (
        str(tmp_path / "var" / "output"),
        "http://127.0.0.1:4201",
    )
    smtp = blocks["smtp-server"]
    assert (smtp.host, smtp.port, smtp.security, smtp.username) == ("127.0.0.1", 4202, "none", "")
    assert blocks["document-store"].url == str(tmp_path / "var" / "documents")
    ledger = blocks["payment-gateway"].sandbox_ledger
    assert ledger == str(tmp_path / "var" / "sandbox-gateway.sqlite3")
    seller, gateway = blocks["seller-identity"], blocks["payment-gateway"]
    assert (seller.name, seller.vat_id, seller.country) == (
        DEFAULT_SELLER.name,
        DEFAULT_SELLER.vat_id,
        DEFAULT_SELLER.country,
    )
    # One company on the invoices and in the SEPA files: the seller, with a valid creditor
    # identifier; the gateway block names no creditor of its own.
    assert not any(name.startswith("creditor") for name in gateway.model_dump())
    assert _creditor_id_is_valid(seller.creditor_id)


def _creditor_id_is_valid(creditor_id: str) -> bool:
    """SEPA creditor identifier check digits (ISO 7064 MOD 97-10, business code skipped)."""
    country, digits, national = creditor_id[:2], creditor_id[2:4], creditor_id[7:]
    number = "".join(str(int(c, 36)) for c in national + country + "00")
    return 98 - int(number) % 97 == int(digits)


def test_creditor_id_check_catches_wrong_check_digits():
    assert _creditor_id_is_valid("FR72ZZZ123456")
    assert not _creditor_id_is_valid("FR12ZZZ123456")
    assert _creditor_id_is_valid("DE98ZZZ09999999999")  # the EPC's published example


def test_every_block_prefect_yaml_names_is_registered_or_optional():
    """Each ``*_block`` parameter of prefect.yaml is a block ``make server`` registers, except
    the optional provisioning webhook (bill day notifies nobody without it)."""
    import yaml

    from blocks.register import default_blocks

    slugs = {
        "database_block": "billing-database",
        "settings_block": "bill-run-settings",
        "smtp_block": "smtp-server",
        "store_block": "document-store",
        "seller_block": "seller-identity",
    }
    registered = set(default_blocks())
    named = set()
    for deployment in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]:
        for parameter, value in deployment.get("parameters", {}).items():
            if parameter.endswith("_block"):
                named.add((parameter, value))
    optional = {("webhook_block", "provisioning")}
    assert optional <= named
    for parameter, value in named - optional:
        assert value == "default", parameter
        assert slugs[parameter] in registered, parameter


# -- flows/stack.py -------------------------------------------------------------------------


def _record(home: Path) -> local.Stack:
    stack = local.Stack(
        home=home,
        api_url="http://127.0.0.1:4999/api",
        ui_url="http://127.0.0.1:4999",
        files_url="http://127.0.0.1:5000",
        auth_file=home / local.AUTH_FILE,
        mail_dir=home.parent / "mail",
        smtp_port=5001,
    )
    home.mkdir(parents=True, exist_ok=True)
    stack.auth_file.write_text("admin:pw-for-the-test\n")
    local.write_stack(stack)
    return stack


def test_local_stack_is_none_unless_its_server_runs(tmp_path):
    home = tmp_path / "prefect"
    stack = _record(home)
    assert local.local_stack(home) is None  # recorded, but no server pid
    (home / "run").mkdir()
    dead = subprocess.Popen(["true"], start_new_session=True)
    dead.wait()
    (home / "run" / "server.pid").write_text(str(dead.pid))
    assert local.local_stack(home) is None
    alive = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        (home / "run" / "server.pid").write_text(str(alive.pid))
        assert local.local_stack(home) == stack
        assert local.local_stack(home).auth_string == "admin:pw-for-the-test"
    finally:
        alive.kill()
        alive.wait()
    assert local.local_stack(home) is None


def test_local_stack_defaults_to_prefect_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "elsewhere"))
    assert local.default_home() == tmp_path / "elsewhere"
    monkeypatch.delenv("PREFECT_HOME")
    assert local.default_home() == ROOT / "var" / "prefect"


def test_connected_sets_prefect_settings_without_touching_the_environment(tmp_path):
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL

    stack = _record(tmp_path / "prefect")
    before = dict(os.environ)
    outside = PREFECT_API_URL.value()
    with local.connected(stack):
        assert PREFECT_API_URL.value() == "http://127.0.0.1:4999/api"
        assert PREFECT_API_AUTH_STRING.value() == "admin:pw-for-the-test"
        assert dict(os.environ) == before
    assert PREFECT_API_URL.value() == outside
    assert dict(os.environ) == before


@pytest.mark.parametrize("field", ["api_url", "auth_file", "smtp_port"])
def test_a_damaged_record_is_no_stack(tmp_path, field):
    home = tmp_path / "prefect"
    _record(home)
    text = (home / local.STACK_FILE).read_text().replace(f'"{field}"', '"gone"')
    (home / local.STACK_FILE).write_text(text)
    (home / "run").mkdir()
    alive = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        (home / "run" / "server.pid").write_text(str(alive.pid))
        assert local.local_stack(home) is None
    finally:
        alive.kill()
        alive.wait()
