"""Agents in PostgreSQL, and the per-call config they resolve to, cached.

The cache holds resolved :class:`CallConfig`s by (agent, client type). A write bumps the agent's version
and stores it in the NATS KV bucket ``victoria_agents`` (key = agent id, value = version; a deleted agent
leaves a delete marker). Every gateway replica watches the bucket (``AgentVersionWatch``) and drops that
agent's entries, so the next call sees the change while calls in progress keep the config they started with.

An update cannot be missed: the watch is a JetStream consumer, restarted after every NATS reconnect (and on
any failure) from the bucket's current values, and each restart drops the whole cache first; a config is
never cached below the newest version seen. ``agents.changed`` (core NATS) is still published for replicas
of an older release during a rolling deploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import asyncpg
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import BaseModel, Field, ValidationError

from shared import subjects
from shared.bus import Bus
from shared.call_config import AgentSpec, CallConfig, ClientType
from shared.kv import ensure_kv
from shared.logging import get_logger
from shared.texts import speech_locale, text_for

log = get_logger(__name__)

AGENTS_CHANGED = "agents.changed"
DEFAULT_AGENT = "default"


class AgentChanged(BaseModel):
    agent_id: str
    version: int
    ts: float = Field(default_factory=time.time)


@dataclass(frozen=True)
class AgentRecord:
    agent_id: str
    version: int
    spec: AgentSpec
    created_at: datetime
    updated_at: datetime


class Speech(NamedTuple):
    """A fixed text and the locale a provider's speech engine should say it in."""

    text: str
    locale: str


class AgentExistsError(Exception):
    pass


class VersionConflictError(Exception):
    def __init__(self, current: int) -> None:
        super().__init__(f"the agent was changed meanwhile (now version {current})")
        self.current = current


def _record(row: asyncpg.Record) -> AgentRecord:
    spec = row["spec"]
    return AgentRecord(
        agent_id=row["agent_id"],
        version=row["version"],
        spec=AgentSpec.model_validate(json.loads(spec) if isinstance(spec, str) else spec),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class AgentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, agent_id: str) -> AgentRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM agents WHERE agent_id = $1", agent_id)
        return _record(row) if row else None

    async def list(self) -> list[AgentRecord]:
        return [_record(r) for r in await self.pool.fetch("SELECT * FROM agents ORDER BY agent_id")]

    async def create(self, agent_id: str, spec: AgentSpec) -> AgentRecord:
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO agents (agent_id, spec) VALUES ($1, $2::jsonb) RETURNING *",
                agent_id,
                spec.model_dump_json(),
            )
        except asyncpg.UniqueViolationError as exc:
            raise AgentExistsError(agent_id) from exc
        return _record(row)

    async def update(self, agent_id: str, spec: AgentSpec, expected_version: int | None) -> AgentRecord | None:
        """Replace the spec; with ``expected_version`` the write happens only if nobody changed it since."""
        row = await self.pool.fetchrow(
            """
            UPDATE agents SET spec = $2::jsonb, version = version + 1, updated_at = now()
            WHERE agent_id = $1 AND ($3::int IS NULL OR version = $3) RETURNING *
            """,
            agent_id,
            spec.model_dump_json(),
            expected_version,
        )
        if row is not None:
            return _record(row)
        current = await self.pool.fetchval("SELECT version FROM agents WHERE agent_id = $1", agent_id)
        if current is None:
            return None
        raise VersionConflictError(current)

    async def agent_for_number(self, number: str) -> str | None:
        """The agent that answers calls to ``number`` (the first by id if several claim it)."""
        return await self.pool.fetchval(
            "SELECT agent_id FROM agents WHERE spec->'phone_numbers' ? $1 ORDER BY agent_id LIMIT 1", number
        )

    async def delete(self, agent_id: str) -> bool:
        return (await self.pool.execute("DELETE FROM agents WHERE agent_id = $1", agent_id)).endswith(" 1")


class ConfigResolver:
    """``config_for_call(client_type, agent_id)``: the seeds' ``get_config_for_call``, cached."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.store: AgentStore | None = None
        self._cache: dict[tuple[str, ClientType], CallConfig] = {}
        self._latest: dict[str, int] = {}  # agent id -> newest version announced (KV watch or agents.changed)
        self.builtin = AgentSpec()
        self.watch = AgentVersionWatch(bus, self)

    async def start(self) -> None:
        async def on_changed(msg: Msg) -> None:
            try:
                change = AgentChanged.model_validate_json(msg.data)
            except ValueError:
                log.warning("bad_agent_change_event", data=msg.data[:200])
                return
            self.changed(change.agent_id, change.version)

        await self.bus.nc.subscribe(AGENTS_CHANGED, cb=on_changed)
        await self.watch.start()

    async def stop(self) -> None:
        await self.watch.stop()

    def invalidate(self, agent_id: str) -> None:
        for key in [k for k in self._cache if k[0] == agent_id]:
            del self._cache[key]

    def changed(self, agent_id: str, version: int) -> None:
        """Agent ``agent_id`` is now at ``version`` (-1: deleted): its cached configs go."""
        if version < 0:  # deleted: an agent made again under this id starts its versions anew
            self._latest.pop(agent_id, None)
        else:
            self._latest[agent_id] = max(self._latest.get(agent_id, version), version)
        self.invalidate(agent_id)

    def clear(self) -> None:
        self._cache.clear()

    async def announce(self, agent_id: str, version: int) -> None:
        """After a write: every replica (this one included) drops its cached configs for the agent."""
        self.changed(agent_id, version)
        await self.watch.publish(agent_id, version)
        await self.bus.nc.publish(
            AGENTS_CHANGED, AgentChanged(agent_id=agent_id, version=version).model_dump_json().encode()
        )

    async def agent_for_number(self, number: str | None) -> str | None:
        """Phone routing: the agent for a called number, or None (the default agent answers)."""
        if not number or self.store is None:
            return None
        try:
            return await self.store.agent_for_number(number)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("agent_routing_failed", number=number, error=str(exc))
            return None

    async def refusal_for_number(self, client_type: ClientType, number: str | None, override: str = "") -> Speech:
        """What a phone caller of ``number`` hears while calls are refused: ``override`` (the deployment's
        ``TELEPHONY_REFUSAL_MESSAGE``) or the catalogue's refusal, in the language of the agent that number
        reaches (the default agent's when none claims it, English when no agent can be read)."""
        language: str | None = None
        try:
            language = (await self.config_for_call(client_type, await self.agent_for_number(number))).language
        except LookupError as exc:
            log.warning("refusal_language_unknown", number=number, error=str(exc))
        return Speech(override or text_for("telephony_refusal", language), speech_locale(language))

    async def config_for_call(self, client_type: ClientType, agent_id: str | None) -> CallConfig:
        """Raises ``LookupError`` for an unknown agent (a clear error at call start, not mid-call)."""
        agent_id = agent_id or DEFAULT_AGENT
        key = (agent_id, client_type)
        cached = self._cache.get(key)
        if cached is not None and cached.agent_version >= self._latest.get(agent_id, 0):
            return cached
        if self.store is None:
            if agent_id == DEFAULT_AGENT:  # no database yet: the built-in agent keeps the service answering
                log.warning("agent_store_unavailable_using_builtin")
                return CallConfig.resolve(DEFAULT_AGENT, 0, self.builtin, client_type)
            raise LookupError(f"agent {agent_id!r} cannot be loaded: the database is unavailable")
        try:
            record = await self.store.get(agent_id)
        except (OSError, asyncpg.PostgresError) as exc:
            if agent_id == DEFAULT_AGENT:
                log.warning("agent_store_failed_using_builtin", error=str(exc))
                return CallConfig.resolve(DEFAULT_AGENT, 0, self.builtin, client_type)
            raise LookupError(f"agent {agent_id!r} cannot be loaded: {exc}") from exc
        except ValidationError as exc:
            raise LookupError(f"agent {agent_id!r} has an invalid stored config: {exc.errors()[0]['msg']}") from exc
        if record is None:
            raise LookupError(f"unknown agent {agent_id!r}")
        config = CallConfig.resolve(record.agent_id, record.version, record.spec, client_type)
        if record.version >= self._latest.get(agent_id, 0):  # a change announced while we read: not cached
            self._cache[key] = config
        return config


class AgentVersionWatch:
    """Keeps every replica's agent cache honest from the KV bucket ``victoria_agents``.

    The watch restarts after each NATS reconnect (a push consumer's messages sent while we were away are
    not redelivered) and after any failure; each (re)start drops the whole cache, then the bucket's current
    values and every later update drop each agent's entries."""

    POLL_S = 0.5

    def __init__(self, bus: Bus, resolver: ConfigResolver) -> None:
        self.bus = bus
        self.resolver = resolver
        self.revision = 0  # the newest KV revision applied
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await ensure_kv(self.bus.js, subjects.AGENTS_BUCKET, history=1)
        return self._kv

    async def start(self, timeout: float = 5.0) -> None:
        self._task = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            log.warning("agent_watch_not_ready", hint="agent changes are applied once the KV watch runs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def publish(self, agent_id: str, version: int) -> None:
        """Store the agent's new version (a delete marker for a deleted agent); failures are logged, the
        cache of this replica is already dropped and the others re-read after their next restart."""
        try:
            kv = await self._bucket()
            if version < 0:
                await kv.delete(agent_id)
            else:
                await kv.put(agent_id, str(version).encode())
        except Exception as exc:
            log.error("agent_version_not_stored", agent_id=agent_id, error=str(exc) or type(exc).__name__)

    async def _run(self) -> None:
        while True:
            watcher: KeyValue.KeyWatcher | None = None
            try:
                kv = await self._bucket()
                reconnects = self.bus.nc.stats["reconnects"]
                watcher = await kv.watchall()
                self.resolver.clear()  # whatever changed while nobody watched
                while self.bus.nc.stats["reconnects"] == reconnects:
                    try:
                        entry = await watcher.updates(timeout=self.POLL_S)
                    except (NatsTimeoutError, TimeoutError):
                        continue
                    if entry is None:  # the end of the current values
                        self.ready.set()
                        continue
                    self._apply(entry)
                log.info("agent_watch_restart", reason="nats_reconnected")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("agent_watch_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(1.0)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()

    def _apply(self, entry: KeyValue.Entry) -> None:
        self.revision = max(self.revision, entry.revision or 0)
        if entry.operation in (KV_DEL, KV_PURGE):
            version = -1
        else:
            try:
                version = int(entry.value or b"0")
            except ValueError:
                version = 0
        self.resolver.changed(entry.key, version)
        self.ready.set()
