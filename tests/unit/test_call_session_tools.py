"""A live session's tools end to end without NATS: a real :class:`CallSession` whose LLM stream is scripted
by the test, whose TTS and audio output are instant, driven through its state machine. What only a whole
session shows: a call that ends stops every tool it left running and records nothing after it ended; a
transfer whose request is out survives a barge-in; a turn whose LLM never stops calling tools still speaks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.gateway.call import machine as m
from services.gateway.call.record import Segment
from services.gateway.call.session import CallSession
from services.gateway.call.turn_detector import SpeechConfirmed
from services.gateway.call.vad_webrtc import WebRtcVad
from services.gateway.transports.protocol import Transcript
from shared.agent_tools import ToolDef
from shared.call_config import CallConfig
from shared.events import CallEnded, LlmChunk, LlmRequest, ToolCall, TurnRecorded
from shared.settings import GatewaySettings
from tests.unit.test_call_record import FakeOutbox
from tests.unit.test_tools_http import SCHEMA, ToolServer

Answer = tuple[str, list[ToolCall]]  # what one LLM request says, and the tools it calls


class InstantOutput:
    """An audio output that plays everything at once (a mark fires on the next loop turn)."""

    first_send_at: float | None = None

    def __init__(self) -> None:
        self.queued_total = 0

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def push(self, audio: bytes) -> None:
        self.queued_total += len(audio)

    def mark(self, on_played: Callable[[], None]) -> None:
        asyncio.get_running_loop().call_soon(on_played)

    async def clear(self) -> int:
        return self.queued_total

    def played_bytes(self) -> int:
        return self.queued_total

    def reset_latency_probe(self) -> None: ...


class Line:
    """The transport: messages kept; a transfer that waits for ``release`` (the provider's answer)."""

    client_type = "browser"
    sample_rate = 16000
    encoding = "pcm16"

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.asked = asyncio.Event()
        self.release = asyncio.Event()
        self.transfers: list[str] = []

    def open_output(self, *, frame_ms: int, lead_ms: int) -> InstantOutput:
        return InstantOutput()

    async def send_event(self, message: Any) -> None:
        self.messages.append(message)

    async def close(self, code: int, reason: str) -> None: ...

    async def transfer(self, target: str) -> None:
        self.asked.set()
        await self.release.wait()
        self.transfers.append(target)

    async def send_dtmf(self, digits: str) -> None: ...


class Llm:
    """Answers each request of a turn with the next scripted answer (the last one again when they run out)."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.requests: list[LlmRequest] = []

    async def generate(self, req: LlmRequest, timeout_s: float, *, chained: bool = False) -> AsyncIterator[LlmChunk]:
        self.requests.append(req)
        text, calls = self.answers[min(len(self.requests), len(self.answers)) - 1]
        yield LlmChunk(
            call_id=req.call_id,
            turn_id=req.turn_id,
            delta=text,
            segments=[text] if text else [],
            done=True,
            finish_reason="tool_calls" if calls else "stop",
            tool_calls=calls or None,
            attempt=req.attempt,
        )


async def _instant_audio(turn_id: int, segment: Segment, out: asyncio.Queue[bytes | None], chained: bool) -> None:
    out.put_nowait(bytes(320))
    out.put_nowait(None)


async def _nothing(*_: Any, **__: Any) -> None:
    return None


async def session(tools: list[ToolDef], answers: list[Answer], http: Any = None) -> tuple[CallSession, Line, Llm]:
    """A started session (no greeting: LISTENING) with ``tools``, whose LLM answers ``answers``."""
    line, llm = Line(), Llm(answers)
    config = CallConfig(agent_id="a", first_message="", tools=tools)
    s = CallSession(
        call_id="call-1",
        transport=line,  # type: ignore[arg-type]
        bus=None,  # type: ignore[arg-type]
        outbox=FakeOutbox(),  # type: ignore[arg-type]
        settings=GatewaySettings(_env_file=None),  # type: ignore[call-arg]
        config=config,
        vad=WebRtcVad(2),
        http=http,
    )
    s.channel.open = s.channel.close = s.channel.cancel = _nothing  # type: ignore[method-assign]
    s.channel.generate = llm.generate  # type: ignore[assignment,method-assign]
    s.speech.fetch = _instant_audio  # type: ignore[method-assign]
    s.speech.prefetch = _nothing  # type: ignore[method-assign]
    await s.start()
    return s, line, llm


def events(s: CallSession) -> list[Any]:
    return s.outbox.events  # type: ignore[attr-defined,no-any-return]


def call(name: str, arguments: dict[str, Any], n: int = 1) -> ToolCall:
    return ToolCall(id=f"call_{name}_{n}", name=name, arguments=json.dumps(arguments))


def after_end(s: CallSession) -> list[Any]:
    found = events(s)
    ended = next(i for i, e in enumerate(found) if isinstance(e, CallEnded))
    return found[ended + 1 :]


async def until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    for _ in range(int(timeout * 100)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not in time")


async def test_a_call_that_ends_stops_the_tools_it_left_running_and_records_nothing_after() -> None:
    async with ToolServer(delay_s=0.6) as server:
        book = ToolDef(kind="http", name="book", url=server.url, parameters=SCHEMA, cancellable=False)  # type: ignore[arg-type]
        async with httpx.AsyncClient() as http:
            s, _, _ = await session([book], [("", [call("book", {"city": "Oslo"})]), ("Booked.", [])], http)
            await s._dispatch(m.DigitsEntered("5"))
            await asyncio.wait_for(server.arrived.wait(), 2)
            await s.end("caller_hangup")
            await asyncio.wait_for(server.gone.wait(), 2)  # the booking request was dropped, not left to run
            await asyncio.sleep(0.8)  # (past the server's delay: a tool left running would have answered)
    assert after_end(s) == []
    assert all(t.done() for t in s._tasks)
    tools = [e.tool for e in events(s) if isinstance(e, TurnRecorded) and e.role == "tool"]
    assert [(t.name, t.status) for t in tools] == [("book", "cancelled")]


async def test_a_transfer_whose_request_is_out_survives_a_barge_in_and_ends_the_call_transferred() -> None:
    transfer = ToolDef(kind="transfer_call", targets={"sales": "+34910000001"})
    s, line, _ = await session([transfer], [("", [call("transfer_call", {"target": "sales"})])])
    await s._dispatch(m.DigitsEntered("0"))
    await asyncio.wait_for(line.asked.wait(), 2)  # the hand-off line played; the provider has the request
    barge = asyncio.create_task(s._dispatch(SpeechConfirmed(at_s=1.0)))
    await asyncio.sleep(0.05)
    line.release.set()  # the provider answers: done
    await asyncio.wait_for(s.wait_ended(), 2)
    await barge
    assert line.transfers == ["+34910000001"]
    [ended] = [e for e in events(s) if isinstance(e, CallEnded)]
    assert (ended.reason, ended.transferred_to) == ("transferred", "+34910000001")
    assert after_end(s) == []


async def test_a_transfer_the_provider_refuses_after_a_barge_in_leaves_the_call_going() -> None:
    transfer = ToolDef(kind="transfer_call", targets={"sales": "+34910000001"})
    s, line, _ = await session([transfer], [("", [call("transfer_call", {"target": "sales"})])])

    async def refuse(target: str) -> None:
        line.asked.set()
        await line.release.wait()
        raise RuntimeError("busy")

    line.transfer = refuse  # type: ignore[method-assign]
    await s._dispatch(m.DigitsEntered("0"))
    await asyncio.wait_for(line.asked.wait(), 2)
    barge = asyncio.create_task(s._dispatch(SpeechConfirmed(at_s=1.0)))
    await asyncio.sleep(0.05)
    line.release.set()
    await asyncio.wait_for(barge, 2)
    assert not s.ended and s.state == "user_speaking"
    [tool] = [e.tool for e in events(s) if isinstance(e, TurnRecorded) and e.role == "tool"]
    assert tool.status == "error" and "busy" in tool.result
    await s.end("caller_hangup")


async def test_a_turn_whose_llm_keeps_calling_tools_records_the_dropped_calls_and_is_never_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    weather = ToolDef(kind="http", name="weather", url="http://127.0.0.1:9/w", parameters=SCHEMA)  # type: ignore[arg-type]
    answers = [("", [call("weather", {"city": "Oslo"}, n)]) for n in range(1, 5)]
    s, line, llm = await session([weather], answers)  # (no HTTP client: each call is an error, fast)
    await s._dispatch(m.DigitsEntered("1"))
    await until(lambda: s.state == "listening")
    assert len(llm.requests) == 4
    tools = [e.tool for e in events(s) if isinstance(e, TurnRecorded) and e.role == "tool"]
    assert len(tools) == 4 and all(t.status == "error" for t in tools)
    assert json.loads(tools[-1].result) == {"error": "too many tool rounds in one turn"}
    assert tools[-1].call_id == "call_weather_4"
    said = [m.text for m in line.messages if isinstance(m, Transcript) and m.role == "assistant"]
    assert said == [s.config.reprompt_message]
    history = s.record.history
    assert history[-3].tool_calls and history[-3].tool_calls[0].id == "call_weather_4"  # every call answered
    assert (history[-2].role, history[-2].tool_call_id) == ("tool", "call_weather_4")
    assert history[-1].role == "assistant" and history[-1].content == s.config.reprompt_message
    await s.end("caller_hangup")
