"""The tool runner: only configured tools run, with checked arguments; built-ins act through the transport;
a round runs its calls together, says the filler when slow, and a barge-in cancels what may be cancelled."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from services.gateway.call.tools import CANCELLED, STILL_RUNNING, RoundCancelled, ToolOutcome, ToolRunner, run_round
from shared.agent_tools import ToolDef
from shared.events import ToolCall
from tests.unit.test_tools_http import SCHEMA, ToolServer

TARGETS = {"sales": "+34910000001", "support": "sip:support@example.com"}


class LineStub:
    """The transport's call-control side, as the session sees it (the real ones are tested with their wires)."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.transfers: list[str] = []
        self.keys: list[str] = []
        self.fail = fail

    async def transfer(self, target: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.transfers.append(target)

    async def send_dtmf(self, digits: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.keys.append(digits)


def runner(line: LineStub, http: httpx.AsyncClient | None = None, *tools: ToolDef) -> ToolRunner:
    built_in = [
        ToolDef(kind="end_call"),
        ToolDef(kind="transfer_call", targets=TARGETS),
        ToolDef(kind="send_dtmf"),
    ]
    return ToolRunner(
        call_id="c1",
        tools=[*built_in, *tools],
        transport=line,  # type: ignore[arg-type]
        http=http,
        secret="s",
        transfer_message="Transferring you now.",
    )


def call(name: str, arguments: Any = None, raw: str | None = None) -> ToolCall:
    return ToolCall(id=f"call_{name}", name=name, arguments=raw if raw is not None else json.dumps(arguments or {}))


class Said:
    def __init__(self) -> None:
        self.texts: list[str | None] = []

    async def __call__(self, text: str | None) -> None:
        self.texts.append(text)


def error(outcome: ToolOutcome) -> str:
    assert outcome.status == "error"
    return str(json.loads(outcome.result)["error"])


@pytest.mark.parametrize(
    ("the_call", "expected"),
    [
        (call("format_disk"), "no tool named 'format_disk'"),
        (call("send_dtmf", raw="{digits: 1"), "arguments are not valid JSON"),
        (call("send_dtmf", raw="[1]"), "arguments must be a JSON object"),
        (call("send_dtmf", {"digits": "12; rm"}), "invalid arguments"),
        (call("transfer_call", {"target": "+15550000000"}), "invalid arguments"),  # only the listed names
    ],
)
async def test_what_is_not_a_valid_call_of_a_configured_tool_is_told_and_never_run(
    the_call: ToolCall, expected: str
) -> None:
    line = LineStub()
    outcome = await runner(line).run(the_call, Said())
    assert expected in error(outcome)
    assert line.keys == [] and line.transfers == []


async def test_an_http_tool_with_bad_arguments_is_never_requested() -> None:
    async with ToolServer() as server, httpx.AsyncClient() as http:
        weather = ToolDef(kind="http", name="weather", url=server.url, parameters=SCHEMA)  # type: ignore[arg-type]
        outcome = await runner(LineStub(), http, weather).run(call("weather", {"town": "x"}), Said())
        good = await runner(LineStub(), http, weather).run(call("weather", {"city": "x"}), Said())
    assert "'city' is a required property" in error(outcome)
    assert good.status == "ok" and good.result == '{"temp_c": 21}' and good.kind == "http"
    assert len(server.seen) == 1


async def test_end_call_asks_the_reply_to_end_the_call() -> None:
    outcome = await runner(LineStub()).run(call("end_call"), Said())
    assert outcome.end_call and outcome.status == "ok" and outcome.kind == "end_call"


async def test_transfer_says_the_message_then_hands_the_call_to_the_named_target() -> None:
    line, said = LineStub(), Said()
    outcome = await runner(line).run(call("transfer_call", {"target": "support"}), said)
    assert said.texts == ["Transferring you now."]
    assert line.transfers == ["sip:support@example.com"]
    assert outcome.transferred_to == "sip:support@example.com" and outcome.status == "ok"


async def test_a_refused_transfer_is_an_error_for_the_llm_and_the_call_goes_on() -> None:
    line = LineStub(fail=RuntimeError("provider said no"))
    outcome = await runner(line).run(call("transfer_call", {"target": "sales"}), Said())
    assert "the transfer failed: provider said no" in error(outcome)
    assert outcome.transferred_to is None and not outcome.end_call


async def test_send_dtmf_presses_the_keys_after_what_was_said() -> None:
    line, said = LineStub(), Said()
    outcome = await runner(line).run(call("send_dtmf", {"digits": "1w23#"}), said)
    assert said.texts == [None] and line.keys == ["1w23#"]
    assert json.loads(outcome.result) == {"status": "sent"}


async def test_a_round_runs_its_calls_together_and_says_the_filler_once_when_slow() -> None:
    async with ToolServer(delay_s=0.4) as slow, httpx.AsyncClient() as http:
        tools = [
            ToolDef(kind="http", name=f"slow{i}", url=slow.url, parameters=SCHEMA)  # type: ignore[arg-type]
            for i in range(3)
        ]
        fillers: list[float] = []
        started = time.monotonic()
        outcomes = await run_round(
            runner(LineStub(), http, *tools),
            [call(f"slow{i}", {"city": "x"}) for i in range(3)],
            say_first=Said(),
            filler=lambda: fillers.append(time.monotonic() - started),
            filler_after_s=0.1,
            spawn=asyncio.create_task,
            on_late=lambda _: None,
        )
        took = time.monotonic() - started
    assert [o.status for o in outcomes] == ["ok"] * 3
    assert took < 1.0, "the calls ran one after another"
    assert len(fillers) == 1 and 0.1 <= fillers[0] < 0.35


async def test_a_fast_round_says_no_filler() -> None:
    fillers: list[int] = []
    await run_round(
        runner(LineStub()),
        [call("end_call")],
        say_first=Said(),
        filler=lambda: fillers.append(1),
        filler_after_s=0.2,
        spawn=asyncio.create_task,
        on_late=lambda _: None,
    )
    assert fillers == []


async def test_a_barge_in_cancels_what_may_be_cancelled_and_leaves_the_rest_running() -> None:
    async with ToolServer(delay_s=0.5) as server, httpx.AsyncClient() as http:
        quick = ToolDef(kind="http", name="quick", url=server.url, parameters=SCHEMA)  # type: ignore[arg-type]
        booking = ToolDef(
            kind="http",
            name="book",
            url=server.url,  # type: ignore[arg-type]
            parameters=SCHEMA,
            cancellable=False,
        )
        late: list[ToolOutcome] = []
        background: list[asyncio.Task[Any]] = []
        the_round = asyncio.create_task(
            run_round(
                runner(LineStub(), http, quick, booking),
                [call("quick", {"city": "a"}), call("book", {"city": "b"}), call("end_call")],
                say_first=Said(),
                filler=None,
                filler_after_s=1.0,
                spawn=lambda coro: background.append(asyncio.create_task(coro)) or background[-1],
                on_late=late.append,
            )
        )
        await asyncio.sleep(0.2)  # both requests are at the server
        the_round.cancel()
        with pytest.raises(RoundCancelled) as cut:
            await the_round
        quick_o, book_o, end_o = cut.value.outcomes
        assert (quick_o.status, quick_o.result) == ("cancelled", CANCELLED)
        assert book_o.running and book_o.result == STILL_RUNNING
        assert end_o.status == "ok" and end_o.end_call  # it had finished: its result stands
        await asyncio.wait_for(server.gone.wait(), 1)  # the cancelled request was dropped at the server
        await asyncio.wait_for(asyncio.gather(*background), 2)
    [finished] = late
    assert finished.call.name == "book" and finished.status == "ok" and finished.result == '{"temp_c": 21}'


class SlowProvider(LineStub):
    """A provider that takes its time to answer a transfer request (and does it, whoever stops waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def transfer(self, target: str) -> None:
        self.asked.set()
        await self.answer.wait()
        self.transfers.append(target)


async def test_a_round_cut_while_the_transfer_request_is_out_waits_for_the_providers_answer() -> None:
    line = SlowProvider()
    the_round = asyncio.create_task(
        run_round(
            runner(line),
            [call("transfer_call", {"target": "sales"})],
            say_first=Said(),
            filler=None,
            filler_after_s=1.0,
            spawn=asyncio.create_task,
            on_late=lambda _: None,
        )
    )
    await asyncio.wait_for(line.asked.wait(), 1)
    the_round.cancel()  # a barge-in
    await asyncio.sleep(0.05)
    assert not the_round.done()  # the provider has not answered yet
    line.answer.set()
    with pytest.raises(RoundCancelled) as cut:
        await the_round
    [outcome] = cut.value.outcomes
    assert outcome.status == "ok" and outcome.transferred_to == "+34910000001"
    assert line.transfers == ["+34910000001"]


async def test_a_tool_left_running_stops_with_its_watcher_and_is_recorded_cancelled() -> None:
    async with ToolServer(delay_s=2.0) as server, httpx.AsyncClient() as http:
        booking = ToolDef(kind="http", name="book", url=server.url, parameters=SCHEMA, cancellable=False)  # type: ignore[arg-type]
        late: list[ToolOutcome] = []
        watchers: list[asyncio.Task[Any]] = []

        def spawn(coro: Any) -> asyncio.Task[Any]:
            watchers.append(asyncio.create_task(coro))
            return watchers[-1]

        the_round = asyncio.create_task(
            run_round(
                runner(LineStub(), http, booking),
                [call("book", {"city": "b"})],
                say_first=Said(),
                filler=None,
                filler_after_s=1.0,
                spawn=spawn,
                on_late=late.append,
            )
        )
        await asyncio.wait_for(server.arrived.wait(), 1)
        the_round.cancel()
        with pytest.raises(RoundCancelled):
            await the_round
        [watcher] = watchers
        watcher.cancel()  # the call ends
        await asyncio.gather(watcher, return_exceptions=True)
        await asyncio.wait_for(server.gone.wait(), 1)  # the request itself was dropped
    [outcome] = late
    assert outcome.status == "cancelled" and "the call ended" in outcome.result
