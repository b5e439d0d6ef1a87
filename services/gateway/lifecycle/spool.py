"""The gateway's on-disk spool of lifecycle events that JetStream has not acknowledged yet.

Why: the outbox drains to JetStream in the background; a NATS outage followed by a crash (kill -9, OOM, a
node lost) used to take every event still queued with it: turns callers had heard, the ends of calls. Each
event is now appended to ``lifecycle.jsonl`` in ``LIFECYCLE_SPOOL_DIR`` before it is queued, and an ``ack``
line is appended once JetStream stored it (or it was dead-lettered). On start the events without an ack
are replayed first, in their original order; their ``Nats-Msg-Id`` (the event id) and the recorder's
event-id claim make a replay of an event that did land before the crash change nothing.

Writes go to the OS page cache (``flush``, no ``fsync``): they survive the process dying, which is what the
spool is for; a host crash can lose the last few. The file is compacted (rewritten with only the pending
events, then renamed over) when it holds mostly acknowledged lines, and is bounded by
``LIFECYCLE_SPOOL_MAX_MB``: beyond it new events are kept in memory only, logged and counted in
``victoria_lifecycle_spool_overflow_total``. One gateway process owns a spool directory (an ``flock``).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import IO

from services.gateway.metrics import SPOOL_OVERFLOW, SPOOL_PENDING, SPOOL_REPLAYED
from shared.events import EventDecodeError, LifecycleEvent, decode_event
from shared.logging import get_logger
from shared.settings import GatewaySettings

log = get_logger(__name__)

FILE = "lifecycle.jsonl"
LOCK = "lifecycle.lock"
COMPACT_MIN_BYTES = 1_000_000  # below this a file of acknowledged lines is not worth rewriting


def default_spool_dir(settings: GatewaySettings) -> Path:
    """``LIFECYCLE_SPOOL_DIR``, else one directory per gateway under the run dir or the temp dir, named so a
    restarted gateway (same instance id, or same host and port) finds the spool its predecessor left."""
    if settings.lifecycle_spool_dir.strip():
        return Path(settings.lifecycle_spool_dir.strip())
    base = Path(os.environ.get("VICTORIA_RUN_DIR") or tempfile.gettempdir())
    name = settings.instance_id.strip() or f"{socket.gethostname()}-{settings.gateway_port}"
    return base / "lifecycle-spool" / "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class SpoolLockedError(RuntimeError):
    """Another live gateway process owns this spool directory."""


class LifecycleSpool:
    """Append-only JSONL of ``{"op": "put", "id", "subject", "event"}`` and ``{"op": "ack", "id"}`` lines."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.path = directory / FILE
        self._pending: OrderedDict[str, tuple[str, str]] = OrderedDict()  # event id -> (subject, event json)
        self._file: IO[str] | None = None
        self._lock: IO[str] | None = None
        self._size = 0
        self._pending_bytes = 0  # what the pending events' lines take: the size of a compacted file

    def open(self) -> list[tuple[str, LifecycleEvent]]:
        """Lock the directory, read what a previous process left unacknowledged (in order) and compact."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / LOCK, "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SpoolLockedError(f"another gateway is using the lifecycle spool {self.directory}") from None
        if self.path.exists():
            self._read()
        self._compact()
        left: list[tuple[str, LifecycleEvent]] = []
        for event_id, (subject, body) in list(self._pending.items()):
            try:
                event = decode_event(body.encode())
            except EventDecodeError as exc:
                log.error("lifecycle_spool_entry_unreadable", event_id=event_id, error=str(exc)[:300])
                self.ack(event_id)
                continue
            left.append((subject, event))  # type: ignore[arg-type]  # only lifecycle events are spooled
        if left:
            SPOOL_REPLAYED.inc(len(left))
            log.warning("lifecycle_spool_replaying", events=len(left), spool=str(self.path))
        return left

    def _read(self) -> None:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                    if entry["op"] == "put":
                        self._pending[str(entry["id"])] = (str(entry["subject"]), str(entry["event"]))
                    elif entry["op"] == "ack":
                        self._pending.pop(str(entry["id"]), None)
                    else:
                        raise ValueError(entry["op"])
                except (ValueError, KeyError, TypeError):  # a line cut short by the crash: skip it
                    log.warning("lifecycle_spool_line_skipped", line=line[:200])

    def _compact(self) -> None:
        """Rewrite the file with only the pending events (atomically: a crash leaves the old or the new)."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for event_id, (subject, body) in self._pending.items():
                f.write(_line("put", event_id, subject, body))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if self._file is not None:
            self._file.close()
        self._file = open(self.path, "a", encoding="utf-8")
        self._size = self._pending_bytes = self.path.stat().st_size
        SPOOL_PENDING.set(len(self._pending))

    def put(self, event_id: str, subject: str, body: str) -> bool:
        """Spool one event before it is published; False when the spool is full (kept in memory only)."""
        line = _line("put", event_id, subject, body)
        if self._size + len(line) > self.max_bytes:
            if self._pending_bytes + len(line) <= self.max_bytes:  # acknowledged lines take the room: drop them
                self._compact()
            else:
                SPOOL_OVERFLOW.inc()
                log.error("lifecycle_spool_full", event_id=event_id, spool=str(self.path), max_bytes=self.max_bytes)
                return False
        self._write(line)
        self._pending[event_id] = (subject, body)
        self._pending_bytes += len(line)
        SPOOL_PENDING.set(len(self._pending))
        return True

    def ack(self, event_id: str) -> None:
        """JetStream stored the event (or it was dead-lettered): it need not be replayed."""
        entry = self._pending.pop(event_id, None)
        if entry is None:
            return
        self._pending_bytes -= len(_line("put", event_id, *entry))
        self._write(_line("ack", event_id))
        SPOOL_PENDING.set(len(self._pending))
        if not self._pending and self._size > COMPACT_MIN_BYTES:
            self._compact()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _write(self, line: str) -> None:
        assert self._file is not None, "spool not open"
        self._file.write(line)
        self._file.flush()
        self._size += len(line)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


def _line(op: str, event_id: str, subject: str = "", body: str = "") -> str:
    entry: dict[str, str] = {"op": op, "id": event_id}
    if op == "put":
        entry |= {"subject": subject, "event": body}
    return json.dumps(entry) + "\n"
