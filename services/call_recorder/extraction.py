"""Post-call extraction: after a call ends, ask the LLM (through the LLM workers, over NATS) for a JSON
summary of it — summary, intent, sentiment, entities, next action (the seeds' fields) — validate it, retry a
bounded number of times, and store it in ``calls.extracted_data``.

It never blocks the history: the call's row is complete before extraction starts, and a failed extraction is
stored as ``{"status": "failed", ...}``. It survives restarts: ending a call marks it ``pending`` in the same
transaction, and a sweep picks up pending (and long-stuck running) extractions; a claim (an atomic update)
makes sure two recorder replicas never extract the same call twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Literal

import asyncpg
from nats.aio.msg import Msg
from pydantic import BaseModel, Field, ValidationError

from services.call_recorder.prompt_budget import (
    context_limit_from_error,
    estimate_tokens,
    fit_transcript,
    transcript_char_budget,
)
from shared import subjects
from shared.bus import Bus, NoWorkerError, WorkerBusyError
from shared.db import webhook_deliveries
from shared.events import ChatMessage, LlmChunk, LlmRequest, new_id
from shared.logging import bound_call, get_logger
from shared.texts import language_name

log = get_logger(__name__)

SYSTEM_PROMPT = (
    "You extract structured data from a phone call transcript. Reply with only a JSON object with these keys: "
    '"summary" (one sentence), "intent" (a short snake_case label), "sentiment" ("positive", "neutral" or '
    '"negative"), "entities" (an object of the names, dates, times, numbers and places mentioned), '
    '"next_action" (what should happen next). No other text.'
)
STUCK_AFTER_S = 300.0
REPLY_MAX_TOKENS = 400
UNAVAILABLE_BACKOFF_S = 0.5


def extraction_prompt(custom: dict[str, str], language: str | None) -> str:
    """The extraction's system prompt: the standard keys, the agent's own ones, and — for a call not in
    English — answers in the call's language. Keys (and the intent and sentiment labels) stay English, so the
    stored JSON has one shape whatever the language; an English call's prompt is the one it always was."""
    prompt = SYSTEM_PROMPT
    if custom:
        extra = "; ".join(f'"{name}" ({what}, or null if not mentioned)' for name, what in custom.items())
        prompt += f" Also include these keys: {extra}."
    if language and language.replace("_", "-").split("-")[0].lower() != "en":
        prompt += (
            f" The call is in {language_name(language)}: write the summary, the next action and any other free"
            f" text in {language_name(language)}; keep every key, the intent label and the sentiment value in"
            " English exactly as given."
        )
    return prompt


class Extraction(BaseModel):
    summary: str = Field(min_length=1, max_length=2000)
    intent: str = Field(min_length=1, max_length=200)
    sentiment: Literal["positive", "neutral", "negative"]
    entities: dict[str, Any] = Field(default_factory=dict)
    next_action: str = Field(min_length=1, max_length=1000)


class ExtractionFailed(Exception):
    pass


class LlmUnavailable(ExtractionFailed):
    """No LLM worker took the request: worth waiting a little (one may be starting), unlike a bad answer."""


class PromptTooLong(ExtractionFailed):
    """The provider refused the prompt as larger than its context; ``limit`` is the window it reported."""

    def __init__(self, message: str, limit: int | None) -> None:
        super().__init__(message)
        self.limit = limit


def parse_extraction(text: str, custom: dict[str, str] | None = None) -> tuple[Extraction, dict[str, Any]]:
    """The first JSON object in the model's reply, validated (models like to wrap JSON in prose or fences),
    and the agent's own fields (``custom``: each must be present; null is a valid "not mentioned")."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ExtractionFailed("the reply holds no JSON object")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ExtractionFailed(f"the reply is not valid JSON: {exc.msg}") from exc
    if isinstance(data, dict) and isinstance(data.get("sentiment"), str):
        data["sentiment"] = data["sentiment"].strip().lower()
    try:
        standard = Extraction.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ExtractionFailed(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
    missing = [name for name in (custom or {}) if name not in data]
    if missing:
        raise ExtractionFailed(f"missing the agent's fields: {', '.join(missing)}")
    return standard, {name: data[name] for name in (custom or {})}


class Extractor:
    def __init__(
        self,
        bus: Bus,
        pool: asyncpg.Pool,
        *,
        max_attempts: int,
        timeout_s: float,
        concurrency: int,
        sweep_s: float,
        provider: str | None,
        model: str | None,
        instance: str,
        context_tokens: int | None = None,
        on_webhook: Callable[[], None] | None = None,
    ) -> None:
        self.bus = bus
        self.on_webhook = on_webhook  # a webhook delivery was queued: wake the deliverer
        self.context_tokens = context_tokens  # what prompt + reply must fit (None: not declared)
        self.pool = pool
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.sweep_s = sweep_s
        self.provider = provider
        self.model = model
        self.instance = instance
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    def submit(self, call_id: str) -> None:
        """A call just ended (its row says pending): extract it soon, without holding up the consumer."""
        task = asyncio.create_task(self._run(call_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()  # its claim goes stale and the sweep (here or on another replica) retries it
        await asyncio.gather(*self._tasks, *(t for t in [self._sweeper] if t), return_exceptions=True)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                rows = await self.pool.fetch(
                    """
                    SELECT call_id FROM calls
                    WHERE extracted_data->>'status' = 'pending'
                       OR (extracted_data->>'status' = 'running'
                           AND (extracted_data->>'claimed_at')::float < $1)
                    ORDER BY ended_at NULLS LAST LIMIT 20
                    """,
                    time.time() - STUCK_AFTER_S,
                )
                for row in rows:
                    self.submit(row["call_id"])
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("extraction_sweep_failed", error=str(exc))
            await asyncio.sleep(self.sweep_s)

    async def _claim(self, call_id: str) -> bool:
        claimed = await self.pool.fetchval(
            """
            UPDATE calls SET extracted_data = jsonb_build_object('status', 'running', 'claimed_by', $2::text,
                                                                 'claimed_at', $3::float)
            WHERE call_id = $1 AND (extracted_data->>'status' = 'pending'
                  OR (extracted_data->>'status' = 'running' AND (extracted_data->>'claimed_at')::float < $4))
            RETURNING true
            """,
            call_id,
            self.instance,
            time.time(),
            time.time() - STUCK_AFTER_S,
        )
        return bool(claimed)

    async def _run(self, call_id: str) -> None:
        async with self._slots:
            with bound_call(call_id):
                try:
                    if not await self._claim(call_id):
                        return  # done already, or another replica has it
                    result = await self._extract(call_id)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("extraction_db_error", error=str(exc))  # still pending/running: the sweep retries
                    return
                delivery = await self._store(call_id, result)
                log.info("extraction_done", status=result["status"], attempts=result.get("attempts"))
                if delivery is not None and self.on_webhook is not None:
                    self.on_webhook()

    async def _store(self, call_id: str, result: dict[str, Any]) -> webhook_deliveries.WebhookDelivery | None:
        """The result, and the call's post-call webhook delivery when its agent has one, in one transaction:
        a crash cannot keep one without the other, and a result stored twice still queues one delivery."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE calls SET extracted_data = $2::jsonb, updated_at = now() WHERE call_id = $1",
                call_id,
                json.dumps(result),
            )
            return await webhook_deliveries.enqueue(conn, call_id, "extraction")

    async def _extract(self, call_id: str) -> dict[str, Any]:
        rows = await self.pool.fetch("SELECT role, text FROM transcripts WHERE call_id = $1 ORDER BY seq", call_id)
        if not any(r["role"] == "user" for r in rows):
            return {"status": "skipped", "reason": "the caller said nothing"}
        lines = [f"{'Caller' if r['role'] == 'user' else 'Agent'}: {r['text']}" for r in rows]
        custom, language = await self._agent_schema(call_id)
        prompt = extraction_prompt(custom, language)
        errors: list[str] = []
        context = self.context_tokens
        omitted = 0
        for attempt in range(1, self.max_attempts + 1):
            transcript, omitted = fit_transcript(lines, transcript_char_budget(context, prompt, REPLY_MAX_TOKENS))
            if omitted:
                log.info("extraction_transcript_trimmed", turns=len(lines), omitted=omitted, context_tokens=context)
            messages = [ChatMessage(role="system", content=prompt), ChatMessage(role="user", content=transcript)]
            try:
                reply = await self._ask(call_id, messages, language)
                data, fields = parse_extraction(reply, custom)
                result = {"status": "ok", "attempts": attempt, **data.model_dump(), "custom": fields}
                if omitted:
                    result["turns_omitted"] = omitted
                return result
            except ExtractionFailed as exc:
                errors.append(str(exc))
                log.warning("extraction_attempt_failed", attempt=attempt, error=str(exc)[:200])
                if isinstance(exc, PromptTooLong):  # the configured window, or our estimate, was wrong: shrink
                    if exc.limit and (context is None or exc.limit < context):
                        context = exc.limit
                    else:
                        sent = estimate_tokens(prompt + transcript) + REPLY_MAX_TOKENS
                        context = int((context or sent) * 0.6)
                if isinstance(exc, LlmUnavailable) and attempt < self.max_attempts:
                    await asyncio.sleep(min(UNAVAILABLE_BACKOFF_S * 2 ** (attempt - 1), 10.0))
        failed: dict[str, Any] = {"status": "failed", "attempts": self.max_attempts, "errors": errors}
        if omitted:
            failed["turns_omitted"] = omitted
        return failed

    async def _agent_schema(self, call_id: str) -> tuple[dict[str, str], str | None]:
        """The call's agent's own extraction fields (the schema can be set per agent) and the call's language:
        the agent's, or its overlay's for the call's client type (None when the agent is gone)."""
        row = await self.pool.fetchrow(
            "SELECT a.spec->'extraction_fields' AS fields,"
            " COALESCE(a.spec->'overlays'->c.client_type->>'language', a.spec->>'language') AS language"
            " FROM calls c JOIN agents a ON a.agent_id = c.agent_id WHERE c.call_id = $1",
            call_id,
        )
        if row is None:
            return {}, None
        fields = json.loads(row["fields"]) if isinstance(row["fields"], str) else row["fields"]
        custom = {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}
        return custom, row["language"]

    async def _ask(self, call_id: str, messages: list[ChatMessage], language: str | None = None) -> str:
        """One LLM round trip through the LLM workers; the whole reply's text (``language``: the call's, so a
        provider with a model per language answers with the right one)."""
        reply_to = f"extract.{subjects.safe_token(call_id)}.{new_id()}"
        chunks: dict[int, LlmChunk] = {}
        done = asyncio.Event()

        async def on_chunk(chunk: LlmChunk, _msg: Msg) -> None:
            chunks[chunk.seq] = chunk
            if chunk.done or chunk.error:
                done.set()

        sub = await self.bus.subscribe(reply_to, LlmChunk, on_chunk)
        try:
            request = LlmRequest(
                call_id=call_id,
                messages=messages,
                provider=self.provider,
                model=self.model,
                temperature=0.0,
                max_tokens=REPLY_MAX_TOKENS,
                language=language,
                reply_to=reply_to,
                post_call=True,  # the call's final cancel must not drop it (it did, for every real call)
            )
            try:
                ack = await self.bus.request_work(subjects.LLM_REQUEST, request, timeout=2.0)
            except (NoWorkerError, WorkerBusyError) as exc:
                raise LlmUnavailable(f"no LLM worker took the request: {exc}") from exc
            if not ack.accepted:
                raise ExtractionFailed(f"the LLM worker refused: {ack.error.message if ack.error else 'busy'}")
            try:
                async with asyncio.timeout(self.timeout_s):
                    await done.wait()
            except TimeoutError as exc:
                raise ExtractionFailed(f"no complete reply within {self.timeout_s:.0f}s") from exc
        finally:
            await sub.unsubscribe()
        failed = next((c.error for c in chunks.values() if c.error), None)
        if failed is not None:
            limit = context_limit_from_error(failed.message)
            if limit is not None or "context" in failed.message.lower():
                raise PromptTooLong(f"LLM {failed.code}: {failed.message}", limit)
            raise ExtractionFailed(f"LLM {failed.code}: {failed.message}")
        return "".join(chunks[k].delta for k in sorted(chunks))
