"""The receive loops' idle timeout: one timer for the whole loop, yet exact about when it was idle."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.transports.idle_timeout import IdleTimeout


async def test_expires_when_nothing_arrives() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with IdleTimeout(0.1):
            await asyncio.sleep(5)
    assert 0.1 <= loop.time() - started < 0.3


async def test_touches_keep_it_alive_and_it_expires_counting_from_the_last_one() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with IdleTimeout(0.1) as idle:
            for _ in range(10):  # 0.3 s of traffic, never 0.1 s apart
                await asyncio.sleep(0.03)
                idle.touch()
            await asyncio.sleep(5)
    assert 0.4 <= loop.time() - started < 0.6
    assert idle.expired


async def test_a_loop_that_finishes_leaves_no_timer_behind() -> None:
    async with IdleTimeout(0.05) as idle:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the timer would have fired by now
    assert not idle.expired


async def test_an_outside_cancel_stays_a_cancel() -> None:
    async def loop_forever() -> None:
        async with IdleTimeout(10):
            await asyncio.sleep(5)

    task = asyncio.create_task(loop_forever())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
