"""Run a blocking generator (a local model) in a thread and consume it as an async iterator.

Local providers (whisper, llama.cpp, piper) are CPU-bound C code that releases the GIL; a thread keeps the
event loop free. Cancelling the consumer sets a flag the generator is polled against, so a barge-in stops
the model between tokens instead of letting it run to the end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


async def iterate_in_thread(make: Callable[[threading.Event], Iterator[T]]) -> AsyncIterator[T]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    cancelled = threading.Event()

    def produce() -> None:
        try:
            for item in make(cancelled):
                if cancelled.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    worker = threading.Thread(target=produce, name="provider", daemon=True)
    worker.start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        cancelled.set()
