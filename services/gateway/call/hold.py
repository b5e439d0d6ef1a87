"""The hold on a reply started at a pause, before the caller's turn ended (:mod:`.turn_taking`): the reply's
STT result is told as soon as it is known (the end-of-turn decision reads it), and the reply waits, recording
and playing nothing, until the hold opens (the turn ended at that pause) or its task is cancelled."""

from __future__ import annotations

import asyncio


class Hold:
    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._heard: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.turn_end = 0.0

    def open(self, turn_end: float) -> None:
        """The turn ended at this pause (``turn_end``, wall clock): the reply goes on."""
        self.turn_end = turn_end
        self._open.set()

    async def opened(self) -> float:
        """Wait until the turn has ended; its end (wall clock)."""
        await self._open.wait()
        return self.turn_end

    def heard(self, text: str | None) -> None:
        """What STT heard up to the pause (None: it failed, or the reply was dropped)."""
        if not self._heard.done():
            self._heard.set_result(text)

    async def transcript(self, timeout_s: float) -> str | None:
        """What STT heard up to the pause, once known; None when it is not known within ``timeout_s``."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._heard), timeout_s)
        except TimeoutError:
            return None
