"""``/api/v1/calls``: the call history the call recorder writes to PostgreSQL.

``GET /api/v1/calls`` lists calls newest first with cursor pagination (the cursor is an opaque token for the last
row returned; calls whose start was never recorded sort last) and filters; ``GET /api/v1/calls/export`` returns
the same filtered list as CSV or JSON; ``GET /api/v1/calls/{call_id}`` is one call with its transcript (tool and
keypad turns included), errors and post-call webhook deliveries (a resend: ``call_webhooks.py``).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.gateway.api.call_webhooks import router as webhook_router
from services.gateway.edge.security import require_api_key
from services.gateway.runtime import GatewayRuntime
from shared.call_config import ClientType
from shared.db import webhook_deliveries
from shared.db.webhook_deliveries import WebhookDelivery
from shared.events import ToolTurn

router = APIRouter(prefix="/api/v1/calls", tags=["history"], dependencies=[Depends(require_api_key)])

CallStatus = Literal["in_progress", "completed", "failed"]
EXPORT_MAX_ROWS = 10_000
CALL_COLUMNS = (
    "call_id",
    "agent_id",
    "client_type",
    "from_number",
    "to_number",
    "started_at",
    "ended_at",
    "duration_s",
    "end_reason",
    "status",
    "turns",
    "latency_summary",
)
_FIELDS = ", ".join(f"c.{col}" for col in CALL_COLUMNS)
_SELECT = f"SELECT {_FIELDS} FROM calls c"
_ORDER = "ORDER BY c.started_at DESC NULLS LAST, c.call_id DESC"


class CallItem(BaseModel):
    call_id: str
    agent_id: str | None
    client_type: str
    from_number: str | None
    to_number: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    end_reason: str | None
    status: str
    turns: int
    latency_summary: dict[str, Any]


class CallPage(BaseModel):
    items: list[CallItem]
    next_cursor: str | None


class TranscriptLine(BaseModel):
    seq: int
    role: str  # user, assistant, or tool (a tool call the agent made: ``tool`` says which, with what, and how)
    text: str
    started_at: datetime
    ended_at: datetime
    interrupted: bool
    latency_ms: dict[str, Any]
    dtmf: bool  # a caller turn typed on the keypad
    tool: ToolTurn | None


class CallErrorOut(BaseModel):
    code: str
    stage: str
    message: str
    at: datetime


class CallDetail(CallItem):
    transcript: list[TranscriptLine]
    errors: list[CallErrorOut]
    extracted_data: Any | None
    transferred_to: str | None
    webhook_deliveries: list[WebhookDelivery]


@dataclass(frozen=True)
class CallFilters:
    since: datetime | None
    until: datetime | None
    agent_id: str | None
    client_type: ClientType | None
    status: CallStatus | None
    q: str | None


def _aware(value: datetime | None) -> datetime | None:
    """A datetime without an offset is taken as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def call_filters(
    since: Annotated[datetime | None, Query(description="calls started at or after this time (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="calls started before this time (ISO 8601)")] = None,
    agent_id: Annotated[str | None, Query(max_length=64)] = None,
    client_type: ClientType | None = None,
    call_status: Annotated[CallStatus | None, Query(alias="status")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="case-insensitive text in the call's transcript")
    ] = None,
) -> CallFilters:
    return CallFilters(_aware(since), _aware(until), agent_id, client_type, call_status, q)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(filters: CallFilters, args: list[Any]) -> list[str]:
    """SQL conditions for ``filters``; appends their parameters to ``args``."""
    conditions: list[str] = []

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if filters.since is not None:
        conditions.append(f"c.started_at >= {param(filters.since)}")
    if filters.until is not None:
        conditions.append(f"c.started_at < {param(filters.until)}")
    if filters.agent_id is not None:
        conditions.append(f"c.agent_id = {param(filters.agent_id)}")
    if filters.client_type is not None:
        conditions.append(f"c.client_type = {param(filters.client_type)}")
    if filters.status is not None:
        conditions.append(f"c.status = {param(filters.status)}")
    if filters.q is not None:
        pattern = param(f"%{_escape_like(filters.q)}%")
        conditions.append(
            f"EXISTS (SELECT 1 FROM transcripts t WHERE t.call_id = c.call_id AND t.text ILIKE {pattern} ESCAPE '\\')"
        )
    return conditions


def encode_cursor(started_at: datetime | None, call_id: str) -> str:
    raw = json.dumps({"t": started_at.isoformat() if started_at else None, "id": call_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        call_id = data["id"]
        started = data["t"]
        if not isinstance(call_id, str) or not (started is None or isinstance(started, str)):
            raise ValueError("bad field types")
        call_id.encode()  # a lone surrogate ("\\ud800") is no text PostgreSQL can compare: UnicodeEncodeError
        started_at = _aware(datetime.fromisoformat(started)) if started is not None else None
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):  # Unicode errors are ValueErrors
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "malformed cursor: pass back the next_cursor of a previous page unchanged"
        ) from None
    return started_at, call_id


def _after_cursor(cursor: tuple[datetime | None, str], args: list[Any]) -> str:
    """Rows after the cursor in ``started_at DESC NULLS LAST, call_id DESC`` order."""
    started_at, call_id = cursor
    args.append(call_id)
    id_param = f"${len(args)}"
    if started_at is None:
        return f"(c.started_at IS NULL AND c.call_id < {id_param})"
    args.append(started_at)
    ts_param = f"${len(args)}"
    return (
        f"(c.started_at < {ts_param} OR (c.started_at = {ts_param} AND c.call_id < {id_param}) OR c.started_at IS NULL)"
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _item(row: Mapping[str, Any]) -> CallItem:
    data = dict(row)
    data["latency_summary"] = _json(data["latency_summary"]) or {}
    return CallItem.model_validate(data)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading ``'`` (OWASP's advice on
    CSV injection); numbers are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _pool(request: Request) -> asyncpg.Pool:
    runtime: GatewayRuntime = request.app.state.runtime
    if runtime.pool is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the database is not available yet", headers={"Retry-After": "2"}
        )
    return runtime.pool


@router.get("", response_model=CallPage)
async def list_calls(
    request: Request,
    filters: Annotated[CallFilters, Depends(call_filters)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> CallPage:
    """Calls newest first; calls without a recorded start come last."""
    after = decode_cursor(cursor) if cursor else None
    pool = _pool(request)
    args: list[Any] = []
    conditions = _where(filters, args)
    if after is not None:
        conditions.append(_after_cursor(after, args))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    args.append(limit + 1)
    rows = await pool.fetch(f"{_SELECT}{where} {_ORDER} LIMIT ${len(args)}", *args)
    items = [_item(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last.started_at, last.call_id)
    return CallPage(items=items, next_cursor=next_cursor)


@router.get(
    "/export",
    response_model=None,
    responses={200: {"description": "the calls as a file", "content": {"text/csv": {}, "application/json": {}}}},
)
async def export_calls(
    request: Request,
    filters: Annotated[CallFilters, Depends(call_filters)],
    fmt: Annotated[Literal["csv", "json"], Query(alias="format")] = "csv",
) -> Response:
    """The filtered calls (newest first, at most 10,000) as a CSV file or a JSON array."""
    pool = _pool(request)
    args: list[Any] = []
    conditions = _where(filters, args)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    args.append(EXPORT_MAX_ROWS)
    rows = await pool.fetch(f"{_SELECT}{where} {_ORDER} LIMIT ${len(args)}", *args)
    items = [_item(r) for r in rows]
    if fmt == "json":
        return JSONResponse(jsonable_encoder(items), headers={"Content-Disposition": "attachment; filename=calls.json"})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CALL_COLUMNS)
    for item in items:
        writer.writerow(
            csv_cell(value)
            for value in (
                item.call_id,
                item.agent_id or "",
                item.client_type,
                item.from_number or "",
                item.to_number or "",
                item.started_at.isoformat() if item.started_at else "",
                item.ended_at.isoformat() if item.ended_at else "",
                "" if item.duration_s is None else item.duration_s,
                item.end_reason or "",
                item.status,
                item.turns,
                json.dumps(item.latency_summary, separators=(",", ":")),
            )
        )
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": "attachment; filename=calls.csv"},
    )


@router.get("/{call_id}", response_model=CallDetail)
async def get_call(call_id: str, request: Request) -> CallDetail:
    pool = _pool(request)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {_FIELDS}, c.extracted_data, c.transferred_to FROM calls c WHERE c.call_id = $1", call_id
        )
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no call {call_id!r}")
        lines = await conn.fetch(
            "SELECT seq, role, text, started_at, ended_at, interrupted, latency_ms, dtmf, tool FROM transcripts "
            "WHERE call_id = $1 ORDER BY seq",
            call_id,
        )
        errors = await conn.fetch(
            "SELECT code, stage, message, at FROM call_errors WHERE call_id = $1 ORDER BY at, event_id", call_id
        )
        deliveries = await webhook_deliveries.for_call(conn, call_id)
    data = dict(row)
    extracted = _json(data.pop("extracted_data"))
    transferred_to = data.pop("transferred_to")
    item = _item(data)
    transcript = [
        TranscriptLine.model_validate({**dict(r), "latency_ms": _json(r["latency_ms"]) or {}, "tool": _json(r["tool"])})
        for r in lines
    ]
    return CallDetail(
        **item.model_dump(),
        transcript=transcript,
        errors=[CallErrorOut.model_validate(dict(e)) for e in errors],
        extracted_data=extracted,
        transferred_to=transferred_to,
        webhook_deliveries=deliveries,
    )


# after the routes above: include_router copies the routes it finds now
router.include_router(webhook_router)
