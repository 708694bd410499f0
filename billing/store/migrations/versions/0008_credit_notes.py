"""credit notes: a CN series, bills.type_code (380 invoice, 381 credit note) and bills.note

A correction that lowers what the customer owes is issued as a credit note: its own gapless
series ``CN``, the document type 381 (UNTDID 1001) in its CII, and, when issued by hand, the
reason given (``billing credit-note --reason``), printed on it. Every existing bill is an
invoice (380), negative ones included: an issued document is never changed.

Revision ID: 0008_credit_notes
Revises: 0007_charge_corrects
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_credit_notes"
down_revision = "0007_charge_corrects"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # In place, like 0007: a batch rewrite would order the table's constraints arbitrarily.
        op.execute("ALTER TABLE bills ADD COLUMN type_code VARCHAR(3) DEFAULT '380' NOT NULL")
        op.execute("ALTER TABLE bills ADD COLUMN note TEXT")
    else:
        op.add_column(
            "bills",
            sa.Column("type_code", sa.String(length=3), server_default="380", nullable=False),
        )
        op.add_column("bills", sa.Column("note", sa.Text(), nullable=True))
    op.bulk_insert(
        sa.table("bill_series", sa.column("code"), sa.column("prefix"), sa.column("next_number")),
        [{"code": "CN", "prefix": "CN-", "next_number": 1}],
    )


def downgrade() -> None:
    op.execute("DELETE FROM bill_series WHERE code = 'CN'")
    with op.batch_alter_table("bills") as batch:
        batch.drop_column("note")
        batch.drop_column("type_code")
