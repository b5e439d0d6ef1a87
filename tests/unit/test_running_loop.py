"""The pinned running-loop lookup answers exactly what asyncio's own would, in every thread and loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from shared import running_loop


@pytest.fixture(autouse=True)
def _unpinned() -> Iterator[None]:
    yield
    running_loop.unpin_running_loop()


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_pinned_lookup_returns_the_running_loop_and_asyncio_works_on_it(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> tuple[bool, bool, bool]:
        pinned = running_loop.pin_running_loop()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int] = asyncio.Queue()
        queue.put_nowait(7)
        got = await asyncio.wait_for(queue.get(), 1)
        async with asyncio.timeout(1):
            await asyncio.sleep(0.001)
        same = asyncio.get_running_loop() is loop and asyncio.events._get_running_loop() is loop
        return pinned, same, got == 7

    pinned, same, queue_ok = run(main())
    assert pinned == running_loop.NEEDED
    assert same and queue_ok


def test_other_threads_and_later_loops_are_not_given_the_pinned_loop() -> None:
    seen: dict[str, object] = {}

    def in_thread() -> None:
        seen["thread_lookup"] = asyncio.events._get_running_loop()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            seen["thread_raises"] = True

    async def first() -> asyncio.AbstractEventLoop:
        running_loop.pin_running_loop()
        await asyncio.to_thread(in_thread)  # a thread with no loop of its own, and the pinned loop's context
        return asyncio.get_running_loop()

    first_loop = asyncio.run(first())
    assert seen == {"thread_lookup": None, "thread_raises": True}

    # the pinned loop has stopped (never unpinned): a new loop in the same thread is found, and outside any
    # loop the lookup says there is none
    async def second() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    second_loop = asyncio.run(second())
    assert second_loop is not first_loop
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert asyncio.events._get_running_loop() is None


def test_unpin_restores_asyncios_own_lookup() -> None:
    original = asyncio.get_running_loop

    async def main() -> None:
        running_loop.pin_running_loop()

    asyncio.run(main())
    running_loop.unpin_running_loop()
    assert asyncio.get_running_loop is original
    assert asyncio.events.get_running_loop is original
