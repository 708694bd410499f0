"""commercial terms: discounts, minimum commitments, prepaid wallets, trials and thresholds

- ``discounts``, ``commitments``, ``wallets``, ``wallet_entries`` (``billing.store.models_terms``);
- ``contract_items.trial_end_date``: a free trial's end (the recurring fee is zero before it);
- ``accounts.usage_threshold``: progressive billing's amount of unbilled usage;
- ``charges.kind`` also allows ``discount``, ``commitment`` and ``prepayment``.

Downgrade is refused while any term or term charge is stored (it would lose them silently).

Revision ID: 0012_commercial_terms
Revises: 0011_usage_ranges
"""

import sqlalchemy as sa
from alembic import op

from billing.store.enum_checks import set_check_values
from billing.store.types import Amount

revision = "0012_commercial_terms"
down_revision = "0011_usage_ranges"
branch_labels = None
depends_on = None

OLD_KINDS = ("recurring", "usage", "one_time", "adjustment")
NEW_KINDS = (*OLD_KINDS, "discount", "commitment", "prepayment")
KIND_CHECK = "ck_charges_chargekind"


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


def upgrade() -> None:
    # Nullable columns: both databases add them in place (no copy and move of the table).
    op.add_column("contract_items", sa.Column("trial_end_date", sa.Date(), nullable=True))
    op.add_column("accounts", sa.Column("usage_threshold", Amount(), nullable=True))
    set_check_values("charges", "kind", KIND_CHECK, OLD_KINDS, NEW_KINDS)
    op.create_table(
        "discounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("scope", _enum("discountscope", "item", "plan", "bill"), nullable=False),
        sa.Column("contract_item_id", sa.Integer(), nullable=True),
        sa.Column("price_plan_id", sa.Integer(), nullable=True),
        sa.Column("kind", _enum("discountkind", "percent", "fixed"), nullable=False),
        sa.Column("value", Amount(), nullable=False),
        sa.Column("coupon_code", sa.String(64), nullable=True),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("reason_code", sa.String(3), server_default="95", nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("cycles", sa.Integer(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("stackable", sa.Boolean(), server_default="1", nullable=False),
        sa.CheckConstraint("value >= 0", name=op.f("ck_discounts_value_not_negative")),
        sa.CheckConstraint(
            "cycles IS NULL OR cycles > 0", name=op.f("ck_discounts_cycles_positive")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_discounts_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["contract_item_id"],
            ["contract_items.id"],
            name=op.f("fk_discounts_contract_item_id_contract_items"),
        ),
        sa.ForeignKeyConstraint(
            ["price_plan_id"],
            ["price_plans.id"],
            name=op.f("fk_discounts_price_plan_id_price_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discounts")),
        sa.UniqueConstraint("ref", name=op.f("uq_discounts_ref")),
    )
    op.create_index(op.f("ix_discounts_account_id"), "discounts", ["account_id"])
    op.create_table(
        "commitments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=True),
        sa.Column("contract_item_id", sa.Integer(), nullable=True),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("tax_category", sa.String(16), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_commitments_amount_not_negative")),
        sa.CheckConstraint(
            "(contract_id IS NULL) <> (contract_item_id IS NULL)",
            name=op.f("ck_commitments_one_target"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_commitments_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_commitments_contract_id_contracts")
        ),
        sa.ForeignKeyConstraint(
            ["contract_item_id"],
            ["contract_items.id"],
            name=op.f("fk_commitments_contract_item_id_contract_items"),
        ),
        sa.ForeignKeyConstraint(
            ["tax_category"],
            ["tax_categories.code"],
            name=op.f("fk_commitments_tax_category_tax_categories"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commitments")),
        sa.UniqueConstraint("ref", name=op.f("uq_commitments_ref")),
    )
    op.create_index(op.f("ix_commitments_account_id"), "commitments", ["account_id"])
    op.create_table(
        "wallets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("topup_threshold", Amount(), nullable=True),
        sa.Column("topup_amount", Amount(), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.CheckConstraint(
            "(topup_threshold IS NULL) = (topup_amount IS NULL)",
            name=op.f("ck_wallets_topup_pair"),
        ),
        sa.CheckConstraint(
            "topup_amount IS NULL OR topup_amount > 0", name=op.f("ck_wallets_topup_positive")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_wallets_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallets")),
        sa.UniqueConstraint("ref", name=op.f("uq_wallets_ref")),
    )
    op.create_index(op.f("ix_wallets_account_id"), "wallets", ["account_id"])
    op.create_table(
        "wallet_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_key", sa.String(96), nullable=False),
        sa.Column("wallet_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            _enum("walletentrykind", "grant", "purchase", "consumption", "expiry"),
            nullable=False,
        ),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("lot_id", sa.Integer(), nullable=True),
        sa.Column("bill_id", sa.Integer(), nullable=True),
        sa.Column("charge_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(200), nullable=False),
        sa.CheckConstraint(
            "(kind IN ('grant', 'purchase') AND amount > 0 AND lot_id IS NULL)"
            " OR (kind IN ('consumption', 'expiry') AND amount < 0 AND lot_id IS NOT NULL)",
            name=op.f("ck_wallet_entries_sign_and_lot"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_wallet_entries_wallet_id_wallets")
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["wallet_entries.id"], name=op.f("fk_wallet_entries_lot_id_wallet_entries")
        ),
        sa.ForeignKeyConstraint(
            ["bill_id"], ["bills.id"], name=op.f("fk_wallet_entries_bill_id_bills")
        ),
        sa.ForeignKeyConstraint(
            ["charge_id"], ["charges.id"], name=op.f("fk_wallet_entries_charge_id_charges")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_entries")),
        sa.UniqueConstraint("entry_key", name=op.f("uq_wallet_entries_entry_key")),
    )
    for column in ("wallet_id", "lot_id", "bill_id"):
        op.create_index(op.f(f"ix_wallet_entries_{column}"), "wallet_entries", [column])


def downgrade() -> None:
    """Refused while any term is stored: dropping it would lose billed facts without a word."""
    bind = op.get_bind()
    counts = {
        table: bind.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
        for table in ("discounts", "commitments", "wallets", "wallet_entries")
    }
    counts["charges of the new kinds"] = bind.exec_driver_sql(
        "SELECT count(*) FROM charges WHERE kind IN ('discount', 'commitment', 'prepayment')"
    ).scalar_one()
    stored = {name: n for name, n in counts.items() if n}
    if stored:
        raise RuntimeError(
            f"cannot downgrade below 0012_commercial_terms: commercial terms are stored ({stored})"
        )
    for table in ("wallet_entries", "wallets", "commitments", "discounts"):
        op.drop_table(table)
    set_check_values("charges", "kind", KIND_CHECK, NEW_KINDS, OLD_KINDS)
    # Unindexed, unconstrained columns: both databases drop them in place (SQLite 3.35+); a
    # copy and move of ``accounts`` would break the foreign keys that point to it.
    op.execute("ALTER TABLE accounts DROP COLUMN usage_threshold")
    op.execute("ALTER TABLE contract_items DROP COLUMN trial_end_date")
