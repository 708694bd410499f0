"""charges are the bill lines: drop bill_lines, each billed fact is written once (issue #20)

A bill line was a copy of its charge (description, period, quantity, unit price, net) plus
its position and VAT. The charge now carries what the line added: ``line_no`` (its position
on the bill), ``tax_rate``, ``tax`` and ``vat_category``, all NULL while it is on no bill and
all set once a bill takes it (``ck_charges_line_on_bill``); ``(bill_id, line_no)`` is unique.
The line's gross is ``amount + tax``. A line's description that differed from its charge's
(a correction names the invoice it corrects) is copied onto the charge.

``revenue_shares.bill_line_id`` becomes ``revenue_shares.charge_id`` (the line's charge).

Before anything is changed, the upgrade checks that every line is its charge: same bill,
period, quantity, unit price, net (the charge's amount) and tax category, a gross equal to
net plus tax, and no charge on a bill without a line. A database where that does not hold is
refused (``RuntimeError`` naming the first lines), so no fact is lost.

Downgrade is refused: the charges' descriptions before billing are not kept (a correction's
charge now holds its line's text), and nothing reads a ``bill_lines`` table any more.

Revision ID: 0010_charges_are_lines
Revises: 0009_late_usage
"""

import sqlalchemy as sa
from alembic import op

from billing.store.types import Amount

revision = "0010_charges_are_lines"
down_revision = "0009_late_usage"
branch_labels = None
depends_on = None

LINE_ON_BILL = (
    "(bill_id IS NULL AND line_no IS NULL AND tax_rate IS NULL AND tax IS NULL"
    " AND vat_category IS NULL) OR (bill_id IS NOT NULL AND line_no IS NOT NULL"
    " AND tax_rate IS NOT NULL AND tax IS NOT NULL AND vat_category IS NOT NULL)"
)
LINE_NO_POSITIVE = "line_no IS NULL OR line_no >= 1"

# Lines that are not a copy of their charge (or charges on a bill without a line).
MISMATCHED = """
SELECT l.id, l.charge_id FROM bill_lines l JOIN charges c ON c.id = l.charge_id
 WHERE c.bill_id IS NULL OR c.bill_id <> l.bill_id
    OR c.period_start <> l.period_start OR c.period_end <> l.period_end
    OR c.quantity <> l.quantity OR c.unit_price <> l.unit_price OR c.amount <> l.net
    OR c.tax_category <> l.tax_category OR l.gross <> l.net + l.tax
UNION ALL
SELECT NULL, c.id FROM charges c
 WHERE c.bill_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM bill_lines l WHERE l.charge_id = c.id)
"""


def upgrade() -> None:
    conn = op.get_bind()
    wrong = conn.exec_driver_sql(MISMATCHED + " LIMIT 5").all()
    if wrong:
        shown = ", ".join(f"line {line} / charge {charge}" for line, charge in wrong)
        raise RuntimeError(
            "bill_lines: some lines are not a copy of their charge (or a billed charge has no"
            f" line), migration 0010 would lose them: {shown}"
        )
    if conn.dialect.name == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgresql()


def downgrade() -> None:
    raise NotImplementedError(
        "0010_charges_are_lines cannot be downgraded: bill_lines is gone and the charges"
        " billed since hold their lines; restore a backup taken before the upgrade instead"
    )


def _has_lines() -> bool:
    return op.get_bind().exec_driver_sql("SELECT 1 FROM bill_lines LIMIT 1").first() is not None


def _copy_lines() -> None:
    """Each line's position, VAT and description onto its charge (UPDATE ... FROM: PostgreSQL,
    and SQLite from 3.33). A new store has none: it writes nothing (its tests replay the
    rows a migration writes into emptied copies, tests/conftest.py)."""
    if not _has_lines():
        return
    op.execute(
        "UPDATE charges SET line_no = l.position, tax_rate = l.tax_rate, tax = l.tax,"
        " vat_category = l.vat_category, description = l.description"
        " FROM bill_lines l WHERE l.charge_id = charges.id"
    )


def _upgrade_postgresql() -> None:
    op.add_column("charges", sa.Column("line_no", sa.Integer(), nullable=True))
    op.add_column("charges", sa.Column("tax_rate", Amount(), nullable=True))
    op.add_column("charges", sa.Column("tax", Amount(), nullable=True))
    op.add_column("charges", sa.Column("vat_category", sa.String(length=2), nullable=True))
    _copy_lines()
    op.create_check_constraint(op.f("ck_charges_line_on_bill"), "charges", LINE_ON_BILL)
    op.create_check_constraint(op.f("ck_charges_line_no_positive"), "charges", LINE_NO_POSITIVE)
    # (bill_id, line_no) serves every lookup by bill the single-column index served
    op.create_index("ix_charges_bill_line", "charges", ["bill_id", "line_no"], unique=True)
    op.drop_index("ix_charges_bill_id", table_name="charges")

    op.add_column("revenue_shares", sa.Column("charge_id", sa.Integer(), nullable=True))
    if _has_lines():
        op.execute(
            "UPDATE revenue_shares SET charge_id = l.charge_id"
            " FROM bill_lines l WHERE l.id = revenue_shares.bill_line_id"
        )
    op.alter_column("revenue_shares", "charge_id", nullable=False)
    op.drop_constraint(
        op.f("uq_revenue_shares_bill_line_id_year_month"), "revenue_shares", type_="unique"
    )
    op.drop_constraint(
        op.f("fk_revenue_shares_bill_line_id_bill_lines"), "revenue_shares", type_="foreignkey"
    )
    op.drop_column("revenue_shares", "bill_line_id")
    op.create_foreign_key(
        op.f("fk_revenue_shares_charge_id_charges"),
        "revenue_shares",
        "charges",
        ["charge_id"],
        ["id"],
    )
    op.create_unique_constraint(
        op.f("uq_revenue_shares_charge_id_year_month"),
        "revenue_shares",
        ["charge_id", "year", "month"],
    )
    op.drop_table("bill_lines")


def _upgrade_sqlite() -> None:
    # Not a batch: SQLite's copy and move rewrites a table with its constraints in an
    # arbitrary order (one fresh store would differ from another, and it would copy every
    # charge). Nullable columns SQLite adds in place; the CHECKs are written into the table's
    # definition once the rows satisfy them (below).
    op.execute("ALTER TABLE charges ADD COLUMN line_no INTEGER")
    op.execute("ALTER TABLE charges ADD COLUMN tax_rate BIGINT")
    op.execute("ALTER TABLE charges ADD COLUMN tax BIGINT")
    op.execute("ALTER TABLE charges ADD COLUMN vat_category VARCHAR(2)")
    _copy_lines()
    _add_checks_sqlite(
        "charges",
        [
            ("ck_charges_line_on_bill", LINE_ON_BILL),
            ("ck_charges_line_no_positive", LINE_NO_POSITIVE),
        ],
    )
    op.execute("CREATE UNIQUE INDEX ix_charges_bill_line ON charges (bill_id, line_no)")
    op.execute("DROP INDEX ix_charges_bill_id")

    # revenue_shares: its reference and unique key change; a small table, rebuilt.
    op.create_table(
        "revenue_shares_0010",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("revenue_month_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("month BETWEEN 1 AND 12", name="ck_revenue_shares_month_range"),
        sa.ForeignKeyConstraint(
            ["charge_id"], ["charges.id"], name="fk_revenue_shares_charge_id_charges"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name="fk_revenue_shares_product_id_products"
        ),
        sa.ForeignKeyConstraint(
            ["revenue_month_id"],
            ["revenue_months.id"],
            name="fk_revenue_shares_revenue_month_id_revenue_months",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_revenue_shares"),
        sa.UniqueConstraint(
            "charge_id", "year", "month", name="uq_revenue_shares_charge_id_year_month"
        ),
    )
    if _has_lines():
        op.execute(
            "INSERT INTO revenue_shares_0010 (id, charge_id, year, month, product_id, currency,"
            " amount, revenue_month_id)"
            " SELECT s.id, l.charge_id, s.year, s.month, s.product_id, s.currency, s.amount,"
            " s.revenue_month_id FROM revenue_shares s JOIN bill_lines l ON l.id = s.bill_line_id"
        )
    op.execute("DROP TABLE revenue_shares")  # its indexes with it
    op.execute("ALTER TABLE revenue_shares_0010 RENAME TO revenue_shares")
    op.execute("CREATE INDEX ix_revenue_shares_service_month ON revenue_shares (year, month)")
    op.execute("CREATE INDEX ix_revenue_shares_revenue_month ON revenue_shares (revenue_month_id)")
    op.execute("DROP TABLE bill_lines")


def _add_checks_sqlite(table: str, checks: list[tuple[str, str]]) -> None:
    """Append named CHECKs to ``table``'s definition, its rows having been checked first.

    SQLite cannot add a constraint to a table; its documented way that leaves the stored rows
    as they are is to edit the definition (https://sqlite.org/lang_altertable.html, as
    migration 0009 does), after making sure every row satisfies it.
    """
    conn = op.get_bind()
    for name, check in checks:
        bad = conn.exec_driver_sql(f"SELECT count(*) FROM {table} WHERE NOT ({check})").scalar()
        if bad:
            raise RuntimeError(f"{table}: {bad} row(s) break {name}, not added")
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    body = sql.rstrip()
    if not body.endswith(")"):
        raise RuntimeError(f"{table}: unexpected definition {sql[-40:]!r}")
    added = "".join(f", \n\tCONSTRAINT {name} CHECK ({check})" for name, check in checks)
    new_sql = body[:-1].rstrip() + added + "\n)"
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (new_sql, table)
    )
    conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")
    conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()  # the edited schema parses
