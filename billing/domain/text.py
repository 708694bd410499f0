"""Text that every store and every document can carry, and values quoted safely in messages.

PostgreSQL refuses NUL in text, no database stores a lone surrogate, XML 1.0 cannot hold most
control characters, and a line break in a name can become an e-mail header. Imported text is
therefore single-line printable Unicode: ``text_problem`` says what is wrong with a value.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be imported as text (a control character, a line break), or None."""
    found = _UNSAFE.search(value)
    if found is None:
        return None
    char = found.group()
    if char in "\r\n\x0b\x0c\x85\u2028\u2029":
        kind = "a line break"
    elif 0xD800 <= ord(char) <= 0xDFFF:
        kind = "an unpaired surrogate (not valid Unicode)"
    else:
        kind = "a control character"
    return f"contains {kind} (U+{ord(char):04X}) at position {found.start()}"


def storable(value: str) -> str:
    """``value`` with what no database can store replaced: NUL by U+2400, surrogates by U+FFFD."""
    return _UNSTORABLE.sub(lambda m: "\u2400" if m.group() == "\x00" else "\ufffd", value)


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message never repeats a huge value."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"
