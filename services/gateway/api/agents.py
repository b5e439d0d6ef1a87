"""``/api/v1/agents``: create, read, update (optimistic concurrency with ``If-Match``), delete agents.

Every write is validated as a whole (``AgentSpec``): a bad field is a 422 that names it, and a config that
passes here is one a call can run. A successful write tells every gateway to drop its cached configs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from services.gateway.agents import AgentExistsError, AgentRecord, VersionConflictError
from services.gateway.edge.security import require_api_key
from services.gateway.runtime import GatewayRuntime
from shared.call_config import AgentSpec

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], dependencies=[Depends(require_api_key)])

AgentId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
MAX_VERSION = 2**31 - 1  # agents.version is a PostgreSQL integer


class AgentOut(BaseModel):
    """An agent as read: ``spec`` shows every text as a call hears it (the catalogue's, in the agent's language,
    where the agent left it unset); ``catalogue_texts`` names those, so that writing one back as null keeps it
    following the agent's language."""

    agent_id: str
    version: int
    created_at: datetime
    updated_at: datetime
    spec: AgentSpec
    catalogue_texts: list[str] = Field(
        default_factory=list, description="texts the agent leaves to the catalogue (shown resolved in spec)"
    )


class AgentCreate(AgentSpec):
    agent_id: AgentId


def _out(record: AgentRecord) -> AgentOut:
    return AgentOut(
        agent_id=record.agent_id,
        version=record.version,
        created_at=record.created_at,
        updated_at=record.updated_at,
        spec=record.spec.with_catalogue_texts(),
        catalogue_texts=record.spec.catalogue_texts(),
    )


def _runtime(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.runtime
    if runtime.agents.store is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the database is not available yet", headers={"Retry-After": "2"}
        )
    return runtime


@router.get("", response_model=list[AgentOut])
async def list_agents(request: Request) -> list[AgentOut]:
    store = _runtime(request).agents.store
    assert store is not None
    return [_out(r) for r in await store.list()]


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: str, request: Request, response: Response) -> AgentOut:
    store = _runtime(request).agents.store
    assert store is not None
    record = await store.get(agent_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agent {agent_id!r}")
    response.headers["ETag"] = f'"{record.version}"'
    return _out(record)


@router.post("", response_model=AgentOut, status_code=status.HTTP_201_CREATED)
async def create_agent(body: AgentCreate, request: Request, response: Response) -> AgentOut:
    runtime = _runtime(request)
    assert runtime.agents.store is not None
    spec = AgentSpec.model_validate(body.model_dump(exclude={"agent_id"}))
    try:
        record = await runtime.agents.store.create(body.agent_id, spec)
    except AgentExistsError:
        raise HTTPException(status.HTTP_409_CONFLICT, f"agent {body.agent_id!r} already exists") from None
    response.headers["ETag"] = f'"{record.version}"'
    response.headers["Location"] = f"/api/v1/agents/{record.agent_id}"
    return _out(record)


@router.put("/{agent_id}", response_model=AgentOut)
async def update_agent(
    agent_id: str,
    spec: AgentSpec,
    request: Request,
    response: Response,
    if_match: Annotated[
        str | None, Header(description='the version last read ("ETag"), to refuse stale writes')
    ] = None,
) -> AgentOut:
    runtime = _runtime(request)
    assert runtime.agents.store is not None
    expected: int | None = None
    if if_match is not None:
        try:
            expected = int(if_match.strip().strip('"').removeprefix("W/").strip('"'))
            if not -MAX_VERSION - 1 <= expected <= MAX_VERSION:  # asyncpg refuses it for the int column: a 500
                raise ValueError(expected)
        except ValueError:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, 'If-Match must be the agent\'s version, e.g. "3"'
            ) from None
    try:
        record = await runtime.agents.store.update(agent_id, spec, expected)
    except VersionConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agent {agent_id!r}")
    await runtime.agents.announce(agent_id, record.version)
    response.headers["ETag"] = f'"{record.version}"'
    return _out(record)


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(agent_id: str, request: Request) -> Response:
    runtime = _runtime(request)
    assert runtime.agents.store is not None
    if agent_id == "default":
        raise HTTPException(status.HTTP_409_CONFLICT, "the default agent cannot be deleted")
    # live calls on every replica (gateway.live), not only this one's
    in_use = sum(c.agent_id == agent_id for r in await runtime.call_control.gather_live() for c in r.calls)
    if in_use:
        raise HTTPException(status.HTTP_409_CONFLICT, f"agent {agent_id!r} is in use by {in_use} live call(s)")
    if not await runtime.agents.store.delete(agent_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agent {agent_id!r}")
    await runtime.agents.announce(agent_id, -1)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
