"""An idle timeout for a receive loop that costs nothing per message.

``asyncio.timeout`` around each ``receive()`` arms and cancels a loop timer per message: at 50 frames a
second per call that is a measurable share of the gateway's CPU. Here one timer is armed for the whole
loop; ``touch()`` only records the time, and when the timer fires it either re-arms itself for the new
deadline or, if nothing came for ``seconds``, cancels the loop's task, which then leaves the ``async with``
as ``TimeoutError`` (like ``asyncio.timeout``).
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class IdleTimeout:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._cancelling = 0

    def touch(self) -> None:
        """Something arrived: the idle clock starts again."""
        self._last = self._loop.time()

    async def __aenter__(self) -> IdleTimeout:
        self._task = asyncio.current_task()
        if self._task is None:
            raise RuntimeError("IdleTimeout must be used inside a task")
        self._cancelling = self._task.cancelling()
        self.touch()
        self._handle = self._loop.call_at(self._last + self.seconds, self._check)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.expired and exc_type is asyncio.CancelledError and self._task is not None:
            if self._task.uncancel() <= self._cancelling:
                raise TimeoutError(f"nothing received for {self.seconds:.0f}s") from exc

    def _check(self) -> None:
        due = self._last + self.seconds
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self._handle = None
        self.expired = True
        assert self._task is not None
        self._task.cancel()
