"""``import_file`` and ``billing import`` on SQLite and PostgreSQL: counts, reruns, rollback."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from typer.testing import CliRunner

from billing.cli import app
from billing.domain.actions import ACTION_PARAMS
from billing.domain.enums import ActionKind
from billing.domain.errors import ImportFileError
from billing.ingest.importer import SCHEMA_PATH, ImportReport, import_file
from billing.ingest.importer_csv import Counts
from billing.ingest.thresholds import amount_text, export_thresholds
from billing.ops.deferred import HANDLERS, run_deferred_actions
from billing.store.db import unit_of_work
from billing.store.models import Account, Base, PricePlan, RejectedUsage, UsageRecord

FIXTURES = Path(__file__).parents[1] / "fixtures" / "import"
MASTER = FIXTURES / "master.json"
USAGE_CSV = FIXTURES / "usage.csv"
DEMO = Path(__file__).parents[2] / "examples" / "demo-import.json"
HEADER = "external_id,item_ref,quantity,occurred_at"

MASTER_COUNTS = {
    "tax_categories": 2, "tax_rates": 3, "products": 3, "price_plans": 5, "accounts": 3,
    "bill_units": 3, "contracts": 3, "contract_items": 5, "change_requests": 1,
    "deferred_actions": 1,
}  # fmt: skip
MIGRATED = {"bill_series": 2}
"""The rows an empty store holds: the migrations' own series, invoices (INV) and credit notes
(CN)."""
MASTER_ROWS = {
    "tax_categories": 2, "tax_rates": 3, "products": 3, "price_plans": 5, "price_tiers": 3,
    "accounts": 3, "bill_units": 3, "bill_series": 2, "contracts": 3, "contract_items": 5,
    "change_requests": 1, "deferred_actions": 1, "usage_records": 2, "rejected_usage": 1,
}  # fmt: skip

CSV_REJECTIONS = [
    (3, "CSV-3", "CSV-3,I-2,,2026-02-01T10:00:00", "quantity is missing or blank"),
    (4, "CSV-4", "CSV-4,I-2,-5,2026-02-01T10:00:00", "quantity -5 is negative"),
    (5, "CSV-5", "CSV-5,I-2,1.5e3,2026-02-01T10:00:00", "quantity '1.5e3' is not a decimal number"),
    (6, "CSV-6", "CSV-6,I-2,1.1234567,2026-02-01T10:00:00",
     "quantity: amount 1.1234567 has more than 6 decimals"),
    (7, "CSV-7", "CSV-7,I-2,10,2026-02-30T10:00:00",
     "occurred_at '2026-02-30T10:00:00' is not a valid date-time"),
    (8, "CSV-8", "CSV-8,NO-SUCH,10,2026-02-01T10:00:00", "unknown item_ref 'NO-SUCH'"),
    (9, "CSV-1", "CSV-1,I-2,100,2026-02-01T08:00:00",
     "duplicate external_id 'CSV-1' earlier in the file"),
    (10, None, ",I-2,1,2026-02-01T10:00:00", "external_id is missing or blank"),
    (11, "CSV-11", "CSV-11,I-2,7,2026-02-01",
     "occurred_at '2026-02-01' is not an ISO 8601 date-time (YYYY-MM-DDTHH:MM[:SS])"),
]  # fmt: skip


def run_import(engine: Engine, path: Path, **kwargs: Any) -> ImportReport:
    """Import a file in its own unit of work."""
    with unit_of_work(engine) as session:
        return import_file(session, path, **kwargs)


def row_counts(engine: Engine) -> dict[str, int]:
    """The row count of every table of the schema."""
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in Base.metadata.sorted_tables
        }


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    """The tables that hold rows."""
    return {name: n for name, n in counts.items() if n}


def master_with(tmp_path: Path, change: Any, name: str = "changed.json") -> Path:
    """A copy of the master fixture with one change applied to its parsed document."""
    document = json.loads(MASTER.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def assert_refused(engine: Engine, path: Path, record: str, field: str) -> ImportFileError:
    """The import fails naming record and field, and writes nothing even if the caller commits."""
    before = row_counts(engine)
    with unit_of_work(engine) as session:
        with pytest.raises(ImportFileError) as caught:
            import_file(session, path)
    assert (caught.value.record, caught.value.field) == (record, field)
    assert f"record {record}, field {field}: " in str(caught.value)
    assert row_counts(engine) == before
    return caught.value


# --- JSON --------------------------------------------------------------------------------


def test_full_json_import_inserts_every_record(engine):
    report = run_import(engine, MASTER)

    expected = {kind: Counts(inserted=n) for kind, n in MASTER_COUNTS.items()}
    expected["usage"] = Counts(inserted=2, rejected=1)
    assert report.counts == expected
    assert nonzero(row_counts(engine)) == MASTER_ROWS


def test_json_import_stores_exact_values(engine):
    run_import(engine, MASTER)

    with unit_of_work(engine) as session:
        bill_dates = session.execute(
            text(
                "select a.ref, b.billing_day, b.cycle, b.next_bill_date from bill_units b "
                "join accounts a on a.id = b.account_id order by a.ref"
            )
        ).all()
        plan = session.scalars(select(PricePlan).where(PricePlan.code == "API-EUR")).one()
        tiers = [(t.position, t.up_to, t.unit_price, t.flat_fee) for t in plan.tiers]
        acc2 = session.scalars(select(Account).where(Account.ref == "ACC-2")).one()
        usage = session.execute(
            select(UsageRecord.external_id, UsageRecord.quantity, UsageRecord.occurred_at).order_by(
                UsageRecord.external_id
            )
        ).all()
        rejected = session.execute(
            select(RejectedUsage.source, RejectedUsage.row_number, RejectedUsage.reason)
        ).all()
    digest = hashlib.sha256(MASTER.read_bytes()).hexdigest()[:16]

    assert [(r, d, c, str(n)) for r, d, c, n in bill_dates] == [
        ("ACC-1", 1, "monthly", "2026-02-01"),
        ("ACC-2", 15, "quarterly", "2026-04-15"),
        ("ACC-3", 31, "monthly", "2026-03-31"),
    ]
    assert tiers == [
        (0, Decimal("1000"), Decimal("0"), Decimal("0")),
        (1, Decimal("10000"), Decimal("0.002"), Decimal("0")),
        (2, None, Decimal("0.001"), Decimal("5")),
    ]
    assert (acc2.iban, acc2.mandate_date, acc2.payment_terms_days) == (
        "DE89370400440532013000", date(2025, 12, 1), 30,
    )  # fmt: skip
    assert usage == [
        ("U-1", Decimal("1500"), datetime(2026, 1, 20, 10, 0)),
        ("U-2", Decimal("250.5"), datetime(2026, 1, 21, 10, 0)),
    ]
    assert rejected == [(f"master.json#{digest}", 3, "unknown item_ref 'I-404'")]


def test_reimporting_json_adds_nothing(engine):
    run_import(engine, MASTER)
    before = row_counts(engine)

    report = run_import(engine, MASTER)

    expected = {kind: Counts(unchanged=n) for kind, n in MASTER_COUNTS.items()}
    expected["usage"] = Counts(unchanged=2, rejected=1)
    assert report.counts == expected
    assert row_counts(engine) == before


def _bad_currency(doc):
    doc["accounts"][2]["currency"] = "XYZ"


def _unknown_plan(doc):
    doc["contracts"][1]["items"][0]["price_plan"] = "NO-SUCH-PLAN"


def _unknown_account(doc):
    doc["contracts"][2]["account"] = "ACC-404"


def _schema_currency(doc):
    doc["accounts"][1]["currency"] = "euro"


def _missing_name(doc):
    del doc["accounts"][0]["name"]


def _bad_date(doc):
    doc["contracts"][0]["start_date"] = "2026-02-30"


def _bad_tier(doc):
    doc["products"][1]["price_plans"][0]["tiers"][2]["up_to"] = "20000"


def _currency_mismatch(doc):
    doc["contracts"][0]["items"][1]["price_plan"] = "SETUP-JPY"


def _bad_iban(doc):
    doc["accounts"][1]["iban"] = "DE00370400440532013000"


def _duplicate_ref(doc):
    doc["accounts"][2]["ref"] = "ACC-1"
    for contract in doc["contracts"]:
        contract["account"] = "ACC-1"
    doc["deferred_actions"][0]["account"] = "ACC-1"


@pytest.mark.parametrize(
    ("change", "record", "field"),
    [
        (_bad_currency, "accounts[2] (ref ACC-3)", "currency"),
        (_unknown_plan, "contracts[1] (ref C-2).items[0] (ref I-3)", "price_plan"),
        (_unknown_account, "contracts[2] (ref C-3)", "account"),
        (_schema_currency, "accounts[1] (ref ACC-2)", "currency"),
        (_missing_name, "accounts[0] (ref ACC-1)", "name"),
        (_bad_date, "contracts[0] (ref C-1)", "start_date"),
        (_bad_tier, "products[1] (code P-API).price_plans[0] (code API-EUR)", "tiers"),
        (_currency_mismatch, "contracts[0] (ref C-1).items[1] (ref I-2)", "price_plan"),
        (_bad_iban, "accounts[1] (ref ACC-2)", "iban"),
        (_duplicate_ref, "accounts[2] (ref ACC-1)", "ref"),
    ],
)
def test_one_bad_record_refuses_the_whole_file(engine, tmp_path, change, record, field):
    assert_refused(engine, master_with(tmp_path, change), record, field)
    assert nonzero(row_counts(engine)) == MIGRATED


def test_refused_file_leaves_existing_data_unchanged(engine, tmp_path):
    run_import(engine, MASTER)
    run_import(engine, USAGE_CSV)

    def add_then_fail(doc):
        doc["tax_categories"].append({"code": "NEW", "name": "New"})
        doc["accounts"].append(dict(doc["accounts"][0], ref="ACC-9", currency="XYZ"))

    assert_refused(
        engine, master_with(tmp_path, add_then_fail), "accounts[3] (ref ACC-9)", "currency"
    )


# --- buyers: B2B address and VAT id (issue #18) --------------------------------------------

DUPONT = "accounts[0] (ref ACC-1)"  # FR, vat_id FR40303265045: a business buyer
MUELLER = "accounts[1] (ref ACC-2)"  # DE, no vat_id: a consumer unless told otherwise
TANAKA = "accounts[2] (ref ACC-3)"  # JP, no address


def _account(index, **fields):
    """A change that sets (or, with None, removes) fields of one account of the fixture."""

    def change(doc):
        for name, value in fields.items():
            if value is None:
                doc["accounts"][index].pop(name, None)
            else:
                doc["accounts"][index][name] = value

    return change


@pytest.mark.parametrize(
    ("change", "record", "field", "term"),
    [
        (_account(0, address_line=None), DUPONT, "address_line", "BT-50"),
        (_account(0, postal_code=None), DUPONT, "postal_code", "BT-53"),
        (_account(0, city="   "), DUPONT, "city", "BT-52"),
        (_account(2, customer_type="business", postal_code="100-0005", city="Tokyo"), TANAKA,
         "address_line", "BT-50"),
    ],
)  # fmt: skip
def test_a_business_buyer_without_a_complete_address_is_refused(
    engine, tmp_path, change, record, field, term
):
    error = assert_refused(engine, master_with(tmp_path, change), record, field)

    assert f"{field} is required for a business buyer (EN 16931 {term}" in str(error)
    assert "CGI art. 242 nonies A" in str(error)
    assert nonzero(row_counts(engine)) == MIGRATED


@pytest.mark.parametrize(
    ("vat_id", "country", "message"),
    [
        ("FR40303265046", "FR", "vat_id 'FR40303265046' is not a valid VAT number (check digits)"),
        ("FR123", "FR", "vat_id 'FR123' is not a valid VAT number (the number has an invalid "
                        "length)"),
        ("DE812345673", "FR", "vat_id 'DE812345673' starts with 'DE', not the prefix of the "
                              "buyer's country FR ('FR')"),
        ("303265045", "FR", "vat_id '303265045' has no country prefix"),
        ("GR094259216", "GR", "starts with 'GR', not the prefix of the buyer's country GR ('EL')"),
        ("CHE-116.281.711 MWST", "CH", "is not a valid VAT number"),
    ],
)  # fmt: skip
def test_an_invalid_buyer_vat_id_is_refused(engine, tmp_path, vat_id, country, message):
    change = _account(0, vat_id=vat_id, country=country)

    error = assert_refused(engine, master_with(tmp_path, change), DUPONT, "vat_id")

    assert message in str(error)
    assert nonzero(row_counts(engine)) == MIGRATED


def test_an_invalid_vat_id_is_refused_for_a_consumer_too(engine, tmp_path):
    change = _account(0, customer_type="consumer", vat_id="FR40303265046")

    error = assert_refused(engine, master_with(tmp_path, change), DUPONT, "vat_id")
    assert "(check digits)" in str(error)


def test_an_intra_eu_business_buyer_without_a_vat_id_is_refused(engine, tmp_path):
    change = _account(1, customer_type="business", address_line="Hauptstraße 5",
                      postal_code="10115", city="Berlin")  # fmt: skip

    error = assert_refused(engine, master_with(tmp_path, change), MUELLER, "vat_id")

    assert "vat_id is required for an intra-community supply from FR to a business buyer in DE" in (
        str(error)
    )
    assert "Directive 2006/112/EC art. 138 and 226(4)" in str(error)


@pytest.mark.parametrize(
    ("change", "seller_country"),
    [
        # domestic B2C without VAT id or address
        (_account(0, customer_type="consumer", vat_id=None, address_line=None, city=None), "FR"),
        # B2C in another member state: no VAT id needed
        (_account(1, customer_type="consumer"), "FR"),
        # the same German business, sold from Germany: domestic, no VAT id needed
        (_account(1, customer_type="business", address_line="Hauptstraße 5",
                  postal_code="10115", city="Berlin"), "DE"),
        # a business outside the EU with its address: no VAT id needed
        (_account(2, customer_type="business", address_line="1-2-3 Marunouchi",
                  postal_code="100-0005", city="Tokyo"), "FR"),
        # valid ids with their country's prefix: Greece writes EL, a Swiss id its suffix
        (_account(1, customer_type="business", address_line="Hauptstraße 5", postal_code="10115",
                  city="Berlin", vat_id="DE812345673"), "FR"),
        (_account(0, country="GR", vat_id="EL094259216"), "FR"),
        (_account(0, country="CH", vat_id="CHE-116.281.710 MWST"), "FR"),
    ],
)  # fmt: skip
def test_buyers_the_law_allows_are_imported(engine, tmp_path, change, seller_country):
    report = run_import(engine, master_with(tmp_path, change), seller_country=seller_country)

    assert report.of("accounts").inserted == 3


def test_a_refused_buyer_changes_nothing_in_a_filled_database(engine, tmp_path):
    run_import(engine, MASTER)
    with engine.connect() as conn:
        accounts_before = conn.execute(
            select(Account.ref, Account.vat_id).order_by(Account.ref)
        ).all()

    def add_then_fail(doc):
        doc["tax_categories"].append({"code": "NEW", "name": "New"})
        doc["accounts"].append(dict(doc["accounts"][0], ref="ACC-8"))
        doc["accounts"].append(dict(doc["accounts"][1], ref="LUM-001", customer_type="business",
                                    country="FR", vat_id="FR44732829320", address_line="8 rue X",
                                    city="Paris"))  # fmt: skip
        doc["contracts"].append(dict(doc["contracts"][0], ref="C-8", account="ACC-8", items=[]))

    error = assert_refused(
        engine, master_with(tmp_path, add_then_fail), "accounts[4] (ref LUM-001)", "postal_code"
    )

    assert "postal_code is required for a business buyer" in str(error)
    with engine.connect() as conn:
        accounts_after = conn.execute(
            select(Account.ref, Account.vat_id).order_by(Account.ref)
        ).all()
    assert accounts_after == accounts_before


def test_the_demo_file_has_complete_business_buyers(engine):
    run_import(engine, DEMO)

    with engine.connect() as conn:
        lumiere = conn.execute(select(Account).where(Account.ref == "LUMIERE-FR")).one()
    assert (lumiere.address_line, lumiere.postal_code, lumiere.city, lumiere.country) == (
        "8 passage des Récollets", "75010", "Paris", "FR",
    )  # fmt: skip
    assert lumiere.vat_id == "FR44732829320"


def test_json_float_money_is_refused(engine, tmp_path):
    source = MASTER.read_text(encoding="utf-8").replace(
        '"unit_price": "29.90"', '"unit_price": 29.90'
    )
    path = tmp_path / "float.json"
    path.write_text(source, encoding="utf-8")

    error = assert_refused(
        engine, path, "products[0] (code P-HOSTING).price_plans[0] (code HOST-M-EUR)", "unit_price"
    )
    assert "JSON number 29.90 is not allowed" in str(error)


def test_json_float_usage_quantity_is_refused_not_rejected(engine, tmp_path):
    source = MASTER.read_text(encoding="utf-8").replace('"quantity": "250.5"', '"quantity": 0.1')
    path = tmp_path / "float.json"
    path.write_text(source, encoding="utf-8")

    error = assert_refused(engine, path, "usage[1] (external_id U-2)", "quantity")
    assert "JSON number 0.1 is not allowed" in str(error)


def test_reimport_with_a_changed_field_is_refused(engine, tmp_path):
    run_import(engine, MASTER)

    def rename(doc):
        doc["accounts"][1]["name"] = "Müller AG"

    error = assert_refused(engine, master_with(tmp_path, rename), "accounts[1] (ref ACC-2)", "name")
    assert "'Müller GmbH'" in str(error) and "'Müller AG'" in str(error)


def test_references_resolve_against_the_database(engine, tmp_path):
    run_import(engine, MASTER)
    path = tmp_path / "more.json"
    path.write_text(
        json.dumps(
            {
                "contracts": [
                    {"ref": "C-9", "account": "ACC-1", "start_date": "2026-03-01",
                     "items": [{"ref": "I-9", "price_plan": "SETUP-EUR", "item_type": "one_time",
                                "start_date": "2026-03-01"}]},
                ],
                "change_requests": [
                    {"ref": "CR-9", "item": "I-3", "kind": "swap", "effective_date": "2026-06-01",
                     "new_price_plan": "HOST-M-EUR"},
                ],
            }
        ),
        encoding="utf-8",
    )  # fmt: skip

    report = run_import(engine, path)

    assert report.counts == {
        "contracts": Counts(inserted=1),
        "contract_items": Counts(inserted=1),
        "change_requests": Counts(inserted=1),
    }


def test_demo_example_imports_cleanly(engine):
    report = run_import(engine, DEMO)

    assert [(kind, c.inserted, c.unchanged, c.rejected) for kind, c in report.ordered()] == [
        ("tax_categories", 4, 0, 0), ("tax_rates", 7, 0, 0), ("products", 7, 0, 0),
        ("price_plans", 11, 0, 0), ("accounts", 4, 0, 0), ("bill_units", 4, 0, 0),
        ("contracts", 4, 0, 0), ("contract_items", 11, 0, 0), ("change_requests", 3, 0, 0),
        ("deferred_actions", 1, 0, 0), ("usage", 5, 0, 0),
    ]  # fmt: skip


def test_the_demo_deferred_action_runs_on_its_due_date(engine):
    """The demo's deferred action is one the engine executes: done on its date, not failed."""
    run_import(engine, DEMO)

    with unit_of_work(engine) as session:
        result = run_deferred_actions(session, date(2026, 12, 31))
        status = session.scalars(select(Account.status).where(Account.ref == "TANAKA-JP")).one()

    assert (result.done, result.failed) == (1, {})
    assert status == "inactive"


# --- what billing cannot bill is refused (issue #19) --------------------------------------

C1_I1 = "contracts[0] (ref C-1).items[0] (ref I-1)"  # recurring, HOST-M-EUR (recurring)
C1_I2 = "contracts[0] (ref C-1).items[1] (ref I-2)"  # usage, API-EUR (graduated)
C2_I3 = "contracts[1] (ref C-2).items[0] (ref I-3)"  # recurring, HOST-Y-EUR
C2_I4 = "contracts[1] (ref C-2).items[1] (ref I-4)"  # one_time, SETUP-EUR
DA_1 = "deferred_actions[0] (ref DA-1)"  # on ACC-3 (Tanaka, JPY), whose item is I-5
CR_1 = "change_requests[0] (ref CR-1)"  # on I-1


def _item_type(contract, item, item_type):
    def change(doc):
        doc["contracts"][contract]["items"][item]["item_type"] = item_type

    return change


@pytest.mark.parametrize(
    ("change", "record", "words"),
    [
        (_item_type(0, 0, "usage"), C1_I1, "a usage item cannot be billed on price plan "
         "'HOST-M-EUR', a recurring plan; it needs a per_unit, graduated, volume or package plan"),
        (_item_type(0, 0, "uti"), C1_I1, "a uti item cannot be billed"),
        (_item_type(0, 1, "recurring"), C1_I2, "a recurring item cannot be billed on price plan "
         "'API-EUR', a graduated plan; it needs a recurring plan"),
        (_item_type(1, 0, "one_time"), C2_I3, "it needs a one_time plan"),
        (_item_type(1, 1, "recurring"), C2_I4, "'SETUP-EUR', a one_time plan"),
    ],
)  # fmt: skip
def test_an_item_type_its_plan_cannot_bill_is_refused(engine, tmp_path, change, record, words):
    """A usage item on a recurring plan used to import, then fail bill day on a foreign key."""
    error = assert_refused(engine, master_with(tmp_path, change), record, "item_type")
    assert words in str(error)


def _action(**fields):
    def change(doc):
        doc["deferred_actions"][0].update(fields)

    return change


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (_action(action="set_status"), "action", "'set_status' is not one of"),
        (_action(action="suspend", params={}), "action", "'suspend' is not one of"),
        (_action(params={}), "params.status", "'status' is a required property"),
        (_action(params={"status": "paused"}), "params.status", "'paused' is not one of"),
        (_action(params={"status": "inactive", "when": "now"}), "params.when",
         "('when' was unexpected)"),
        (_action(action="cancel_item", params={"status": "inactive"}), "params.status",
         "('status' was unexpected)"),
        (_action(action="cancel_item", params={}), "params.item_ref",
         "'item_ref' is a required property"),
        (_action(action="cancel_item", params={"item_ref": "I-404"}), "params.item_ref",
         "unknown contract item 'I-404': neither in this file nor in the database"),
        (_action(action="cancel_item", params={"item_ref": "I-1"}), "params.item_ref",
         "contract item 'I-1' is not an item of account 'ACC-3'"),
        (_action(action="change_price", params={"item_ref": "I-5"}), "params.price",
         "'price' is a required property"),
        (_action(action="change_price", params={"item_ref": "I-5", "price": "-1"}),
         "params.price", "does not match"),
        (_action(action="change_price", params={"item_ref": "I-5", "price": "1.1234567"}),
         "params.price", "more than 6 decimals"),
        (_action(action="change_price", params={"item_ref": "I-5", "price": "4000"}),
         "params.price", "one-time item 'I-5' is charged once, at its start"),
    ],
)  # fmt: skip
def test_a_deferred_action_the_engine_cannot_run_is_refused(engine, tmp_path, change, field, words):
    """Before, any name and any params imported; the action then failed at its due date."""
    error = assert_refused(engine, master_with(tmp_path, change), DA_1, field)
    assert words in str(error)


def test_a_price_change_on_a_tiered_usage_item_is_refused(engine, tmp_path):
    def change(doc):
        doc["deferred_actions"][0].update(
            account="ACC-1", action="change_price", params={"item_ref": "I-2", "price": "0.01"}
        )

    error = assert_refused(engine, master_with(tmp_path, change), DA_1, "params.price")
    assert "item 'I-2' is rated by the tiers of its graduated plan" in str(error)


def test_each_action_with_its_params_imports(engine, tmp_path):
    def change(doc):
        doc["deferred_actions"] = [
            {"ref": "DA-1", "account": "ACC-3", "action": "set_account_status",
             "params": {"status": "closed"}, "due_on": "2026-12-31"},
            {"ref": "DA-2", "account": "ACC-1", "action": "cancel_item",
             "params": {"item_ref": "I-2"}, "due_on": "2026-06-30"},
            {"ref": "DA-3", "account": "ACC-1", "action": "change_price",
             "params": {"item_ref": "I-1", "price": "24.90"}, "due_on": "2026-07-01"},
            {"ref": "DA-4", "account": "ACC-2", "action": "change_price",
             "params": {"item_ref": "I-3", "price": 199}, "due_on": "2026-07-01"},
        ]  # fmt: skip

    report = run_import(engine, master_with(tmp_path, change))

    assert report.of("deferred_actions") == Counts(inserted=4)


def test_the_schema_lists_exactly_the_actions_the_engine_executes():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    listed = schema["$defs"]["deferred_action"]["properties"]["action"]["enum"]
    branches = {
        branch["if"]["properties"]["action"]["const"]: sorted(
            branch["then"]["properties"]["params"]["required"]
        )
        for branch in schema["$defs"]["deferred_action"]["allOf"]
    }

    assert sorted(listed) == sorted(ActionKind) == sorted(HANDLERS) == sorted(ACTION_PARAMS)
    assert branches == {action: sorted(params) for action, params in ACTION_PARAMS.items()}


def test_a_swap_to_a_plan_that_cannot_price_the_item_is_refused(engine, tmp_path):
    def change(doc):
        doc["change_requests"][0].update(kind="swap", new_price_plan="API-EUR")
        del doc["change_requests"][0]["new_quantity"]

    error = assert_refused(engine, master_with(tmp_path, change), CR_1, "new_price_plan")
    assert "item 'I-1': a recurring item cannot be billed on price plan 'API-EUR'" in str(error)


def test_a_swap_to_a_plan_in_another_currency_is_refused(engine, tmp_path):
    def change(doc):
        doc["change_requests"][0].update(kind="swap", new_price_plan="SETUP-JPY")
        doc["change_requests"][0]["item"] = "I-4"
        del doc["change_requests"][0]["new_quantity"]

    error = assert_refused(engine, master_with(tmp_path, change), CR_1, "new_price_plan")
    assert "price plan 'SETUP-JPY' is in JPY, item 'I-4' is billed in EUR" in str(error)


# --- CSV usage ---------------------------------------------------------------------------


# --- usage thresholds (progressive billing: billing.domain.thresholds) --------------------


def test_an_account_usage_threshold_is_imported_and_exported_back(engine, tmp_path):
    path = master_with(tmp_path, _account(0, usage_threshold="250.00"))
    run_import(engine, path)
    with unit_of_work(engine) as s:
        thresholds = dict(s.execute(select(Account.ref, Account.usage_threshold)).all())
        exported = export_thresholds(s)
    assert thresholds == {"ACC-1": Decimal("250.00"), "ACC-2": None, "ACC-3": None}
    assert exported == [{"account": "ACC-1", "usage_threshold": "250.00"}]
    assert run_import(engine, path).of("accounts").unchanged == 3  # a rerun adds nothing
    # The master file without the field imports unchanged over it: nothing is compared.
    assert run_import(engine, MASTER).of("accounts").unchanged == 3
    refused = master_with(tmp_path, _account(0, usage_threshold="300.00"), "other.json")
    error = assert_refused(engine, refused, DUPONT, "usage_threshold")
    assert "the importer never overwrites" in str(error)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", "0 is not a positive amount"),
        (0, "0 is less than or equal to the minimum of 0"),
        ("-5", "does not match"),
        (12.5, "JSON number 12.5 is not allowed"),
        ("1.1234567", "more than 6 decimals"),
    ],
)
def test_a_usage_threshold_that_is_not_a_positive_amount_is_refused(engine, tmp_path, value, words):
    path = master_with(tmp_path, _account(0, usage_threshold=value))
    error = assert_refused(engine, path, DUPONT, "usage_threshold")
    assert words in str(error)


def test_an_exported_threshold_keeps_every_decimal_it_has():
    assert amount_text(Decimal("250.000000"), "EUR") == "250.00"
    assert amount_text(Decimal("0.125000"), "EUR") == "0.125"
    assert amount_text(Decimal("1000"), "JPY") == "1000"


def stored_rejections(engine: Engine, source: str) -> list[tuple[Any, ...]]:
    """The rejected_usage rows of a source, in row order."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                RejectedUsage.row_number, RejectedUsage.external_id, RejectedUsage.raw,
                RejectedUsage.reason,
            )
            .where(RejectedUsage.source.like(f"{source}#%"))
            .order_by(RejectedUsage.row_number)
        )  # fmt: skip
        return [tuple(row) for row in rows]


def test_csv_loads_good_rows_and_rejects_bad_ones(engine):
    run_import(engine, MASTER)

    report = run_import(engine, USAGE_CSV)

    assert report.counts == {"usage": Counts(inserted=3, rejected=9)}
    assert stored_rejections(engine, "usage.csv") == CSV_REJECTIONS
    with engine.connect() as conn:
        loaded = conn.execute(
            select(UsageRecord.external_id, UsageRecord.quantity, UsageRecord.occurred_at)
            .where(UsageRecord.external_id.like("CSV-%"))
            .order_by(UsageRecord.external_id)
        ).all()
    assert loaded == [
        ("CSV-1", Decimal("100"), datetime(2026, 2, 1, 8, 0)),
        ("CSV-12", Decimal("12.5"), datetime(2026, 2, 2, 0, 0)),
        ("CSV-2", Decimal("0.000001"), datetime(2026, 2, 1, 7, 0)),
    ]


def test_reimporting_csv_adds_nothing(engine):
    run_import(engine, MASTER)
    run_import(engine, USAGE_CSV)
    before = row_counts(engine)

    report = run_import(engine, USAGE_CSV)

    assert report.counts == {"usage": Counts(unchanged=3, rejected=9)}
    assert row_counts(engine) == before
    assert before["usage_records"] == 5 and before["rejected_usage"] == 10


def test_csv_larger_than_one_chunk_loads_fully(engine, tmp_path):
    run_import(engine, MASTER)
    lines = [f"BIG-{n:03d},I-2,{n}.5,2026-03-01T00:{n % 60:02d}:00" for n in range(1, 26)]
    lines.insert(20, "BIG-003,I-2,1,2026-03-01T00:00:00")
    path = tmp_path / "big.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")

    report = run_import(engine, path, chunksize=7)

    assert report.counts == {"usage": Counts(inserted=25, rejected=1)}
    assert stored_rejections(engine, "big.csv") == [
        (21, "BIG-003", "BIG-003,I-2,1,2026-03-01T00:00:00",
         "duplicate external_id 'BIG-003' earlier in the file"),
    ]  # fmt: skip
    with engine.connect() as conn:
        total = conn.execute(
            select(func.sum(UsageRecord.quantity)).where(UsageRecord.external_id.like("BIG-%"))
        ).scalar_one()
    assert total == Decimal("337.5")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "external_id,item,quantity,occurred_at\nX,I-2,1,2026-03-01T00:00:00\n",
            "missing ['item_ref']",
        ),
        ("", "missing ['external_id', 'item_ref', 'quantity', 'occurred_at']"),
        (f"{HEADER}\nA,I-2,1,2026-03-01T00:00:00\nB,I-2,1,2026-03-01T00:00:00,extra\n", "line 3"),
    ],
)
def test_structurally_bad_csv_changes_nothing(engine, tmp_path, content, message):
    run_import(engine, MASTER)
    path = tmp_path / "broken.csv"
    path.write_text(content, encoding="utf-8")
    before = row_counts(engine)

    with unit_of_work(engine) as session:
        with pytest.raises(ImportFileError, match=message.replace("[", r"\[")):
            import_file(session, path)

    assert row_counts(engine) == before


def test_binary_file_is_refused(engine, tmp_path):
    path = tmp_path / "blob.csv"
    path.write_bytes(bytes(range(256)) * 4)

    with unit_of_work(engine) as session:
        with pytest.raises(ImportFileError, match="blob.csv"):
            import_file(session, path)

    assert nonzero(row_counts(engine)) == MIGRATED


# --- CLI ---------------------------------------------------------------------------------


def test_cli_exits_2_on_a_bad_file_and_changes_nothing(engine, db_url, tmp_path):
    run_import(engine, MASTER)
    before = row_counts(engine)
    bad = master_with(tmp_path, lambda doc: doc["accounts"].append({"ref": "ACC-9"}))

    result = CliRunner().invoke(app, ["import", str(bad), "--database", db_url])

    assert result.exit_code == 2
    assert "record accounts[3] (ref ACC-9), field name:" in " ".join(result.output.split())
    assert row_counts(engine) == before


def test_cli_prints_the_report(engine, db_url):
    result = CliRunner().invoke(app, ["import", str(MASTER), "--database", db_url])

    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["│", "accounts", "│", "3", "│", "0", "│", "0", "│"] in lines
    assert ["│", "usage", "│", "2", "│", "0", "│", "1", "│"] in lines
    assert row_counts(engine)["accounts"] == 3
