"""revenue recognition: revenue months and revenue shares

Revision ID: 0002_revrec
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import billing.store.types

revision = "0002_revrec"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revenue_months",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "posted",
                name="revenuemonthstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("posted_on", sa.Date(), nullable=True),
        sa.CheckConstraint("month BETWEEN 1 AND 12", name=op.f("ck_revenue_months_month_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revenue_months")),
        sa.UniqueConstraint("year", "month", name=op.f("uq_revenue_months_year_month")),
    )
    op.create_table(
        "revenue_shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bill_line_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", billing.store.types.Amount(), nullable=False),
        sa.Column("revenue_month_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("month BETWEEN 1 AND 12", name=op.f("ck_revenue_shares_month_range")),
        sa.ForeignKeyConstraint(
            ["bill_line_id"],
            ["bill_lines.id"],
            name=op.f("fk_revenue_shares_bill_line_id_bill_lines"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_revenue_shares_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["revenue_month_id"],
            ["revenue_months.id"],
            name=op.f("fk_revenue_shares_revenue_month_id_revenue_months"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revenue_shares")),
        sa.UniqueConstraint(
            "bill_line_id",
            "year",
            "month",
            name=op.f("uq_revenue_shares_bill_line_id_year_month"),
        ),
    )
    with op.batch_alter_table("revenue_shares", schema=None) as batch_op:
        batch_op.create_index("ix_revenue_shares_service_month", ["year", "month"], unique=False)
        batch_op.create_index("ix_revenue_shares_revenue_month", ["revenue_month_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("revenue_shares", schema=None) as batch_op:
        batch_op.drop_index("ix_revenue_shares_revenue_month")
        batch_op.drop_index("ix_revenue_shares_service_month")

    op.drop_table("revenue_shares")
    op.drop_table("revenue_months")
