"""A cheaper ``asyncio.get_running_loop()`` for a service's main loop on CPython 3.11.

On 3.11 every lookup of the running loop makes a ``getpid()`` system call (to notice a fork), and asyncio
looks it up on every ``sleep``, queue ``get``, lock, event, ``timeout`` and ``create_task``: at 50 calls that
was 13 % of the gateway's CPU on a VM, where system calls are dear. CPython 3.12 dropped the check
(python/cpython#100363). A service never forks once its loop runs, so while the loop is pinned here the
lookup from the loop's own thread is a comparison instead; any other thread, or no pinned loop, falls back
to asyncio's own lookup. Nothing changes on 3.12 and later.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import sys
import threading
from collections.abc import Callable

_c_get_running_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.events.get_running_loop
_c_get_running_loop_or_none: Callable[[], asyncio.AbstractEventLoop | None] = asyncio.events._get_running_loop
_pinned: tuple[asyncio.AbstractEventLoop, int] | None = None
NEEDED = sys.version_info < (3, 12)


def _get_running_loop_or_none() -> asyncio.AbstractEventLoop | None:
    pinned = _pinned
    if pinned is not None and pinned[1] == threading.get_ident() and pinned[0].is_running():
        return pinned[0]
    return _c_get_running_loop_or_none()


def _get_running_loop() -> asyncio.AbstractEventLoop:
    pinned = _pinned
    if pinned is not None and pinned[1] == threading.get_ident() and pinned[0].is_running():
        return pinned[0]
    return _c_get_running_loop()


def pin_running_loop() -> bool:
    """Call from inside the service's main loop (once it runs); True when the fast lookup is in place."""
    global _pinned
    if not NEEDED:
        return False
    _pinned = (asyncio.get_running_loop(), threading.get_ident())
    # asyncio's own modules look these up on ``events`` at call time; libraries call ``asyncio.<name>``
    asyncio.events.get_running_loop = _get_running_loop
    asyncio.events._get_running_loop = _get_running_loop_or_none
    asyncio.get_running_loop = _get_running_loop
    asyncio._get_running_loop = _get_running_loop_or_none  # type: ignore[attr-defined]
    return True


def unpin_running_loop() -> None:
    """The service's loop is about to stop: every lookup goes to asyncio again."""
    global _pinned
    _pinned = None
    asyncio.events.get_running_loop = _c_get_running_loop
    asyncio.events._get_running_loop = _c_get_running_loop_or_none
    asyncio.get_running_loop = _c_get_running_loop
    asyncio._get_running_loop = _c_get_running_loop_or_none  # type: ignore[attr-defined]
