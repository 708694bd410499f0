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
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_usage_records_usagestatus"), "usage_records", type_="check")
        listed = ", ".join(f"'{v}'" for v in new)
        op.create_check_constraint(
            op.f("ck_usage_records_usagestatus"), "usage_records", f"status IN ({listed})"
        )
        return
    # SQLite cannot alter a CHECK, and alembic's copy and move rewrites the table with its
    # constraints in an arbitrary order (a fresh store would differ from another). The CHECK's
    # text is edited in the schema instead, SQLite's documented way to change a constraint
    # that leaves the stored rows as they are (https://sqlite.org/lang_altertable.html).
    conn = op.get_bind()
    before, after = _check_sql(old), _check_sql(new)
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?)"
        " WHERE type = 'table' AND name = 'usage_records' AND instr(sql, ?) > 0",
        (before, after, before),
    )
    conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")
    found = conn.exec_driver_sql(
        "SELECT instr(sql, ?) FROM sqlite_master WHERE type = 'table' AND name = 'usage_records'",
        (after,),
    ).scalar_one()
    if not found:
        raise RuntimeError(f"usage_records: its status CHECK is not {before!r}")


def _check_sql(values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{v}'" for v in values)
    return f"CONSTRAINT ck_usage_records_usagestatus CHECK (status IN ({listed}))"
