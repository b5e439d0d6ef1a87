"""The error policy's "global stop": one shared switch that stops the whole platform taking new calls.

The state lives in a NATS JetStream key-value bucket (``victoria_global_stop``, key ``state``) as the JSON of
``GlobalStopState``. The call recorder trips it (``services/call_recorder/global_stop.py``), an operator resets
it over the gateway's admin API, and every gateway replica keeps the latest state in memory with a
``GlobalStopWatcher`` (a KV watch, plus a slow re-read as a safety net), so a trip is seen everywhere within
a second and deciding whether a call may start costs no lookup.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import BaseModel, ValidationError

from shared.logging import get_logger

log = get_logger(__name__)

BUCKET = "victoria_global_stop"
KEY = "state"


class GlobalStopState(BaseModel):
    active: bool = False
    reason: str = ""
    tripped_at: float | None = None
    errors: list[str] = []  # call ids of the errors that tripped it
    reset_at: float | None = None
    reset_by: str | None = None
    tripped_by: str | None = None  # "error_policy" (the recorders' count) or who tripped it by hand


async def ensure_bucket(js: JetStreamContext) -> KeyValue:
    """The bucket, created if missing (idempotent; safe when several processes race to create it)."""
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        pass
    try:
        kv = await js.create_key_value(KeyValueConfig(bucket=BUCKET, history=16, storage=StorageType.FILE))
        log.info("global_stop_bucket_created", bucket=BUCKET)
        return kv
    except BadRequestError:  # someone else created it meanwhile (with another config): use theirs
        return await js.key_value(BUCKET)


def _decode(value: bytes | None) -> GlobalStopState:
    if not value:
        return GlobalStopState()
    try:
        return GlobalStopState.model_validate_json(value)
    except ValidationError as exc:
        log.error("global_stop_state_invalid", error=str(exc)[:300])
        return GlobalStopState()


async def read_state(js: JetStreamContext) -> GlobalStopState:
    """The current state; inactive when nothing was ever written (or the key was deleted)."""
    return (await _read(js))[0]


async def _read(js: JetStreamContext) -> tuple[GlobalStopState, int]:
    kv = await ensure_bucket(js)
    try:
        entry = await kv.get(KEY)
    except KeyNotFoundError:  # includes KeyDeletedError
        return GlobalStopState(), 0
    return _decode(entry.value), entry.revision or 0


async def write_state(js: JetStreamContext, state: GlobalStopState) -> int:
    """Store ``state``; returns the KV revision."""
    kv = await ensure_bucket(js)
    return await kv.put(KEY, state.model_dump_json().encode())


async def trip(js: JetStreamContext, state: GlobalStopState) -> int | None:
    """Write the active ``state`` unless the stop is already active; compare-and-set, so of several recorder
    replicas (or an admin) tripping at once exactly one wins and notifies. Returns its revision, or None."""
    for _ in range(5):
        current, revision = await _read(js)
        if current.active:
            return None
        kv = await ensure_bucket(js)
        try:
            if revision:
                return await kv.update(KEY, state.model_dump_json().encode(), last=revision)
            return await kv.create(KEY, state.model_dump_json().encode())
        except KeyWrongLastSequenceError:  # someone wrote meanwhile: look again
            continue
    return None


class GlobalStopWatcher:
    """Keeps ``state`` current from a KV watch. Starts inactive; a failing watch is retried in the background
    (the last known state is kept meanwhile), and the key is re-read every ``refresh_s`` in case a watch
    silently stopped (e.g. its consumer vanished across a NATS restart)."""

    def __init__(self, js: JetStreamContext, *, refresh_s: float = 10.0) -> None:
        self.js = js
        self.refresh_s = refresh_s
        self.state = GlobalStopState()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: KeyValue.KeyWatcher | None = None
        self._revision = 0

    @property
    def active(self) -> bool:
        return self.state.active

    async def start(self, timeout: float = 5.0) -> None:
        """Start watching and wait (up to ``timeout``) for the current state."""
        self._tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._refresh())]
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            log.warning("global_stop_state_unknown", hint="KV watch not ready; assuming calls may start")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
            self._watcher = None

    def observe(self, state: GlobalStopState, revision: int) -> None:
        """Take a state this process just wrote (its revision) without waiting for the watch to echo it."""
        self._set(state, revision)

    def _set(self, state: GlobalStopState, revision: int) -> None:
        if revision and revision < self._revision:  # a re-read that raced a newer watch update
            return
        self._revision = max(self._revision, revision)
        if state.active != self.state.active:
            if state.active:
                log.warning("global_stop_active", reason=state.reason, tripped_at=state.tripped_at)
            else:
                log.info("global_stop_inactive", reset_by=state.reset_by, reset_at=state.reset_at)
        self.state = state

    async def _watch(self) -> None:
        while True:
            try:
                kv = await ensure_bucket(self.js)
                self._watcher = await kv.watch(KEY)
                async for entry in self._watcher:
                    if entry is None:  # end of the initial values
                        self._ready.set()
                        continue
                    if entry.operation in (KV_DEL, KV_PURGE):
                        self._set(GlobalStopState(), entry.revision or 0)
                    else:
                        self._set(_decode(entry.value), entry.revision or 0)
                    self._ready.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("global_stop_watch_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(1.0)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                self._set(*await _read(self.js))
                self._ready.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("global_stop_refresh_failed", error=str(exc) or type(exc).__name__)
