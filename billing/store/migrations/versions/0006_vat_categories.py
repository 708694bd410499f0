"""VAT categories: what a tax class is (S, Z or E, services or goods, the exemption's VATEX
code and reason), whether an account is a business, and the EN 16931 category each bill line
was billed with.

Existing data keeps what its documents said: a class whose every rate is zero becomes zero
rated (Z), the others standard (S); a line with a zero rate was printed Z, the others S. An
account with a VAT id is a business (the importer's default), the others consumers.

Revision ID: 0006_vat_categories
Revises: 0005_payment_collect_on
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_vat_categories"
down_revision = "0005_payment_collect_on"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tax_categories") as batch:
        batch.add_column(
            sa.Column("vat_category", sa.String(length=2), server_default="S", nullable=False)
        )
        batch.add_column(
            sa.Column("supply", sa.String(length=8), server_default="services", nullable=False)
        )
        batch.add_column(sa.Column("exemption_code", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("exemption_reason", sa.String(length=200), nullable=True))
    with op.batch_alter_table("bill_lines") as batch:
        batch.add_column(
            sa.Column("vat_category", sa.String(length=2), server_default="S", nullable=False)
        )
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column(
                "customer_type", sa.String(length=8), server_default="consumer", nullable=False
            )
        )
    op.execute(
        "UPDATE accounts SET customer_type = 'business' "
        "WHERE vat_id IS NOT NULL AND TRIM(vat_id) <> ''"
    )
    op.execute(
        "UPDATE tax_categories SET vat_category = 'Z' WHERE code IN "
        "(SELECT category_code FROM tax_rates GROUP BY category_code HAVING MAX(rate) = 0)"
    )
    op.execute("UPDATE bill_lines SET vat_category = 'Z' WHERE tax_rate = 0")


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("customer_type")
    with op.batch_alter_table("bill_lines") as batch:
        batch.drop_column("vat_category")
    with op.batch_alter_table("tax_categories") as batch:
        batch.drop_column("exemption_reason")
        batch.drop_column("exemption_code")
        batch.drop_column("supply")
        batch.drop_column("vat_category")
