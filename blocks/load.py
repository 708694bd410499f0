"""The one block loader: a missing block means "use the defaults", nothing else does.

``load_block(kind, name, default)`` is how every flow, ``blocks/register.py`` and
``scripts/server.py`` read a block. It falls back to ``default()`` only when no block
document of that name exists (or no name is given). A stored block that fails validation, or
a server that does not answer, raises: a configuration error is never a reason to run against
another database or send e-mails over a plain-text SMTP server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound


class BlockNotUsable(RuntimeError):
    """A stored block exists but cannot be used (it fails validation, or the server failed):
    the run stops here rather than fall back to another database or a plain-text SMTP."""


B = TypeVar("B", bound=Block)


def load_block(kind: type[B], name: str | None, default: Callable[[], B] | None = None) -> B | None:
    """The block ``name`` of type ``kind``, or ``default()`` (None without one) when no block
    document of that name exists or no name is given.

    Anything else raises ``BlockNotUsable`` naming the block and why. Prefect's
    ``Block.load`` raises ``ValueError`` both for a missing document (caused by
    ``ObjectNotFound``) and for one that fails validation; only the first is "missing". A
    server that does not answer raises its own error (``httpx`` or ``RuntimeError``), which
    is passed on as it is: no default for that either.
    """
    if not name:
        return default() if default is not None else None
    try:
        return kind.load(name)
    except ValueError as error:
        if isinstance(error.__cause__, ObjectNotFound):
            return default() if default is not None else None
        raise BlockNotUsable(
            f"the {kind.get_block_type_name()} block {name!r} cannot be used: {error}"
        ) from error


def require_block(kind: type[B], name: str) -> B:
    """The block ``name`` of type ``kind``; ``BlockNotUsable`` when there is none either."""
    block = load_block(kind, name)
    if block is None:
        raise BlockNotUsable(f"there is no {kind.get_block_type_name()} block {name!r}")
    return block
