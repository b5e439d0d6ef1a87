"""Is this parsed JSON storable and serialisable? JSON may carry lone surrogates (``"\\ud800"``) that no UTF-8
encoder accepts, and ``NaN``/``Infinity``/``1e999`` that no JSON encoder writes back: found where input enters,
they become a precise 4xx or close code instead of an event that can never be published, or a 500."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

SURROGATE = re.compile("[\ud800-\udfff]")
Loc = tuple[str | int, ...]


def unstorable(value: Any) -> Iterator[tuple[Loc, str, str]]:
    """Every lone surrogate (in keys or strings) and non-finite number in ``value``, depth first, as
    ``(path, kind, message)``; iterative, so a deeply nested body cannot exhaust the stack."""
    stack: list[tuple[Loc, Any]] = [((), value)]
    while stack:
        loc, item = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                yield loc, "string_unicode", "Input should be a valid string: it contains a lone surrogate"
        elif isinstance(item, float):
            if not math.isfinite(item):
                yield loc, "finite_number", "Input should be a finite number (no NaN or Infinity)"
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                if isinstance(key, str) and SURROGATE.search(key):
                    yield (*loc, key), "string_unicode", "Input should be a valid key: it contains a lone surrogate"
                stack.append(((*loc, key), child))
        elif isinstance(item, list):
            stack.extend(((*loc, i), child) for i, child in reversed(list(enumerate(item))))


def first_unstorable(value: Any) -> tuple[Loc, str] | None:
    """The path of the first unstorable value and what is wrong there; None when everything is storable."""
    for loc, _kind, msg in unstorable(value):
        return loc, msg
    return None


def safe_text(text: str) -> str:
    """``text`` with any lone surrogate written as its escape (``\\ud800``), so it can be encoded."""
    return SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
