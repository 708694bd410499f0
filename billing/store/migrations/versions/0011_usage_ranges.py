"""usage priced by range: a usage charge names its records by watermark and stamps

Rating stops writing each usage record (``billing.store.usage``):
- ``charges.usage_through_id``, ``usage_since``, ``usage_before``: the range of records a usage
  charge prices; ``bill_units.usage_through_id``: the watermark of the unit's last closed
  cycle (late usage is looked for above it);
- indexes ``ix_usage_item_id`` (an item's records above a watermark) and
  ``ix_charges_item_usage`` (an item's usage charges, partial);
- PostgreSQL: a statement trigger that makes loads of usage take their ids in commit order.

Records rated before keep ``status = collected`` and their ``charge_key``: billed charges keep
pricing exactly them. A usage charge still ``calculated`` (not billed yet) may be re-priced by
its next rating, which counts by range, so it gets its range here (its records' highest id,
its key's cut-off) and its records go back to ``pending``.

Downgrade marks every record a range prices ``collected`` with its charge's key again, then
drops the columns.

Revision ID: 0011_usage_ranges
Revises: 0010_charges_are_lines
"""

from datetime import datetime, time

import sqlalchemy as sa
from alembic import op

from billing.domain.charge_keys import KeyKind, parse_key
from billing.store.usage import LINK, TRIGGER, TRIGGER_FUNCTION

revision = "0011_usage_ranges"
down_revision = "0010_charges_are_lines"
branch_labels = None
depends_on = None

PARTIAL = sa.text("usage_through_id IS NOT NULL")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":  # nullable columns SQLite adds in place
        for column in ("usage_through_id INTEGER", "usage_since DATETIME", "usage_before DATETIME"):
            op.execute(f"ALTER TABLE charges ADD COLUMN {column}")
        op.execute("ALTER TABLE bill_units ADD COLUMN usage_through_id INTEGER")
    else:
        op.add_column("charges", sa.Column("usage_through_id", sa.Integer(), nullable=True))
        op.add_column("charges", sa.Column("usage_since", sa.DateTime(), nullable=True))
        op.add_column("charges", sa.Column("usage_before", sa.DateTime(), nullable=True))
        op.add_column("bill_units", sa.Column("usage_through_id", sa.Integer(), nullable=True))
    op.create_index("ix_usage_item_id", "usage_records", ["contract_item_id", "id"])
    op.create_index(
        "ix_charges_item_usage",
        "charges",
        ["contract_item_id", "usage_through_id"],
        postgresql_where=PARTIAL,
        sqlite_where=PARTIAL,
    )
    if bind.dialect.name == "postgresql":
        op.execute(TRIGGER_FUNCTION)
        op.execute(TRIGGER)
    _range_unbilled_charges(bind)


def _cut_off(key: str) -> datetime | None:
    """The instant a rated key's rating stopped at: midnight of a bill date (``use``), the end
    of a late cycle (``lat``), a UTI run's Process Now (``uti``)."""
    parsed = parse_key(key)
    if parsed.kind not in (KeyKind.USAGE, KeyKind.UTI, KeyKind.LATE_USAGE) or parsed.on is None:
        return None
    on = parsed.on
    return on if isinstance(on, datetime) else datetime.combine(on, time.min)


def _range_unbilled_charges(bind: sa.Connection) -> None:
    rows = bind.execute(
        sa.text(
            "SELECT c.id, c.charge_key, MAX(r.id) AS through, MIN(r.occurred_at) AS first "
            "FROM charges AS c JOIN usage_records AS r ON r.charge_key = c.charge_key "
            "WHERE c.status = 'calculated' AND c.kind = 'usage' GROUP BY c.id, c.charge_key"
        )
    ).all()
    for charge_id, key, through, first in rows:
        before = _cut_off(key)
        if before is None:
            continue
        since = first if isinstance(first, datetime) else datetime.fromisoformat(str(first))
        bind.execute(
            sa.text(
                "UPDATE charges SET usage_through_id = :through, usage_since = :since, "
                "usage_before = :before WHERE id = :id"
            ),
            {"through": through, "since": since, "before": before, "id": charge_id},
        )
        bind.execute(
            sa.text(
                "UPDATE usage_records SET status = 'pending', charge_key = NULL "
                "WHERE charge_key = :key AND status = 'collected'"
            ),
            {"key": key},
        )


def downgrade() -> None:
    bind = op.get_bind()
    linked = bind.execute(
        sa.text(
            f"SELECT links.usage_id, c.charge_key FROM ({LINK}) AS links "
            "JOIN charges AS c ON c.id = links.charge_id "
            "JOIN usage_records AS u ON u.id = links.usage_id WHERE u.status = 'pending'"
        )
    ).all()
    for usage_id, key in linked:
        bind.execute(
            sa.text(
                "UPDATE usage_records SET status = 'collected', charge_key = :key WHERE id = :id"
            ),
            {"key": key, "id": usage_id},
        )
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS usage_records_in_commit_order ON usage_records")
        op.execute("DROP FUNCTION IF EXISTS usage_records_in_commit_order()")
    op.drop_index("ix_charges_item_usage", table_name="charges")
    op.drop_index("ix_usage_item_id", table_name="usage_records")
    # Unindexed, unconstrained columns: both databases drop them in place (SQLite 3.35+), where
    # a batch copy of the table would trip the foreign keys that point at it.
    for table, column in (
        ("bill_units", "usage_through_id"),
        ("charges", "usage_before"),
        ("charges", "usage_since"),
        ("charges", "usage_through_id"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
