"""payments: collect_on, a direct debit's collection date (the ReqdColltnDt of its file)

The invoice prints it as the SEPA pre-notification, the date of the file, not a second
computation of it.

Revision ID: 0005_payment_collect_on
Revises: 0004_product_names
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_payment_collect_on"
down_revision = "0004_product_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("collect_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("collect_on")
