"""charges: corrects_charge_id, the charge a correction (a change after the fact) corrects

A credit or adjustment written for a period already billed names the charge it corrects; the
bill line of the correction then names that charge's bill, and a credit note can later be
issued from it.

Revision ID: 0007_charge_corrects
Revises: 0006_vat_categories
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_charge_corrects"
down_revision = "0006_vat_categories"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Not a batch (SQLite's copy and move rewrites the table with its constraints in an
        # arbitrary order): SQLite adds a nullable column with its named reference in place.
        op.execute(
            "ALTER TABLE charges ADD COLUMN corrects_charge_id INTEGER"
            " CONSTRAINT fk_charges_corrects_charge_id_charges REFERENCES charges (id)"
        )
        return
    op.add_column("charges", sa.Column("corrects_charge_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        "fk_charges_corrects_charge_id_charges", "charges", "charges", ["corrects_charge_id"], ["id"]
    )


def downgrade() -> None:
    with op.batch_alter_table("charges") as batch:
        batch.drop_constraint("fk_charges_corrects_charge_id_charges", type_="foreignkey")
        batch.drop_column("corrects_charge_id")
