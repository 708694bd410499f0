"""Usage priced by range: which records a usage charge prices, without a mark on each record.

Rating used to write every record it priced (``status = collected`` and the charge's key): at
1,000,000 accounts x 10 events, 6 million row updates, 91 s of a bill day. Now a usage charge
names its records by range, in three columns written with the charge itself:

- ``usage_through_id``: the *watermark*, the highest usage record id the rating could see;
- ``usage_since`` / ``usage_before``: the stamps ``[since, before)`` it rated (``since`` None:
  no lower bound, as a UTI run rates everything before its Process Now).

A record is priced by the first charge of its item, in (``usage_through_id``, ``usage_before``)
order, whose range holds it (``COVERS``); records ``held`` are priced by none, and records
rated before watermarks (``collected``) by the charge their ``charge_key`` names
(``LINK``). Rating prices exactly the records no earlier charge holds
(``billing.ops.rating.uncovered``), so each record is in one charge, and ``LINK`` finds it
again.

This is exact only if every record with an id up to a watermark was visible when the watermark
was read. On SQLite the one writer makes ids grow in commit order. On PostgreSQL ids come from
a sequence, so two loads could commit out of order; migration 0011 adds a statement trigger
that takes a transaction advisory lock (``INGEST_LOCK``) before any insert into
``usage_records``, so loads of usage run one at a time and take their ids in commit order (a
seed that sets ids itself holds ``LOCK TABLE ... EXCLUSIVE``, which orders them the same way).
Billing never waits for it: it reads, and a load only waits for another load.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from billing.store.models import UsageRecord, UsageStatus

INGEST_LOCK = "hashtext(current_schema() || '.usage_records')"
"""SQL: the advisory lock key loads of usage serialize on (PostgreSQL), one per schema."""

COVERS = """
    k.contract_item_id = {r}.contract_item_id
    AND k.usage_through_id >= {r}.id
    AND k.usage_before > {r}.occurred_at
    AND (k.usage_since IS NULL OR k.usage_since <= {r}.occurred_at)
"""
"""SQL: charge ``k`` has usage record ``{r}`` in its range (``{r}`` is the record's alias)."""

LINK = f"""
SELECT r.id AS usage_id, r.quantity, r.contract_item_id,
       COALESCE(legacy.id, CASE WHEN r.status = 'pending' THEN (
           SELECT k.id FROM charges AS k
           WHERE {COVERS.format(r="r")}
           ORDER BY k.usage_through_id, k.usage_before, k.id
           LIMIT 1
       ) END) AS charge_id
FROM usage_records AS r
LEFT JOIN charges AS legacy ON r.status = 'collected' AND legacy.charge_key = r.charge_key
WHERE r.status <> 'held'
"""
"""SQL: every usage record that is not held, with the id of the charge that prices it (NULL:
not rated yet). ``SELECT ... FROM ({LINK}) AS links WHERE charge_id = :id`` lists a charge's
records."""


def watermark(session: Session) -> int:
    """The highest usage record id this transaction sees (0 when there is none): every record
    with an id up to it is visible, so a charge rated up to it misses none below it."""
    return int(session.scalar(select(func.coalesce(func.max(UsageRecord.id), 0))) or 0)


TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION usage_records_in_commit_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({INGEST_LOCK});
    RETURN NULL;
END
$$
"""
TRIGGER = """
CREATE TRIGGER usage_records_in_commit_order
BEFORE INSERT ON usage_records
FOR EACH STATEMENT EXECUTE FUNCTION usage_records_in_commit_order()
"""
"""PostgreSQL: loads of usage take their ids one load at a time, in commit order."""

EARLIER = """
    (k.usage_through_id < {c}.usage_through_id
     OR (k.usage_through_id = {c}.usage_through_id
         AND (k.usage_before < {c}.usage_before
              OR (k.usage_before = {c}.usage_before AND k.id < {c}.id))))
"""
"""SQL: charge ``k`` comes before charge ``{c}`` in the order ``LINK`` picks the first in."""

PRICED_QUANTITY = f"""
    COALESCE((
        SELECT SUM(r.quantity) FROM usage_records AS r
        WHERE r.contract_item_id = {{c}}.contract_item_id
          AND r.status = 'pending'
          AND r.id <= {{c}}.usage_through_id
          AND r.occurred_at < {{c}}.usage_before
          AND ({{c}}.usage_since IS NULL OR r.occurred_at >= {{c}}.usage_since)
          AND NOT EXISTS (
              SELECT 1 FROM charges AS k WHERE {COVERS.format(r="r")} AND {EARLIER}
          )
    ), 0)
    + COALESCE((
        SELECT SUM(r.quantity) FROM usage_records AS r
        WHERE r.status = 'collected' AND r.charge_key = {{c}}.charge_key
    ), 0)
"""
"""SQL: the quantity of the usage records charge ``{c}`` prices, as ``LINK`` assigns them (by
range, or by key for records rated before ranges): ``PRICED_QUANTITY.format(c="c")``."""


def usage_marks(session: Session | Connection) -> dict[str, tuple[UsageStatus, str | None]]:
    """Each usage record's state, by external id, as a per-record mark used to say it:
    ``collected`` with the key of the charge that prices it (``LINK``), ``pending`` (no charge
    yet) or ``held``; for ``billing status``, the checks' reports and the tests."""
    rows = session.execute(
        text(
            f"SELECT u.external_id, u.status, c.charge_key FROM usage_records AS u "
            f"LEFT JOIN ({LINK}) AS links ON links.usage_id = u.id "
            f"LEFT JOIN charges AS c ON c.id = links.charge_id"
        )
    ).all()
    marks: dict[str, tuple[UsageStatus, str | None]] = {}
    for external_id, status, key in rows:
        if status == UsageStatus.HELD.value:
            marks[external_id] = (UsageStatus.HELD, None)
        elif key is None:
            marks[external_id] = (UsageStatus.PENDING, None)
        else:
            marks[external_id] = (UsageStatus.COLLECTED, key)
    return marks
