"""Run summaries that add up: batches and passes merge their results field by field."""

from __future__ import annotations

from dataclasses import fields, replace
from decimal import Decimal
from typing import Any, Self, cast


def _merged(mine: Any, theirs: Any) -> Any:
    if isinstance(mine, bool):
        return mine or theirs
    if isinstance(mine, int | Decimal):
        return mine + theirs
    if isinstance(mine, set):
        return mine | theirs
    if isinstance(mine, list):
        return mine + theirs
    if isinstance(mine, dict):
        out = dict(mine)
        for key, value in theirs.items():
            numeric = isinstance(value, int | Decimal) and not isinstance(value, bool)
            out[key] = out[key] + value if numeric and key in out else value
        return out
    return theirs


class Mergeable:
    """Mixin for result dataclasses: counts and amounts add up, maps and sets unite.

    In a map, numbers under the same key add up (totals per currency, counts per kind);
    other values (a failure's reason) are kept from the later result.
    """

    def merge(self, other: Self) -> Self:
        this: Any = self  # a dataclass instance: the mixin is only used on dataclasses
        merged = {
            f.name: _merged(getattr(this, f.name), getattr(other, f.name)) for f in fields(this)
        }
        return cast(Self, replace(this, **merged))
