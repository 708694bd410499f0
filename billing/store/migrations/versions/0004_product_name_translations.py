"""products: name_translations, the product's name per language for the invoices

Revision ID: 0004_product_names
Revises: 0003_payments
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_product_names"
down_revision = "0003_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("name_translations", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_column("name_translations")
