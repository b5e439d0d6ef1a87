"""Agents in PostgreSQL, and the per-call config they resolve to, cached.

The cache holds resolved :class:`CallConfig`s by (agent, client type). A write bumps the agent's version
and announces it on ``agents.changed``; every gateway replica drops that agent's entries, so the next call
sees the change while calls in progress keep the config they started with.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from nats.aio.msg import Msg
from pydantic import BaseModel, Field, ValidationError

from shared.bus import Bus
from shared.call_config import AgentSpec, CallConfig, ClientType
from shared.logging import get_logger

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
        self.builtin = AgentSpec()

    async def start(self) -> None:
        async def on_changed(msg: Msg) -> None:
            try:
                change = AgentChanged.model_validate_json(msg.data)
            except ValueError:
                log.warning("bad_agent_change_event", data=msg.data[:200])
                return
            self.invalidate(change.agent_id)

        await self.bus.nc.subscribe(AGENTS_CHANGED, cb=on_changed)

    def invalidate(self, agent_id: str) -> None:
        for key in [k for k in self._cache if k[0] == agent_id]:
            del self._cache[key]

    async def announce(self, agent_id: str, version: int) -> None:
        """After a write: every replica (this one included) drops its cached configs for the agent."""
        self.invalidate(agent_id)
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

    async def config_for_call(self, client_type: ClientType, agent_id: str | None) -> CallConfig:
        """Raises ``LookupError`` for an unknown agent (a clear error at call start, not mid-call)."""
        agent_id = agent_id or DEFAULT_AGENT
        key = (agent_id, client_type)
        cached = self._cache.get(key)
        if cached is not None:
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
        self._cache[key] = config
        return config
