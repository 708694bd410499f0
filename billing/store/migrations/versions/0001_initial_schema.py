"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

import billing.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address_line", sa.String(length=200), nullable=False),
        sa.Column("postal_code", sa.String(length=20), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("vat_id", sa.String(length=32), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "inactive",
                "closed",
                name="accountstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "payment_method",
            sa.Enum(
                "invoice",
                "card",
                "direct_debit",
                name="paymentmethod",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("mandate_ref", sa.String(length=35), nullable=True),
        sa.Column("mandate_date", sa.Date(), nullable=True),
        sa.Column("card_token", sa.String(length=64), nullable=True),
        sa.Column("payment_terms_days", sa.Integer(), nullable=False),
        sa.Column("balance", billing.store.types.Amount(), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.CheckConstraint(
            "payment_method != 'direct_debit' OR (iban IS NOT NULL AND mandate_ref IS NOT NULL)",
            name=op.f("ck_accounts_direct_debit_has_mandate"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("ref", name=op.f("uq_accounts_ref")),
    )
    op.create_table(
        "bill_series",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("next_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_bill_series")),
    )
    op.create_table(
        "rejected_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_usage")),
        sa.UniqueConstraint(
            "source", "row_number", name=op.f("uq_rejected_usage_source_row_number")
        ),
    )
    op.create_table(
        "tax_categories",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tax_categories")),
    )
    op.bulk_insert(
        sa.table("bill_series", sa.column("code"), sa.column("prefix"), sa.column("next_number")),
        [{"code": "INV", "prefix": "INV-", "next_number": 1}],
    )
    op.create_table(
        "bill_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("billing_day", sa.Integer(), nullable=False),
        sa.Column(
            "cycle",
            sa.Enum(
                "monthly",
                "quarterly",
                "yearly",
                name="cycle",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("next_bill_date", sa.Date(), nullable=False),
        sa.Column("last_bill_date", sa.Date(), nullable=True),
        sa.Column(
            "billing_state",
            sa.Enum(
                "ready",
                "in_progress",
                "failed",
                "billed",
                name="billingstate",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("series_code", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "billing_day BETWEEN 1 AND 31", name=op.f("ck_bill_units_billing_day_range")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_bill_units_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["series_code"],
            ["bill_series.code"],
            name=op.f("fk_bill_units_series_code_bill_series"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bill_units")),
    )
    with op.batch_alter_table("bill_units", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bill_units_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bill_units_next_bill_date"), ["next_bill_date"], unique=False
        )

    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("term_months", sa.Integer(), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("notice_days", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "ended",
                "cancelled",
                name="contractstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_contracts_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("ref", name=op.f("uq_contracts_ref")),
    )
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contracts_account_id"), ["account_id"], unique=False)

    op.create_table(
        "deferred_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "done",
                "failed",
                name="actionstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("done_on", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_deferred_actions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deferred_actions")),
        sa.UniqueConstraint("ref", name=op.f("uq_deferred_actions_ref")),
    )
    with op.batch_alter_table("deferred_actions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deferred_actions_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_deferred_actions_due_on"), ["due_on"], unique=False)

    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tax_category", sa.String(length=16), nullable=False),
        sa.Column("gl_account", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["tax_category"],
            ["tax_categories.code"],
            name=op.f("fk_products_tax_category_tax_categories"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("code", name=op.f("uq_products_code")),
    )
    op.create_table(
        "refunds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=96), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column(
            "method",
            sa.Enum(
                "invoice",
                "card",
                "direct_debit",
                name="paymentmethod",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("amount", billing.store.types.Amount(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("refunded_on", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "settled",
                "failed",
                name="paymentstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_refunds_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_refunds_idempotency_key")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_account_id"), ["account_id"], unique=False)

    op.create_table(
        "tax_rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("rate", billing.store.types.Amount(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_code"],
            ["tax_categories.code"],
            name=op.f("fk_tax_rates_category_code_tax_categories"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_rates")),
        sa.UniqueConstraint(
            "category_code",
            "country",
            "valid_from",
            name=op.f("uq_tax_rates_category_code_country_valid_from"),
        ),
    )
    op.create_table(
        "billing_issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("bill_unit_id", sa.Integer(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_billing_issues_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["bill_unit_id"],
            ["bill_units.id"],
            name=op.f("fk_billing_issues_bill_unit_id_bill_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_issues")),
    )
    with op.batch_alter_table("billing_issues", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_issues_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "bills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bill_key", sa.String(length=96), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("bill_unit_id", sa.Integer(), nullable=False),
        sa.Column("series_code", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("bill_no", sa.String(length=40), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "billed",
                "invoiced",
                name="billstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("bill_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("net", billing.store.types.Amount(), nullable=False),
        sa.Column("tax", billing.store.types.Amount(), nullable=False),
        sa.Column("gross", billing.store.types.Amount(), nullable=False),
        sa.Column("amount_paid", billing.store.types.Amount(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint("due_date >= bill_date", name=op.f("ck_bills_due_after_bill")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_bills_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["bill_unit_id"], ["bill_units.id"], name=op.f("fk_bills_bill_unit_id_bill_units")
        ),
        sa.ForeignKeyConstraint(
            ["series_code"], ["bill_series.code"], name=op.f("fk_bills_series_code_bill_series")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bills")),
        sa.UniqueConstraint("bill_key", name=op.f("uq_bills_bill_key")),
        sa.UniqueConstraint("series_code", "number", name=op.f("uq_bills_series_code_number")),
    )
    with op.batch_alter_table("bills", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bills_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bills_bill_date"), ["bill_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_bills_bill_unit_id"), ["bill_unit_id"], unique=False)

    op.create_table(
        "journal_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("gl_account", sa.String(length=16), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("debit", billing.store.types.Amount(), nullable=False),
        sa.Column("credit", billing.store.types.Amount(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("posted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_journal_entries_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
    )
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.create_index("ix_journal_period", ["year", "month"], unique=False)

    op.create_table(
        "price_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "model",
            sa.Enum(
                "recurring",
                "one_time",
                "per_unit",
                "graduated",
                "volume",
                "package",
                name="pricemodel",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "timing",
            sa.Enum(
                "advance",
                "arrears",
                name="timing",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=True,
        ),
        sa.Column(
            "proration",
            sa.Enum(
                "full",
                "by_day",
                "none",
                name="proration",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("unit_price", billing.store.types.Amount(), nullable=True),
        sa.Column("package_size", billing.store.types.Amount(), nullable=True),
        sa.Column("period_months", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_price_plans_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_plans")),
        sa.UniqueConstraint("code", name=op.f("uq_price_plans_code")),
    )
    op.create_table(
        "contract_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("price_plan_id", sa.Integer(), nullable=False),
        sa.Column(
            "item_type",
            sa.Enum(
                "recurring",
                "usage",
                "uti",
                "one_time",
                name="itemtype",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("quantity", billing.store.types.Amount(), nullable=False),
        sa.Column("price_override", billing.store.types.Amount(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("pending_cancel_date", sa.Date(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "cancelled",
                "ended",
                name="itemstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_contract_items_contract_id_contracts")
        ),
        sa.ForeignKeyConstraint(
            ["price_plan_id"],
            ["price_plans.id"],
            name=op.f("fk_contract_items_price_plan_id_price_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_items")),
        sa.UniqueConstraint("ref", name=op.f("uq_contract_items_ref")),
    )
    with op.batch_alter_table("contract_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contract_items_contract_id"), ["contract_id"], unique=False
        )

    op.create_table(
        "email_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bill_id", sa.Integer(), nullable=False),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "sending",
                "sent",
                "failed",
                name="outboxstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["bill_id"], ["bills.id"], name=op.f("fk_email_outbox_bill_id_bills")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_outbox")),
        sa.UniqueConstraint("bill_id", name=op.f("uq_email_outbox_bill_id")),
        sa.UniqueConstraint("message_id", name=op.f("uq_email_outbox_message_id")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=96), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("bill_id", sa.Integer(), nullable=True),
        sa.Column(
            "method",
            sa.Enum(
                "invoice",
                "card",
                "direct_debit",
                name="paymentmethod",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("amount", billing.store.types.Amount(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "settled",
                "failed",
                name="paymentstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payments_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["bill_id"], ["bills.id"], name=op.f("fk_payments_bill_id_bills")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payments_idempotency_key")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_account_id"), ["account_id"], unique=False)

    op.create_table(
        "price_tiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("price_plan_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("up_to", billing.store.types.Amount(), nullable=True),
        sa.Column("unit_price", billing.store.types.Amount(), nullable=False),
        sa.Column("flat_fee", billing.store.types.Amount(), nullable=False),
        sa.ForeignKeyConstraint(
            ["price_plan_id"],
            ["price_plans.id"],
            name=op.f("fk_price_tiers_price_plan_id_price_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_tiers")),
        sa.UniqueConstraint(
            "price_plan_id", "position", name=op.f("uq_price_tiers_price_plan_id_position")
        ),
    )
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("contract_item_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "quantity",
                "price",
                "swap",
                "termination",
                name="changekind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("new_quantity", billing.store.types.Amount(), nullable=True),
        sa.Column("new_price", billing.store.types.Amount(), nullable=True),
        sa.Column("new_price_plan_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "applied",
                "rejected",
                name="requeststatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("processed_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contract_item_id"],
            ["contract_items.id"],
            name=op.f("fk_change_requests_contract_item_id_contract_items"),
        ),
        sa.ForeignKeyConstraint(
            ["new_price_plan_id"],
            ["price_plans.id"],
            name=op.f("fk_change_requests_new_price_plan_id_price_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_requests")),
        sa.UniqueConstraint("ref", name=op.f("uq_change_requests_ref")),
    )
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_change_requests_contract_item_id"), ["contract_item_id"], unique=False
        )

    op.create_table(
        "charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_key", sa.String(length=96), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("bill_unit_id", sa.Integer(), nullable=False),
        sa.Column("contract_item_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "recurring",
                "usage",
                "one_time",
                "adjustment",
                name="chargekind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("bill_on", sa.Date(), nullable=False),
        sa.Column("quantity", billing.store.types.Amount(), nullable=False),
        sa.Column("unit_price", billing.store.types.Amount(), nullable=False),
        sa.Column("amount", billing.store.types.Amount(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tax_category", sa.String(length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "planned",
                "calculated",
                "open",
                "closed",
                "cancelled",
                name="chargestatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("bill_id", sa.Integer(), nullable=True),
        sa.Column("immediate", sa.Boolean(), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.CheckConstraint("period_start <= period_end", name=op.f("ck_charges_period_ordered")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_charges_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["bill_id"], ["bills.id"], name=op.f("fk_charges_bill_id_bills")),
        sa.ForeignKeyConstraint(
            ["bill_unit_id"], ["bill_units.id"], name=op.f("fk_charges_bill_unit_id_bill_units")
        ),
        sa.ForeignKeyConstraint(
            ["contract_item_id"],
            ["contract_items.id"],
            name=op.f("fk_charges_contract_item_id_contract_items"),
        ),
        sa.ForeignKeyConstraint(
            ["tax_category"],
            ["tax_categories.code"],
            name=op.f("fk_charges_tax_category_tax_categories"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charges")),
        sa.UniqueConstraint("charge_key", name=op.f("uq_charges_charge_key")),
    )
    with op.batch_alter_table("charges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_charges_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_charges_bill_id"), ["bill_id"], unique=False)
        batch_op.create_index(
            "ix_charges_unit_status_bill_on", ["bill_unit_id", "status", "bill_on"], unique=False
        )

    op.create_table(
        "bill_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bill_id", sa.Integer(), nullable=False),
        sa.Column("charge_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("quantity", billing.store.types.Amount(), nullable=False),
        sa.Column("unit_price", billing.store.types.Amount(), nullable=False),
        sa.Column("net", billing.store.types.Amount(), nullable=False),
        sa.Column("tax_category", sa.String(length=16), nullable=False),
        sa.Column("tax_rate", billing.store.types.Amount(), nullable=False),
        sa.Column("tax", billing.store.types.Amount(), nullable=False),
        sa.Column("gross", billing.store.types.Amount(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bill_id"], ["bills.id"], name=op.f("fk_bill_lines_bill_id_bills")
        ),
        sa.ForeignKeyConstraint(
            ["charge_id"], ["charges.id"], name=op.f("fk_bill_lines_charge_id_charges")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bill_lines")),
        sa.UniqueConstraint("charge_id", name=op.f("uq_bill_lines_charge_id")),
    )
    with op.batch_alter_table("bill_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bill_lines_bill_id"), ["bill_id"], unique=False)

    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("contract_item_id", sa.Integer(), nullable=False),
        sa.Column("quantity", billing.store.types.Amount(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "collected",
                name="usagestatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("charge_key", sa.String(length=96), nullable=True),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_usage_records_quantity_not_negative")),
        sa.ForeignKeyConstraint(
            ["charge_key"],
            ["charges.charge_key"],
            name=op.f("fk_usage_records_charge_key_charges"),
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.ForeignKeyConstraint(
            ["contract_item_id"],
            ["contract_items.id"],
            name=op.f("fk_usage_records_contract_item_id_contract_items"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("external_id", name=op.f("uq_usage_records_external_id")),
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_item_status_time", ["contract_item_id", "status", "occurred_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_usage_records_charge_key"), ["charge_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_records_charge_key"))
        batch_op.drop_index("ix_usage_item_status_time")

    op.drop_table("usage_records")
    with op.batch_alter_table("bill_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bill_lines_bill_id"))

    op.drop_table("bill_lines")
    with op.batch_alter_table("charges", schema=None) as batch_op:
        batch_op.drop_index("ix_charges_unit_status_bill_on")
        batch_op.drop_index(batch_op.f("ix_charges_bill_id"))
        batch_op.drop_index(batch_op.f("ix_charges_account_id"))

    op.drop_table("charges")
    with op.batch_alter_table("change_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_requests_contract_item_id"))

    op.drop_table("change_requests")
    op.drop_table("price_tiers")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_account_id"))

    op.drop_table("payments")
    op.drop_table("email_outbox")
    with op.batch_alter_table("contract_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_items_contract_id"))

    op.drop_table("contract_items")
    op.drop_table("price_plans")
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_journal_period")

    op.drop_table("journal_entries")
    with op.batch_alter_table("bills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bills_bill_unit_id"))
        batch_op.drop_index(batch_op.f("ix_bills_bill_date"))
        batch_op.drop_index(batch_op.f("ix_bills_account_id"))

    op.drop_table("bills")
    with op.batch_alter_table("billing_issues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_issues_account_id"))

    op.drop_table("billing_issues")
    op.drop_table("tax_rates")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_account_id"))

    op.drop_table("refunds")
    op.drop_table("products")
    with op.batch_alter_table("deferred_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deferred_actions_due_on"))
        batch_op.drop_index(batch_op.f("ix_deferred_actions_account_id"))

    op.drop_table("deferred_actions")
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contracts_account_id"))

    op.drop_table("contracts")
    with op.batch_alter_table("bill_units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bill_units_next_bill_date"))
        batch_op.drop_index(batch_op.f("ix_bill_units_account_id"))

    op.drop_table("bill_units")
    op.drop_table("tax_categories")
    op.drop_table("rejected_usage")
    op.drop_table("bill_series")
    op.drop_table("accounts")
