"""late usage: a price plan's lookback window, and usage held beyond it with its reason

``price_plans.late_usage_days``: late usage (its cycle already billed) up to this many days
old is billed on the next bill as a delta of its cycle; older usage is held, status ``held``
with ``usage_records.held_on`` and ``hold_reason`` (``billing.domain.late_usage``). Existing
plans get the default window, 90 days.

Revision ID: 0009_late_usage
Revises: 0008_credit_notes
"""

import sqlalchemy as sa
from alembic import op

from billing.store.enum_checks import set_check_values

revision = "0009_late_usage"
down_revision = "0008_credit_notes"
branch_labels = None
depends_on = None

OLD = ("pending", "collected")
NEW = ("pending", "collected", "held")


def upgrade() -> None:
    with op.batch_alter_table("price_plans") as batch:
        batch.add_column(
            sa.Column("late_usage_days", sa.Integer(), server_default="90", nullable=False)
        )
    _usage_columns(add=True)
    _status_values(OLD, NEW)


def downgrade() -> None:
    op.execute("UPDATE usage_records SET status = 'pending' WHERE status = 'held'")
    _status_values(NEW, OLD)
    _usage_columns(add=False)
    with op.batch_alter_table("price_plans") as batch:
        batch.drop_column("late_usage_days")


def _usage_columns(*, add: bool) -> None:
    if add and op.get_bind().dialect.name == "sqlite":
        # Nullable columns SQLite adds in place (no copy and move of the table).
        op.execute("ALTER TABLE usage_records ADD COLUMN held_on DATE")
        op.execute("ALTER TABLE usage_records ADD COLUMN hold_reason TEXT")
        return
    with op.batch_alter_table("usage_records") as batch:
        if add:
            batch.add_column(sa.Column("held_on", sa.Date(), nullable=True))
            batch.add_column(sa.Column("hold_reason", sa.Text(), nullable=True))
        else:
            batch.drop_column("hold_reason")
            batch.drop_column("held_on")


def _status_values(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    """The CHECK of ``usage_records.status`` allows ``new`` instead of ``old``."""
    set_check_values("usage_records", "status", "ck_usage_records_usagestatus", old, new)
