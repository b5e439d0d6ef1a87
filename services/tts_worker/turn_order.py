"""One turn's segments synthesised one after another on a CPU-bound local voice.

A reply's first segment is what the caller waits for; its second arrives a moment later. On a local voice
(piper, Kokoro: ``max_parallel`` > 1 so that two calls can overlap) both would run at once on the same cores,
and the first would take up to twice as long (turn-taking benchmark: 110-190 ms for five words instead of
~90). The second has the first segment's playing time (a second or more) to be ready, so it waits. Other
calls' segments still run beside it, and a network voice (no ``max_parallel``) is not held at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class TurnOrder:
    def __init__(self) -> None:
        self._locks: dict[tuple[str, int | None], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, call_id: str, turn_id: int | None) -> AsyncIterator[None]:
        """Held while one segment of ``(call_id, turn_id)`` is synthesised; the next waits, in arrival order."""
        key = (call_id, turn_id)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
