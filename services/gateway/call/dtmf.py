"""Keypad digits from the caller: gathered into one entry per the agent's ``DtmfSpec``, and masked where the
agent marks them sensitive (a PIN, a card number) — the LLM still gets them, nothing recorded or shown does.

``each``: every key is an entry at once. ``collect``: keys gather until the terminator (not part of the entry),
``max_digits`` keys, or ``timeout_s`` without a key. ``off``: keys are ignored. The collector is pure apart from
its timer, which calls ``on_entry`` from the event loop; the session turns an entry into a caller turn.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from shared.agent_tools import DtmfSpec
from shared.logging import get_logger

log = get_logger(__name__)

KEYS = frozenset("0123456789*#ABCD")
MASK = "•"
MIN_MASKED = 2  # keys: shorter entries are masked in their own turn only (see Masker)


def mask(digits: str) -> str:
    """One bullet per key: what the history, the transcript and the logs show of a sensitive entry."""
    return MASK * len(digits)


def llm_text(digits: str) -> str:
    """The caller's message the LLM gets for an entry."""
    return f"DTMF: {digits}"


class DigitCollector:
    """Turns single key presses into entries; ``on_entry`` gets each entry (never empty)."""

    def __init__(self, spec: DtmfSpec, on_entry: Callable[[str], Awaitable[None]]) -> None:
        self.spec = spec
        self.on_entry = on_entry
        self.pending = ""
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def press(self, key: str) -> None:
        """One key from the line (a bad key or mode ``off``: logged and dropped)."""
        key = key.upper()
        if key not in KEYS:
            log.warning("dtmf_key_refused", key=key[:4])
            return
        if self.spec.mode == "off":
            log.info("dtmf_ignored", mode="off")
            return
        if self.spec.mode == "each":
            await self.on_entry(key)
            return
        self._cancel_timer()
        if self.spec.terminator and key == self.spec.terminator:
            await self._flush()
            return
        self.pending += key
        if len(self.pending) >= self.spec.max_digits:
            await self._flush()
            return
        self._timer = asyncio.get_running_loop().call_later(self.spec.timeout_s, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        task = asyncio.create_task(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        entry, self.pending = self.pending, ""
        if entry:
            await self.on_entry(entry)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """The call is over: drop a half-typed entry and its timer."""
        self._cancel_timer()
        self.pending = ""
        for task in self._tasks:
            task.cancel()


class Masker:
    """The sensitive keypad input of one call, replaced by bullets in any text recorded about the call (a
    tool's arguments or result, what the assistant said, that repeat a PIN).

    What is masked is whole strings of at least :data:`MIN_MASKED` keys, never a lone key: masking every "5"
    in later text for a one-key menu choice would blot out times, prices and amounts. Each entry counts, and
    so does the *run* of the caller's consecutive keypad entries (no spoken turn between them, see
    :meth:`break_run`): in ``each`` mode a PIN typed 1, 2, 3, 4 is four one-key entries, and its run "1234" is
    what is masked (only the run as it now stands: "12" stops being masked on its own once "1234" is typed).
    Longest first, so "1234" is masked whole before "12"."""

    def __init__(self) -> None:
        self._entries: set[str] = set()
        self._run = ""
        self._pattern: re.Pattern[str] | None = None

    def add(self, digits: str) -> None:
        """A sensitive entry, which also extends the current run."""
        if not digits:
            return
        self._run += digits
        if len(digits) >= MIN_MASKED:
            self._entries.add(digits)
        self._compile()

    def break_run(self) -> None:
        """The caller spoke: the next entry starts a new run (the current one stays masked)."""
        if len(self._run) >= MIN_MASKED:
            self._entries.add(self._run)
        self._run = ""

    def _compile(self) -> None:
        secrets = self._entries | ({self._run} if len(self._run) >= MIN_MASKED else set())
        alternatives = sorted(secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in alternatives)) if alternatives else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda match: mask(match.group(0)), text)
