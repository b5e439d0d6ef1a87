"""Live turns before post-call work on a local model that generates one reply at a time (``max_parallel``).

A call's reply (an ``LlmRequest``) must not wait behind the previous call's extraction (``post_call``): on a
single llama.cpp slot that cost a new call's first reply seconds. So post-call work runs only while no live
request is waiting or running on the provider, and a live request that arrives interrupts it (its stream is
closed, which stops llama.cpp between tokens); it starts again from scratch once the live turns are over.

So that an interrupted run never leaves a partial reply with the recorder, a post-call reply is held and sent
whole when it is complete (the recorder only reads the whole text). Preemption ends ``patience_s`` after the
request arrived: from then on it runs to the end like any request (live turns wait behind it, as before), so
a busy stream of calls can delay an extraction but never make it time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from shared.logging import get_logger

log = get_logger(__name__)


class LiveFirst:
    """The priority gate of one provider: live requests go first, post-call ones yield to them."""

    def __init__(self, patience_s: float) -> None:
        self.patience_s = patience_s
        self._live = 0  # live requests waiting or running on the provider
        self._idle = asyncio.Event()
        self._idle.set()
        self._yielding: set[asyncio.Task[None]] = set()  # post-call runs a live request may interrupt
        self._interrupted: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def live(self) -> AsyncIterator[None]:
        """Around a live request: interrupts the post-call work running or queued, holds new post-call work."""
        self._live += 1
        self._idle.clear()
        for task in self._yielding - self._interrupted:
            self._interrupted.add(task)
            task.cancel()
        try:
            yield
        finally:
            self._live -= 1
            if not self._live:
                self._idle.set()

    async def post_call(self, run: Callable[[], Awaitable[None]]) -> int:
        """``run()`` once no live request is about, again from the start each time one interrupts it, until it
        completes (or raises); how many times it was interrupted."""
        deadline = time.monotonic() + self.patience_s
        interrupted = 0
        while True:
            if time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), timeout=max(deadline - time.monotonic(), 0.0))
            task = asyncio.create_task(_call(run))
            if time.monotonic() < deadline:
                self._yielding.add(task)
            try:
                await task
                return interrupted
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if task not in self._interrupted or (current is not None and current.cancelling()):
                    raise  # cancelled from outside (barge-in on the worker, timeout, drain): not ours to retry
                interrupted += 1
                log.info("post_call_interrupted", times=interrupted)
            finally:
                self._yielding.discard(task)
                self._interrupted.discard(task)


async def _call(run: Callable[[], Awaitable[None]]) -> None:
    await run()
