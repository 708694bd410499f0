"""Change the values an enum column's CHECK allows, in a migration, on both databases.

``billing.store.models._enum`` stores an enum as VARCHAR with a CHECK named
``ck_{table}_{enum}``. PostgreSQL drops and re-creates it. SQLite cannot alter a CHECK, and
alembic's copy and move rewrites the table with its constraints in an arbitrary order (a fresh
store would then differ from a migrated one), so the CHECK's text is edited in the schema
instead: SQLite's documented way to change a constraint that leaves the stored rows as they
are (https://sqlite.org/lang_altertable.html).
"""

from __future__ import annotations

from alembic import op


def set_check_values(
    table: str, column: str, name: str, old: tuple[str, ...], new: tuple[str, ...]
) -> None:
    """The CHECK ``name`` of ``table.column`` allows ``new`` instead of ``old``."""
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f(name), table, type_="check")
        op.create_check_constraint(op.f(name), table, f"{column} IN ({_listed(new)})")
        return
    conn = op.get_bind()
    before, after = _check_sql(name, column, old), _check_sql(name, column, new)
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?)"
        " WHERE type = 'table' AND name = ? AND instr(sql, ?) > 0",
        (before, after, table, before),
    )
    conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")
    found = conn.exec_driver_sql(
        "SELECT instr(sql, ?) FROM sqlite_master WHERE type = 'table' AND name = ?",
        (after, table),
    ).scalar_one()
    if not found:
        raise RuntimeError(f"{table}: its {column} CHECK is not {before!r}")


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _check_sql(name: str, column: str, values: tuple[str, ...]) -> str:
    return f"CONSTRAINT {name} CHECK ({column} IN ({_listed(values)}))"
