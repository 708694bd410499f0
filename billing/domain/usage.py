"""What a rating run rates, up to when, and under which key (pure; ``billing.ops.rating`` runs it).

Usage is rated "before midnight" of a bill date (``midnight``), or before a UTI run's Process
Now. Each item's records go to one charge keyed ``use:{item}:{bill date}`` or
``uti:{item}:{process now}`` (``billing.domain.charge_keys``); the database builds the key
itself from ``RatingScope.key_parts``, so it is the same string as ``RatingScope.key_for``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from billing.domain import charge_keys
from billing.domain.charge_keys import KeyKind
from billing.domain.enums import ItemType
from billing.domain.pricing import UNIT_PRICED_MODELS, PricePlan


@dataclass(frozen=True)
class RatingScope:
    """Whose usage to rate, up to when, and under which key the charges go.

    ``key_prefix`` is the key's kind (``KeyKind.USAGE`` or ``KeyKind.UTI``, or their text).
    """

    account_ids: Sequence[int]
    cutoff: datetime
    key_prefix: str
    bill_on: date
    item_types: tuple[ItemType, ...]
    immediate: bool = False

    @property
    def key_kind(self) -> KeyKind:
        return KeyKind(self.key_prefix)

    @property
    def keyed_on(self) -> date:
        """The key's date: the bill date, or the cut-off (date and time) of an immediate run."""
        return self.cutoff if self.immediate else self.bill_on

    @property
    def key_parts(self) -> tuple[str, str]:
        """The key's constant parts around the item id: ``("use:", ":2027-02-01")``."""
        return charge_keys.rated_key_parts(self.key_kind, self.keyed_on)

    @property
    def key_suffix(self) -> str:
        """The key's last field: ``2027-02-01``, or ``2027-01-12T12:00:00`` for UTI."""
        return self.keyed_on.isoformat()

    @property
    def key_pattern(self) -> str:
        """A SQL ``LIKE`` pattern for the keys of every item of this run."""
        return charge_keys.like_rated(self.key_kind, self.keyed_on)

    def key_for(self, item_id: int) -> str:
        """The charge key of an item's usage in this run."""
        return charge_keys.rated_key(self.key_kind, item_id, self.keyed_on)


def uti_scope(account_ids: Sequence[int], process_now: datetime) -> RatingScope:
    """The rating scope of a UTI run: usage before Process Now, billed from its date, at once."""
    return RatingScope(
        account_ids=list(account_ids),
        cutoff=process_now,
        key_prefix=KeyKind.UTI,
        bill_on=process_now.date(),
        item_types=(ItemType.UTI,),
        immediate=True,
    )


def midnight(day: date) -> datetime:
    """The first instant of ``day``: usage "before midnight" of the run date."""
    return datetime.combine(day, time.min)


def as_date(value: datetime | date | str) -> date:
    """The day of a timestamp as the database returns it (a datetime, a date or ISO text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.date() if isinstance(value, datetime) else value


def with_price_override(plan: PricePlan, override: Decimal | None) -> PricePlan:
    """The plan an item's usage is rated with: its price override replaces a unit price."""
    if override is not None and plan.model in UNIT_PRICED_MODELS:
        return dataclasses.replace(plan, unit_price=override)
    return plan
