"""payments: SEPA files and their entries, account dunning state

Revision ID: 0003_payments
Revises: 0002_revrec
"""

import sqlalchemy as sa
from alembic import op

import billing.store.types

revision = "0003_payments"
down_revision = "0002_revrec"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "pain.008.001.02",
                "pain.001.001.03",
                name="paymentfilekind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("creditor_id", sa.String(length=35), nullable=False),
        sa.Column("msg_id", sa.String(length=35), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("transactions", sa.Integer(), nullable=False),
        sa.Column("control_sum", billing.store.types.Amount(precision=20, scale=6), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_files")),
        sa.UniqueConstraint(
            "creditor_id", "msg_id", name=op.f("uq_payment_files_creditor_id_msg_id")
        ),
    )
    op.create_index(op.f("ix_payment_files_as_of"), "payment_files", ["as_of"], unique=False)
    op.create_table(
        "account_dunning",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "dunning",
                "cleared",
                name="dunningstate",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("bill_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("cleared_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_dunning_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["bill_id"], ["bills.id"], name=op.f("fk_account_dunning_bill_id_bills")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_dunning")),
        sa.UniqueConstraint("account_id", name=op.f("uq_account_dunning_account_id")),
    )
    op.create_table(
        "payment_file_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("refund_id", sa.Integer(), nullable=True),
        sa.Column("end_to_end_id", sa.String(length=35), nullable=False),
        sa.CheckConstraint(
            "(payment_id IS NULL) <> (refund_id IS NULL)",
            name=op.f("ck_payment_file_entries_payment_or_refund"),
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["payment_files.id"],
            name=op.f("fk_payment_file_entries_file_id_payment_files"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_file_entries_payment_id_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_payment_file_entries_refund_id_refunds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_file_entries")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_payment_file_entries_payment_id")),
        sa.UniqueConstraint("refund_id", name=op.f("uq_payment_file_entries_refund_id")),
    )
    op.create_index(
        op.f("ix_payment_file_entries_file_id"),
        "payment_file_entries",
        ["file_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_file_entries_file_id"), table_name="payment_file_entries")
    op.drop_table("payment_file_entries")
    op.drop_table("account_dunning")
    op.drop_index(op.f("ix_payment_files_as_of"), table_name="payment_files")
    op.drop_table("payment_files")
