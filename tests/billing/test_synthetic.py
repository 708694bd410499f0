"""The synthetic population: exact counts, determinism, valid IBANs and bill dates, appends."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from schwifty import IBAN
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from billing.cli import app
from billing.cli.seed_cmd import first_of_previous_month
from billing.domain import pricing
from billing.domain.buyers import (
    Buyer,
    CustomerType,
    buyer_problems,
    default_customer_type,
    is_intra_community_b2b,
    vat_id_problem,
)
from billing.domain.errors import ConfigurationError
from billing.domain.periods import first_bill_date
from billing.ingest.importer import import_file
from billing.ingest.synthetic import (
    BANKS,
    COUNTRIES,
    THRESHOLDS,
    _vat_id,
    iban_from_bban,
    national_bban,
    seed,
)
from billing.jobs.uti_schedule_generator import run_uti_schedule_generator
from billing.store.db import make_engine, unit_of_work
from billing.store.models import (
    Account,
    Base,
    BillUnit,
    Contract,
    ContractItem,
    PricePlan,
    PriceTier,
    TaxRate,
    UsageRecord,
)
from tests.conftest import copy_sqlite_template, migrated_schema, pg_schema_url

START = date(2026, 3, 1)
LANGUAGE = {"FR": "fr", "PT": "pt", "BE": "fr", "CH": "fr", "ES": "en", "DE": "en", "GB": "en"}
CURRENCY = {"FR": "EUR", "PT": "EUR", "BE": "EUR", "ES": "EUR", "DE": "EUR", "GB": "GBP",
            "CH": "CHF"}  # fmt: skip


@pytest.fixture
def other_engine(request: pytest.FixtureRequest, db_url: str, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """A second migrated database on the same backend as ``engine`` (a copy of the
    process's template, as ``engine`` is)."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'other.db'}"
        copy_sqlite_template(request.getfixturevalue("sqlite_template"), url)
        eng = make_engine(url)
        yield eng
        eng.dispose()
        return
    with migrated_schema(request.getfixturevalue("pg_template")) as schema:
        eng = make_engine(pg_schema_url(schema))
        yield eng
        eng.dispose()


def dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, in primary-key order, every column."""
    with engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def count(engine: Engine, model: type[Base]) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def is_valid_iban(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 = 1."""
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def test_small_seed_gives_exact_counts(engine):
    report = seed(engine, accounts=30, usage_per_account=5, start=START)

    with engine.connect() as conn:
        items = conn.execute(
            select(ContractItem.contract_id, ContractItem.item_type).order_by(ContractItem.id)
        ).all()
        usage_per_account = conn.execute(
            select(Contract.account_id, func.count())
            .join(ContractItem, ContractItem.contract_id == Contract.id)
            .join(UsageRecord, UsageRecord.contract_item_id == ContractItem.id)
            .group_by(Contract.account_id)
        ).all()
    kinds: dict[int, list[str]] = {}
    for contract_id, item_type in items:
        kinds.setdefault(contract_id, []).append(item_type.value)
    assert (report.accounts, report.bill_units, report.contracts) == (30, 30, 30)
    assert report.usage_records == 150
    assert report.contract_items == len(items)
    assert [count(engine, m) for m in (Account, BillUnit, Contract, ContractItem, UsageRecord)] == [
        30, 30, 30, len(items), 150,
    ]  # fmt: skip
    assert len(kinds) == 30
    for types in kinds.values():
        assert types[:2] == ["recurring", "usage"]
        assert types[2:] in ([], ["uti"], ["one_time"], ["uti", "one_time"])
    assert sorted(n for _, n in usage_per_account) == [5] * 30
    assert [count(engine, m) for m in (TaxRate, PricePlan, PriceTier)] == [23, 54, 27]


def test_same_arguments_give_identical_rows(engine, other_engine):
    seed(engine, accounts=40, usage_per_account=6, start=START, seed=7)
    seed(other_engine, accounts=40, usage_per_account=6, start=START, seed=7)

    first, second = dump(engine), dump(other_engine)
    assert len(first["usage_records"]) == 240
    for table in first:
        assert first[table] == second[table], table


def test_another_seed_gives_other_people(engine, other_engine):
    seed(engine, accounts=40, usage_per_account=1, start=START, seed=1)
    seed(other_engine, accounts=40, usage_per_account=1, start=START, seed=2)

    first, second = dump(engine), dump(other_engine)
    assert first["price_plans"] == second["price_plans"]
    assert first["accounts"] != second["accounts"]
    assert first["usage_records"] != second["usage_records"]


def test_chunk_size_changes_neither_data_nor_total_progress(engine, other_engine):
    small: list[int] = []
    large: list[int] = []
    seed(engine, accounts=2500, usage_per_account=1, start=START, progress=small.append,
         chunk_size=1000)  # fmt: skip
    seed(other_engine, accounts=2500, usage_per_account=1, start=START, progress=large.append)

    assert small == [1000, 1000, 500]
    assert large == [2500]
    assert dump(engine) == dump(other_engine)


def test_chunk_size_must_be_whole_blocks(engine):
    with pytest.raises(ConfigurationError, match="multiple of 1000"):
        seed(engine, accounts=10, usage_per_account=1, start=START, chunk_size=500)


def test_seed_is_all_or_nothing(engine):
    def fail_after_first_chunk(accounts: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        seed(engine, accounts=2500, usage_per_account=2, start=START,
             progress=fail_after_first_chunk, chunk_size=1000)  # fmt: skip

    assert [count(engine, m) for m in (Account, ContractItem, UsageRecord, PricePlan)] == [
        0, 0, 0, 0,
    ]  # fmt: skip


def test_every_iban_is_valid_and_payment_data_fits_the_method(engine):
    seed(engine, accounts=400, usage_per_account=0, start=START)

    with engine.connect() as conn:
        accounts = conn.execute(select(Account)).all()
    by_method = Counter(a.payment_method.value for a in accounts)
    debits = [a for a in accounts if a.payment_method.value == "direct_debit"]
    assert set(by_method) == {"direct_debit", "card", "invoice"}
    assert len({a.country for a in debits}) >= 3
    for a in debits:
        assert is_valid_iban(a.iban), a.iban
        IBAN(a.iban, validate_bban=True)
        assert a.iban[:2] == a.country
        assert a.bic in {bic for bic_pairs in BANKS.values() for _, bic in bic_pairs}
        assert a.mandate_ref == f"MD-{a.ref}"
        assert a.mandate_date is not None and a.mandate_date <= START
    for a in accounts:
        if a.payment_method.value != "direct_debit":
            assert (a.iban, a.bic, a.mandate_ref) == (None, None, None)
        assert (a.card_token is not None) == (a.payment_method.value == "card")


@given(
    country=st.sampled_from(sorted(BANKS)),
    bank=st.integers(0, 10),
    branch=st.integers(0, 2**62),
    account=st.integers(0, 2**62),
)
def test_generated_ibans_pass_mod_97_and_national_checks(country, bank, branch, account):
    code = BANKS[country][bank % len(BANKS[country])][0]
    iban = iban_from_bban(country, national_bban(country, code, branch, account))

    assert is_valid_iban(iban)
    assert str(IBAN(iban, validate_bban=True)) == iban


@pytest.mark.parametrize("start", [date(2026, 3, 1), date(2026, 1, 31)])
def test_next_bill_date_is_the_first_bill_date_after_start(engine, start):
    seed(engine, accounts=400, usage_per_account=0, start=start)

    with engine.connect() as conn:
        units = conn.execute(
            select(BillUnit.billing_day, BillUnit.cycle, BillUnit.next_bill_date,
                   BillUnit.series_code, BillUnit.billing_state)
        ).all()  # fmt: skip
    assert len(units) == 400
    for day, cycle, next_bill, series, state in units:
        assert next_bill == first_bill_date(start, day, cycle.value)
        assert (series, state.value) == ("INV", "ready")
    assert {29, 30, 31, 1} <= {u.billing_day for u in units}
    assert {u.cycle.value for u in units} == {"monthly", "quarterly", "yearly"}


def test_seeding_twice_appends_without_collisions(engine):
    seed(engine, accounts=30, usage_per_account=5, start=START)
    second = seed(engine, accounts=20, usage_per_account=3, start=START)

    assert second.first_account_id == 31
    assert [count(engine, m) for m in (Account, BillUnit, Contract, UsageRecord, PricePlan)] == [
        50, 50, 50, 30 * 5 + 20 * 3, 54,
    ]  # fmt: skip
    with unit_of_work(engine) as session:
        account = Account(ref="HAND-1", name="Après Seed", country="FR", currency="EUR",
                          created_on=START)  # fmt: skip
        session.add(account)
        session.flush()
        session.add(BillUnit(account_id=account.id, billing_day=5,
                             next_bill_date=date(2026, 3, 5)))  # fmt: skip
        session.flush()
        assert account.id == 51
    with engine.connect() as conn:
        refs = conn.execute(select(Account.ref).where(Account.id.in_([30, 31]))).scalars().all()
    assert refs == ["ACC-000000030", "ACC-000000031"]


def test_catalogue_covers_every_price_model_and_is_valid(engine):
    seed(engine, accounts=1, usage_per_account=1, start=START)

    with engine.connect() as conn:
        plans = conn.execute(select(PricePlan)).all()
        tiers = conn.execute(select(PriceTier).order_by(PriceTier.position)).all()
        rates = {
            (r.category_code, r.country, r.valid_from): r.rate
            for r in conn.execute(select(TaxRate))
        }
    assert {p.model.value for p in plans} == {
        "recurring", "one_time", "per_unit", "graduated", "volume", "package",
    }  # fmt: skip
    assert {p.timing.value for p in plans if p.timing} == {"advance", "arrears"}
    assert {p.proration.value for p in plans} == {"by_day", "full", "none"}
    assert Counter(p.currency for p in plans) == {"EUR": 18, "GBP": 18, "CHF": 18}
    for plan in plans:
        pricing.PricePlan(
            code=plan.code, model=plan.model.value, currency=plan.currency,
            unit_price=plan.unit_price,
            tiers=tuple(pricing.Tier(t.up_to, t.unit_price, t.flat_fee)
                        for t in tiers if t.price_plan_id == plan.id),
            package_size=plan.package_size, proration=plan.proration.value,
            timing=plan.timing.value if plan.timing else None, period_months=plan.period_months,
        )  # fmt: skip
    since = date(2000, 1, 1)
    assert rates[("standard", "FR", since)] == Decimal("0.20")
    assert rates[("reduced", "FR", since)] == Decimal("0.055")
    assert rates[("standard", "PT", since)] == Decimal("0.23")
    assert rates[("reduced", "PT", since)] == Decimal("0.06")
    assert rates[("standard", "CH", date(2024, 1, 1))] == Decimal("0.081")
    assert {rate for (cat, _, _), rate in rates.items() if cat == "zero"} == {Decimal(0)}


def test_accounts_speak_their_country_and_pay_in_its_currency(engine):
    seed(engine, accounts=400, usage_per_account=0, start=START)

    with engine.connect() as conn:
        accounts = conn.execute(select(Account)).all()
    countries = Counter(a.country for a in accounts)
    assert countries["FR"] + countries["PT"] >= 320
    assert set(countries) <= set(LANGUAGE)
    for a in accounts:
        assert (a.language, a.currency) == (LANGUAGE[a.country], CURRENCY[a.country])
        assert a.email.split("@")[1].endswith(("example.com", "example.net", "example.org"))
        assert a.name and a.address_line and a.postal_code and a.city
        assert a.created_on < START and a.balance == Decimal(0)
    assert {a.status.value for a in accounts} == {"active", "inactive", "closed"}
    assert Counter(a.status.value for a in accounts)["active"] >= 360


@given(country=st.sampled_from([c.code for c in COUNTRIES]), number=st.integers(0, 2**62 - 1))
def test_generated_vat_ids_have_valid_check_digits(country, number):
    vat_id = _vat_id(country, number)

    assert vat_id_problem(vat_id, country) is None, vat_id
    assert vat_id == _vat_id(country, number)


def test_every_business_buyer_passes_the_import_rules(engine, tmp_path):
    """Every seeded company has a complete address and a valid VAT id, and re-importing the
    seeded accounts through the JSON importer (seller in FR) is accepted, each unchanged."""
    seed(engine, accounts=2000, usage_per_account=0, start=START)
    with Session(engine) as session:
        query = select(Account, BillUnit.billing_day, BillUnit.cycle).join(Account.bill_units)
        rows = [tuple(row) for row in session.execute(query.order_by(Account.id))]
    businesses = [a for a, _, _ in rows if a.vat_id is not None]
    assert len(businesses) >= 150
    assert {a.country for a in businesses} == {c.code for c in COUNTRIES}
    for a in businesses:
        buyer = Buyer(default_customer_type(a.vat_id), a.country, a.address_line,
                      a.postal_code, a.city, a.vat_id)  # fmt: skip
        assert buyer.customer_type == CustomerType.BUSINESS
        assert buyer_problems(buyer, "FR") == [], (a.ref, a.vat_id)
    assert any(is_intra_community_b2b(
        Buyer(CustomerType.BUSINESS, a.country, vat_id=a.vat_id), "FR") for a in businesses
    )  # fmt: skip
    document = {
        "accounts": [
            {
                "ref": a.ref, "name": a.name, "address_line": a.address_line,
                "postal_code": a.postal_code, "city": a.city, "country": a.country,
                "currency": a.currency, "vat_id": a.vat_id,
                "customer_type": "business" if a.vat_id else "consumer",
                "created_on": a.created_on.isoformat(),
                "bill_unit": {"billing_day": day, "cycle": cycle.value},
            }
            for a, day, cycle in rows
        ]
    }  # fmt: skip
    path = tmp_path / "seeded-accounts.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with unit_of_work(engine) as session:
        report = import_file(session, path, seller_country="FR")
    assert (report.of("accounts").inserted, report.of("accounts").unchanged) == (0, len(rows))


def test_usage_lands_on_metered_items_within_30_days(engine):
    seed(engine, accounts=30, usage_per_account=5, start=START)

    with engine.connect() as conn:
        usage = conn.execute(
            select(UsageRecord, ContractItem.item_type).join(
                ContractItem, ContractItem.id == UsageRecord.contract_item_id
            )
        ).all()
    begin = datetime.combine(START, datetime.min.time())
    assert len(usage) == 150
    assert len({record.external_id for record in usage}) == 150
    for record in usage:
        assert record.item_type.value in ("usage", "uti")
        assert begin <= record.occurred_at < begin + timedelta(days=30)
        assert record.quantity > 0
        assert record.quantity == record.quantity.quantize(Decimal("0.001"))
        assert record.status.value == "pending"


def test_a_share_of_accounts_bill_their_usage_early_past_a_low_threshold(engine):
    """Progressive billing in the demo: about a fifth of the accounts have a usage threshold of
    a few units of their currency, which the seeded usage passes: the UTI daemon three weeks
    into it bills early most of those whose cycle is still open (the others' usage waits for
    their first bill)."""
    seed(engine, accounts=300, usage_per_account=20, start=START)
    now = datetime.combine(START + timedelta(days=21), datetime.min.time())
    with engine.connect() as conn:
        thresholds = conn.scalars(select(Account.usage_threshold)).all()
        still_open = conn.scalar(
            select(func.count())
            .select_from(Account)
            .join(BillUnit)
            .where(Account.usage_threshold.is_not(None), BillUnit.next_bill_date > now.date())
        )
    given = [t for t in thresholds if t is not None]
    assert 0.1 < len(given) / len(thresholds) < 0.3
    assert set(given) == set(THRESHOLDS)
    result = run_uti_schedule_generator(engine, now, "uti-thresholds")
    assert result.failed == {}
    assert still_open >= 10 and result.threshold_accounts >= 0.6 * still_open


def test_seed_command_prints_the_summary(engine, db_url):
    result = CliRunner().invoke(
        app, ["seed", "--accounts", "30", "--usage-per-account", "5", "--start", "2026-03-01",
              "--database", db_url],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    lines = {line.strip("│ ").split("│")[0].strip(): line for line in result.output.splitlines()}
    assert lines["accounts"].split("│")[2].strip() == "30"
    assert lines["usage records"].split("│")[2].strip() == "150"
    assert "elapsed seconds" in lines
    assert count(engine, Contract) == 30
    with engine.connect() as conn:
        assert conn.execute(select(func.min(Contract.start_date))).scalar_one() == START


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 1, 15), date(2025, 12, 1)),
        (date(2026, 3, 31), date(2026, 2, 1)),
        (date(2026, 12, 1), date(2026, 11, 1)),
    ],
)
def test_default_start_is_the_first_of_last_month(today, expected):
    assert first_of_previous_month(today) == expected


def schema_snapshot(engine: Engine) -> set[tuple[object, ...]]:
    """Every constraint and index definition of the current schema (PostgreSQL catalogue)."""
    with engine.connect() as conn:
        constraints = conn.execute(text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = current_schema()::regnamespace"
        )).all()  # fmt: skip
        indexes = conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )).all()  # fmt: skip
    return {tuple(row) for row in constraints} | {tuple(row) for row in indexes}


def test_a_fresh_load_keeps_every_constraint_and_index(engine):
    postgres = engine.dialect.name == "postgresql"
    before = schema_snapshot(engine) if postgres else set()

    seed(engine, accounts=50, usage_per_account=2, start=START)

    if postgres:
        assert len(before) > 40
        assert schema_snapshot(engine) == before
    with engine.connect() as conn, pytest.raises(IntegrityError):
        conn.execute(text("UPDATE usage_records SET contract_item_id = 999999 WHERE id = 1"))
