"""``load_block`` is the one loader, and it is strict: only a missing block means "use the
defaults". A stored block that fails validation, or a server that does not answer, stops the
caller with ``BlockNotUsable`` naming the block. Against the real test server (conftest)."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentUpdate
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from blocks.bill_run_settings import BillRunSettings
from blocks.billing_database import BillingDatabase
from blocks.document_store import DocumentStoreLocation
from blocks.load import BlockNotUsable, load_block
from blocks.payment_gateway import PaymentGateway
from blocks.payment_settings import PaymentSettings
from blocks.provisioning_webhook import ProvisioningWebhook
from blocks.register import _save, default_blocks
from blocks.seller_identity import SellerIdentity
from blocks.smtp_server import SmtpServer
from flows import runtime


def _valid(kind: type[Block]) -> Block:
    """A block of ``kind`` that validates: the local stack's default, or a webhook."""
    if kind is ProvisioningWebhook:
        return ProvisioningWebhook(url="http://127.0.0.1:9/hook")
    (block,) = [b for b in default_blocks().values() if type(b) is kind]
    return block


# Each block type with stored data an operator could get wrong, and what it breaks.
BROKEN: list[tuple[type[Block], dict[str, Any]]] = [
    (BillRunSettings, {"children": 0}),  # ge=1
    (BillingDatabase, {}),  # the url is required
    (DocumentStoreLocation, {"url": ["var", "documents"]}),  # not a string
    (PaymentGateway, {"gateway": "stripe"}),  # only "sandbox" exists
    (PaymentSettings, {"debit_lead_days": "soon"}),  # not a number
    (ProvisioningWebhook, {"url": "http://127.0.0.1:9/hook", "timeout_seconds": 0}),  # gt=0
    (SellerIdentity, {"name": "Openbill", "country": "France"}),  # ISO code; fields missing
    (SmtpServer, {"host": "mail.example", "port": 0, "security": "tls"}),  # port, security
]
TYPES = [kind for kind, _ in BROKEN]


def _name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def _store_broken(kind: type[Block], data: dict[str, Any]) -> str:
    """Save a valid block of ``kind``, then replace its stored data with ``data`` (as an older
    version of the code, or an edit through the API, could leave it); its name."""
    name = _name()
    block_id = _valid(kind).save(name)
    with get_client(sync_client=True) as client:
        client.update_block_document(
            block_id, BlockDocumentUpdate(data=data, merge_existing_data=False)
        )
    return name


@pytest.mark.parametrize("kind", TYPES, ids=lambda k: k.__name__)
def test_a_missing_block_means_the_default(kind):
    default = _valid(kind)
    assert load_block(kind, _name(), lambda: default) is default
    assert load_block(kind, _name()) is None
    assert load_block(kind, "", lambda: default) is default  # no name given


@pytest.mark.parametrize("kind", TYPES, ids=lambda k: k.__name__)
def test_a_stored_block_is_loaded(kind):
    name = _name()
    _valid(kind).save(name)
    loaded = load_block(kind, name, lambda: pytest.fail("the default was used"))
    assert isinstance(loaded, kind)


@pytest.mark.parametrize(("kind", "data"), BROKEN, ids=lambda v: getattr(v, "__name__", ""))
def test_a_stored_block_that_fails_validation_stops_the_caller(kind, data):
    name = _store_broken(kind, data)
    with pytest.raises(BlockNotUsable) as raised:
        load_block(kind, name, lambda: pytest.fail("the default was used"))
    message = str(raised.value)
    assert f"the {kind.get_block_type_name()} block {name!r} cannot be used" in message
    assert "fails validation" in message


def test_the_flows_loaders_are_strict():
    """The loaders every flow calls go through ``load_block``: a broken block raises."""
    smtp = _store_broken(SmtpServer, {"host": "mail.example", "port": 0})
    store = _store_broken(DocumentStoreLocation, {"url": ["var"]})
    seller = _store_broken(SellerIdentity, {"name": "Openbill"})
    database = _store_broken(BillingDatabase, {})
    settings = _store_broken(BillRunSettings, {"children": 0})
    webhook = _store_broken(ProvisioningWebhook, {"url": "x", "timeout_seconds": -1})
    for load, name in [
        (runtime.load_smtp, smtp),
        (runtime.load_store_url, store),
        (runtime.load_seller, seller),
        (runtime.resolve_database_url, database),
        (runtime.engine_for, database),
        (runtime.load_settings, settings),
        (runtime.load_webhook, webhook),
    ]:
        with pytest.raises(BlockNotUsable, match=repr(name)):
            load(name)
    # and without a block, the local defaults
    assert runtime.load_smtp(_name()) == runtime.DEFAULT_SMTP
    assert runtime.load_store_url(_name()) == runtime.DEFAULT_STORE


def test_registering_keeps_a_good_block_and_refuses_to_hide_a_broken_one():
    kept = _name()
    _valid(SmtpServer).save(kept)
    assert _save(SmtpServer(host="elsewhere"), kept, overwrite=False) == "kept"
    assert SmtpServer.load(kept).host != "elsewhere"

    broken = _store_broken(SmtpServer, {"port": 0})
    with pytest.raises(BlockNotUsable, match=repr(broken)):
        _save(SmtpServer(), broken, overwrite=False)
    assert _save(SmtpServer(), broken, overwrite=True) == "saved"
    replaced = load_block(SmtpServer, broken)
    assert replaced is not None and replaced.port == SmtpServer().port


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("kind", [SmtpServer, BillingDatabase], ids=lambda k: k.__name__)
def test_an_unreachable_server_is_an_error_not_the_default(kind):
    unreachable = f"http://127.0.0.1:{_closed_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: unreachable, PREFECT_CLIENT_MAX_RETRIES: 0}):
        with pytest.raises(BlockNotUsable) as raised:
            load_block(kind, "default", lambda: pytest.fail("the default was used"))
    assert f"{kind.get_block_type_name()} block 'default'" in str(raised.value)
    assert "did not answer" in str(raised.value)
