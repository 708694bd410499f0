"""Collection and refunds page by page and in capped SEPA files, on SQLite and PostgreSQL.

The same billed population is collected and refunded in twin databases, once in one big page
and once in pages of three accounts (card chunks of two): payments, refunds, balances, the
processor's requests and the SEPA files must come out identical. With a cap on transactions
per file, the same transactions are split over several files, each valid on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy import Engine, func, select, update

from billing import failpoints
from billing.domain.errors import ConfigurationError
from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.payments.collect import collect_payments
from billing.payments.config import PaymentConfig, RetryPolicy
from billing.payments.files import FileBatches
from billing.payments.refund import refund_payments
from billing.payments.sandbox import SandboxGateway
from billing.payments.sepa import validate
from billing.payments.statement import record_bank_payment
from billing.store.db import make_engine, unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillingIssue,
    Payment,
    PaymentMethod,
    Refund,
)
from billing.store.models_payments import (
    AccountDunning,
    PaymentFile,
    PaymentFileEntry,
    PaymentFileKind,
)
from tests.billing.test_payments import CREDITOR
from tests.conftest import copy_sqlite_template, migrated_schema, pg_schema_url

D = Decimal
AS_OF = date(2027, 2, 15)
NEXT_MONTH = date(2027, 3, 15)
ACCOUNTS = 120
BIG = {"page_size": 10_000, "card_chunk": 500, "file_transactions": 10_000}
TINY = {"page_size": 3, "card_chunk": 2, "file_transactions": 10_000}
CAP = 7


# --- twin databases -----------------------------------------------------------------------


@contextmanager
def twin(engine: Engine, path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Another empty, migrated database on ``engine``'s backend (a copy of the process's
    template, as ``engine`` is)."""
    with ExitStack() as stack:
        if engine.dialect.name == "sqlite":
            url = f"sqlite:///{path / 'twin.db'}"
            copy_sqlite_template(request.getfixturevalue("sqlite_template"), url)
        else:
            template = request.getfixturevalue("pg_template")
            url = pg_schema_url(stack.enter_context(migrated_schema(template)))
        other = make_engine(url)
        stack.callback(other.dispose)
        yield other


def populate(engine: Engine) -> None:
    """A billed population with declined, transient and overpaid accounts of every method."""
    seed(engine, accounts=ACCOUNTS, usage_per_account=3, start=date(2027, 1, 1))
    run_bill_day(engine, AS_OF, "run-1")
    with unit_of_work(engine) as s:
        overpaid = s.execute(
            select(Account.ref, Account.balance, Account.currency)
            .where(Account.balance > 0)
            .order_by(Account.id)
        ).all()
        for ref, balance, currency in overpaid[::3]:
            record_bank_payment(
                s, reference=f"OVER-{ref}", account_ref=ref, amount=balance + D("20.00"),
                currency=currency, received_on=AS_OF,
            )  # fmt: skip
        cards = s.scalars(
            select(Account.id)
            .where(Account.payment_method == PaymentMethod.CARD, Account.balance > 0)
            .order_by(Account.id)
        ).all()
        for account_id, token in zip(
            cards[1:12:3], ("tok_declined", "tok_transient") * 2, strict=True
        ):
            s.execute(update(Account).where(Account.id == account_id).values(card_token=token))


def run_days(engine: Engine, workdir: Path, **sizes: int) -> PaymentConfig:
    """Collect and refund on the bill day, resume, retry three days later, then a month on.

    One retry only: a card declined twice puts its account in dunning on the third day.
    """
    config = PaymentConfig(
        output_dir=workdir / "out", creditor=CREDITOR, retry=RetryPolicy((3,)), **sizes
    )
    gateway = SandboxGateway(workdir / "gateway.sqlite3", transient_failures=1)
    for day in (AS_OF, AS_OF, AS_OF + timedelta(days=3)):
        collect_payments(engine, day, gateway, config, run_id=f"collect-{day}")
        refund_payments(engine, day, gateway, config, run_id=f"refund-{day}")
    run_bill_day(engine, NEXT_MONTH, "run-2")
    collect_payments(engine, NEXT_MONTH, gateway, config, run_id="collect-2")
    refund_payments(engine, NEXT_MONTH, gateway, config, run_id="refund-2")
    return config


def ledger_state(engine: Engine, workdir: Path) -> dict[str, Any]:
    """Payments, refunds, balances, bills paid, dunning, issues and processor requests."""
    with unit_of_work(engine) as s:
        return {
            "payments": s.execute(
                select(
                    Payment.idempotency_key,
                    Payment.status,
                    Payment.amount,
                    Payment.reference,
                    Payment.reason,
                    Payment.received_on,
                ).order_by(Payment.idempotency_key)
            ).all(),
            "refunds": s.execute(
                select(
                    Refund.idempotency_key, Refund.status, Refund.amount, Refund.reference
                ).order_by(Refund.idempotency_key)
            ).all(),
            "balances": s.execute(select(Account.ref, Account.balance).order_by(Account.ref)).all(),
            "bills": s.execute(
                select(Bill.bill_key, Bill.amount_paid).order_by(Bill.bill_key)
            ).all(),
            "dunning": s.execute(
                select(
                    AccountDunning.account_id, AccountDunning.state, AccountDunning.since
                ).order_by(AccountDunning.account_id)
            ).all(),
            "issues": s.execute(
                select(BillingIssue.account_id, BillingIssue.step, BillingIssue.reason)
                .where(BillingIssue.step.in_(("collect", "refund")))
                .order_by(BillingIssue.account_id, BillingIssue.step, BillingIssue.reason)
            ).all(),
            "requests": [
                (r.idempotency_key, r.kind, r.amount, r.status, r.calls)
                for r in SandboxGateway(workdir / "gateway.sqlite3").requests()
            ],
        }


def sepa_files(config: PaymentConfig) -> dict[str, bytes]:
    return {
        str(p.relative_to(config.output_dir)): p.read_bytes()
        for p in sorted(config.output_dir.rglob("*.xml"))
    }


TX = {"DD": "{*}DrctDbtTxInf", "CT": "{*}CdtTrfTxInf"}


def transactions(files: dict[str, bytes]) -> list[tuple[str, str, bytes]]:
    """Every transaction of the files, with its file's folder, kind and batch, sorted."""
    found = []
    for name, content in files.items():
        folder, kind = str(Path(name).parent), Path(name).name[:2]
        for info in etree.fromstring(content).iterfind(".//{*}PmtInf"):
            batch = [info.findtext(t) or "" for t in ("{*}PmtTpInf/{*}SeqTp", "{*}ReqdColltnDt")]
            for tx in info.iterfind(TX[kind]):
                tx_xml = etree.tostring(tx, with_tail=False)
                found.append((f"{folder}/{kind}", "/".join(batch), tx_xml))
    return sorted(found)


# --- paging -------------------------------------------------------------------------------


def test_tiny_pages_and_capped_files_collect_and_refund_as_one_big_page(engine, tmp_path, request):
    populate(engine)
    (tmp_path / "big").mkdir()
    (tmp_path / "tiny").mkdir()
    (tmp_path / "capped").mkdir()
    with (
        twin(engine, tmp_path / "tiny", request) as tiny,
        twin(engine, tmp_path / "capped", request) as capped,
    ):
        populate(tiny)
        populate(capped)
        big_config = run_days(engine, tmp_path / "big", **BIG)
        tiny_config = run_days(tiny, tmp_path / "tiny", **TINY)
        capped_config = run_days(capped, tmp_path / "capped", **{**TINY, "file_transactions": CAP})
        expected = ledger_state(engine, tmp_path / "big")
        assert ledger_state(tiny, tmp_path / "tiny") == expected
        assert ledger_state(capped, tmp_path / "capped") == expected
    # The population takes every path: settled, declined and pending payments, both refunds.
    statuses = {(key.split(":")[0], status.value) for key, status, *_ in expected["payments"]}
    assert {("card", "settled"), ("card", "failed"), ("dd", "pending")} <= statuses
    assert {key.split(":")[0] for key, *_ in expected["refunds"]} == {"rf"}
    assert {r[1] for r in expected["requests"]} == {"charge", "refund"}
    assert any(calls == 2 for *_, calls in expected["requests"])  # a transient one, resumed
    assert expected["dunning"]

    big = sepa_files(big_config)
    assert sepa_files(tiny_config) == big  # page size changes no byte of any file
    kinds_and_days = {(Path(n).parent, Path(n).name[:2]) for n in big}
    assert len(kinds_and_days) == len(big) >= 3  # one file per kind and day
    capped_files = sepa_files(capped_config)
    assert len(capped_files) > 2 * len(big)
    assert transactions(capped_files) == transactions(big)


def test_a_run_over_the_cap_writes_several_valid_files_that_add_up(engine, tmp_path):
    populate(engine)
    config = PaymentConfig(output_dir=tmp_path / "out", creditor=CREDITOR, file_transactions=CAP)
    gateway = SandboxGateway(tmp_path / "gateway.sqlite3", transient_failures=0)
    collected = collect_payments(engine, AS_OF, gateway, config, run_id="run-1")
    refunded = refund_payments(engine, AS_OF, gateway, config, run_id="run-1")
    debit_files = [Path(p) for p in collected.files]
    transfer_files = [Path(p) for p in refunded.files]
    assert collected.debits > 3 * CAP and refunded.transfers > CAP
    for paths, kind, prefix, count in (
        (debit_files, PaymentFileKind.DIRECT_DEBIT, "DD", collected.debits),
        (transfer_files, PaymentFileKind.CREDIT_TRANSFER, "CT", refunded.transfers),
    ):
        assert [p.name.split(".")[0] for p in paths] == [
            f"{prefix}-20270215-{n:03d}" for n in range(1, len(paths) + 1)
        ]
        assert sum(_check_file(engine, path, kind) for path in paths) == count
        assert len(paths) >= -(-count // CAP)
    with unit_of_work(engine) as s:
        debits = s.execute(
            select(func.count(), func.sum(Payment.amount)).where(
                Payment.method == PaymentMethod.DIRECT_DEBIT
            )
        ).one()
        entries = s.scalar(select(func.count()).select_from(PaymentFileEntry))
    assert debits == (collected.debits, collected.debit_amounts["EUR"])
    assert entries == collected.debits + refunded.transfers
    before = ledger_state(engine, tmp_path), sepa_files(config), _file_rows(engine)
    # A rerun adds no payment, no refund, no file.
    assert collect_payments(engine, AS_OF, gateway, config, run_id="run-2").files == []
    assert refund_payments(engine, AS_OF, gateway, config, run_id="run-2").files == []
    assert (ledger_state(engine, tmp_path), sepa_files(config), _file_rows(engine)) == before


def _check_file(engine: Engine, path: Path, kind: PaymentFileKind) -> int:
    """Validate one file against its XSD; its counts and sums add up and match its row."""
    content = path.read_bytes()
    validate(content, kind)
    root = etree.fromstring(content)
    amounts = [D(a) for a in root.xpath("//*[local-name()='InstdAmt']/text()")]
    assert 0 < len(amounts) <= CAP
    header = root.find(".//{*}GrpHdr")
    assert int(header.findtext("{*}NbOfTxs")) == len(amounts)
    assert D(header.findtext("{*}CtrlSum")) == sum(amounts)
    batches = root.findall(".//{*}PmtInf")
    assert sum(int(b.findtext("{*}NbOfTxs")) for b in batches) == len(amounts)
    assert sum(D(b.findtext("{*}CtrlSum")) for b in batches) == sum(amounts)
    with unit_of_work(engine) as s:
        row = s.scalars(select(PaymentFile).where(PaymentFile.path == str(path))).one()
        entries = s.scalar(select(func.count()).where(PaymentFileEntry.file_id == row.id))
    assert (row.msg_id, row.kind, row.transactions, row.control_sum, entries) == (
        header.findtext("{*}MsgId"), kind, len(amounts), sum(amounts), len(amounts)
    )  # fmt: skip
    return len(amounts)


def _file_rows(engine: Engine) -> list[Any]:
    with unit_of_work(engine) as s:
        return s.execute(
            select(PaymentFile.msg_id, PaymentFile.transactions, PaymentFile.control_sum).order_by(
                PaymentFile.msg_id
            )
        ).all()


class Killed(Exception):
    """The process 'dies' at a failpoint (in-process: the exception unwinds the transaction)."""


@pytest.mark.parametrize(
    ("point", "step"),
    [
        ("collect.debit_file_written", collect_payments),
        ("refund.transfer_file_written", refund_payments),
    ],
)
def test_a_crash_after_the_second_file_is_written_reruns_to_the_same_files(
    engine, tmp_path, point, step, request
):
    populate(engine)
    (tmp_path / "clean").mkdir()
    (tmp_path / "crashed").mkdir()
    with twin(engine, tmp_path / "clean", request) as clean:
        populate(clean)
        configs = {
            name: PaymentConfig(
                output_dir=tmp_path / name / "out", creditor=CREDITOR, file_transactions=CAP,
                page_size=5,
            )
            for name in ("clean", "crashed")
        }  # fmt: skip
        gateways = {name: SandboxGateway(tmp_path / name / "gw.sqlite3") for name in configs}
        collect_payments(clean, AS_OF, gateways["clean"], configs["clean"], run_id="r")
        refund_payments(clean, AS_OF, gateways["clean"], configs["clean"], run_id="r")

        def die_at_the_second_file() -> None:
            if failpoints.hits(point) == 2:
                raise Killed(point)

        crashed, config = engine, configs["crashed"]
        with failpoints.on(point, die_at_the_second_file), pytest.raises(Killed):
            if step is refund_payments:
                collect_payments(crashed, AS_OF, gateways["crashed"], config, run_id="r")
            step(crashed, AS_OF, gateways["crashed"], config, run_id="r")
        assert len(sepa_files(config)) == len(_file_rows(crashed)) + 1  # written, not recorded
        if step is collect_payments:
            collect_payments(crashed, AS_OF, gateways["crashed"], config, run_id="r")
        refund_payments(crashed, AS_OF, gateways["crashed"], config, run_id="r")
        assert len(sepa_files(config)) > 4
        assert sepa_files(config) == sepa_files(configs["clean"])
        assert _file_rows(crashed) == _file_rows(clean)
        assert ledger_state(crashed, tmp_path / "crashed") == ledger_state(
            clean, tmp_path / "clean"
        )


# --- batching into files --------------------------------------------------------------------


def _batches(cap: int, accounts: list[list[str]]) -> list[list[str]]:
    written: list[list[str]] = []
    files: FileBatches[str] = FileBatches(cap, written.append)
    for items in accounts:
        files.add(items)
    files.flush()
    return written


@pytest.mark.parametrize(
    ("cap", "accounts", "files"),
    [
        (3, [], []),
        (3, [["a"], ["b"], ["c"], ["d"]], [["a", "b", "c"], ["d"]]),
        (3, [["a1", "a2"], ["b1", "b2"], ["c"]], [["a1", "a2"], ["b1", "b2", "c"]]),
        (2, [["a1", "a2", "a3"], ["b"]], [["a1", "a2", "a3"], ["b"]]),  # one account over the cap
        (1, [["a"], ["b"]], [["a"], ["b"]]),
    ],
)
def test_file_batches_fill_files_with_whole_accounts(cap, accounts, files):
    assert _batches(cap, accounts) == files


@given(
    st.integers(1, 6),
    st.lists(st.integers(1, 4), max_size=30),
)
def test_file_batches_keep_order_and_accounts_and_fill_each_file(cap, sizes):
    accounts = [[f"{n}.{i}" for i in range(size)] for n, size in enumerate(sizes)]
    written = _batches(cap, accounts)
    assert [item for batch in written for item in batch] == [i for a in accounts for i in a]
    owners = [[item.split(".")[0] for item in batch] for batch in written]
    assert all(set(a).isdisjoint(b) for a, b in zip(owners, owners[1:], strict=False))
    assert all(
        len(batch) <= cap or len(set(o)) == 1 for batch, o in zip(written, owners, strict=True)
    )
    for batch, following in zip(owners, owners[1:], strict=False):
        assert len(batch) + following.count(following[0]) > cap  # the next account did not fit


@pytest.mark.parametrize("name", ["card_chunk", "page_size", "file_transactions"])
def test_sizes_below_one_are_refused(tmp_path, name):
    config = PaymentConfig(output_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=name):
        replace(config, **{name: 0})
