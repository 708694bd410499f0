"""The one block loader: a missing block means "use the defaults", nothing else does.

``load_block(kind, name, default)`` is how every flow, ``blocks/register.py`` and
``scripts/server.py`` read a block. It falls back to ``default()`` only when no block
document of that name exists (or no name is given). A stored block that fails validation, or
a server that does not answer, raises ``BlockNotUsable`` naming the block: a configuration
error is never a reason to run against another database or send e-mails over a plain-text
SMTP server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import httpx
from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound
from pydantic import ValidationError


class BlockNotUsable(RuntimeError):
    """A stored block exists but cannot be used (it fails validation, or the server failed):
    the run stops here rather than fall back to another database or a plain-text SMTP."""


B = TypeVar("B", bound=Block)


def load_block(kind: type[B], name: str | None, default: Callable[[], B] | None = None) -> B | None:
    """The block ``name`` of type ``kind``, or ``default()`` (None without one) when no block
    document of that name exists or no name is given.

    Anything else raises ``BlockNotUsable`` naming the block and why. Prefect's
    ``Block.load`` raises ``ValueError`` (caused by ``ObjectNotFound``) for a missing
    document, ``RuntimeError`` (caused by pydantic's ``ValidationError``) for one that fails
    validation, and the client's ``httpx`` error when the server does not answer or refuses:
    only the first means "missing".
    """
    if not name:
        return default() if default is not None else None
    try:
        return kind.load(name)
    except ValueError as error:
        if isinstance(error.__cause__, ObjectNotFound):
            return default() if default is not None else None
        raise _not_usable(kind, name, error) from error
    except (RuntimeError, httpx.HTTPError) as error:
        raise _not_usable(kind, name, error) from error


def _not_usable(kind: type[Block], name: str, error: BaseException) -> BlockNotUsable:
    why = str(error) or type(error).__name__
    if isinstance(error.__cause__, ValidationError):
        why = f"it fails validation: {error.__cause__}"
    elif isinstance(error, httpx.HTTPError):
        why = f"the Prefect server did not answer: {type(error).__name__}: {error}"
    return BlockNotUsable(f"the {kind.get_block_type_name()} block {name!r} cannot be used: {why}")


def require_block(kind: type[B], name: str) -> B:
    """The block ``name`` of type ``kind``; ``BlockNotUsable`` when there is none either."""
    block = load_block(kind, name)
    if block is None:
        raise BlockNotUsable(f"there is no {kind.get_block_type_name()} block {name!r}")
    return block
