"""The agent's tools during a call: one LLM tool call run to its result, and a round of them run together.

Only the agent's configured tools run; the LLM's arguments are checked against the tool's schema first (a
bad call is an error told to the LLM, nothing runs). Built-ins act on the call through the transport
(``send_dtmf``, ``transfer_call``: the target is looked up by the name the LLM chose, never taken from it) or
ask the reply to end it (``end_call``); HTTP tools go through :mod:`.http_tool`. A result is always text for
the LLM: a failing tool is ``{"error": ...}``, never a failed call.

A round is cancelled by a barge-in (the reply's task is cancelled): calls whose tool is ``cancellable`` stop
at once and are recorded ``cancelled``; the others run on in the background (a task the call owns, which the
call's end cancels, the tool with it) and their result is recorded when it comes (``on_late``) — the history
the LLM sees says so meanwhile. A transfer whose request has left for the provider is not stopped halfway:
its answer is waited for, so a barge-in never loses a call that was in fact handed over.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from services.gateway.call.http_tool import call_http_tool
from services.gateway.call.transport import Transport
from shared.agent_tools import ToolDef, ToolKind, argument_errors
from shared.events import ChatMessage, ToolCall
from shared.logging import get_logger

log = get_logger(__name__)

CANCELLED = json.dumps({"error": "cancelled: the caller interrupted"})
STILL_RUNNING = json.dumps({"status": "still running; the caller interrupted before it finished"})
TOO_MANY_ROUNDS = json.dumps({"error": "too many tool rounds in one turn"})
CALL_ENDED = json.dumps({"error": "cancelled: the call ended before it finished"})


@dataclass
class ToolOutcome:
    """One call's result, as the LLM gets it and the history records it."""

    call: ToolCall
    kind: ToolKind
    result: str
    status: Literal["ok", "error", "cancelled"] = "ok"
    started_at: float = field(default_factory=time.time)
    ended_at: float = field(default_factory=time.time)
    end_call: bool = False  # end_call: the reply ends the call once it has played out
    transferred_to: str | None = None  # transfer_call: the call now belongs to this target
    running: bool = False  # left running past a barge-in: its real outcome is recorded when it comes

    @property
    def duration_ms(self) -> float:
        return round(max(0.0, self.ended_at - self.started_at) * 1000, 1)

    def message(self) -> ChatMessage:
        return ChatMessage(role="tool", tool_call_id=self.call.id, content=self.result)


def _error(call: ToolCall, kind: ToolKind, message: str, started_at: float) -> ToolOutcome:
    return ToolOutcome(call, kind, json.dumps({"error": message}), "error", started_at=started_at)


class ToolRunner:
    """Runs one call's tool with what the call has: its transport, the gateway's HTTP client, the secret."""

    def __init__(
        self,
        *,
        call_id: str,
        tools: list[ToolDef],
        transport: Transport,
        http: httpx.AsyncClient | None,
        secret: str,
        transfer_message: str,
    ) -> None:
        self.call_id = call_id
        self.transfer_message = transfer_message
        self.tools = {tool.tool_name: tool for tool in tools}
        self.transport = transport
        self.http = http
        self.secret = secret

    def any_http(self, calls: list[ToolCall]) -> bool:
        """Whether a round may be silent for long: built-ins are quick or speak for themselves (a transfer)."""
        return any(call.name in self.tools and self.tools[call.name].kind == "http" for call in calls)

    def kind(self, call: ToolCall) -> ToolKind:
        tool = self.tools.get(call.name)
        return tool.kind if tool is not None else "http"

    def cancellable(self, call: ToolCall) -> bool:
        tool = self.tools.get(call.name)
        return tool is None or tool.cancellable

    async def run(self, call: ToolCall, say_first: Callable[[str | None], Awaitable[None]]) -> ToolOutcome:
        """``call``'s outcome. ``say_first(text)`` returns once the caller has heard what the reply said so far
        (and ``text``): a transfer announces itself, keys are pressed after the words before them."""
        started = time.time()
        tool = self.tools.get(call.name)
        if tool is None:
            return _error(call, "http", f"no tool named {call.name!r}", started)
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            return _error(call, tool.kind, "arguments are not valid JSON", started)
        problem = argument_errors(tool, arguments)
        if problem is not None:
            return _error(call, tool.kind, problem, started)
        outcome = await self._run_valid(call, tool, arguments, say_first, started)
        outcome.ended_at = time.time()
        return outcome

    async def _run_valid(
        self,
        call: ToolCall,
        tool: ToolDef,
        arguments: dict[str, Any],
        say_first: Callable[[str | None], Awaitable[None]],
        started: float,
    ) -> ToolOutcome:
        if tool.kind == "end_call":
            return ToolOutcome(call, "end_call", json.dumps({"status": "ending the call"}), end_call=True)
        if tool.kind == "send_dtmf":
            await say_first(None)
            try:
                await self.transport.send_dtmf(arguments["digits"])
            except Exception as exc:
                log.warning("send_dtmf_failed", error=str(exc)[:200])
                return _error(call, "send_dtmf", f"the digits could not be sent: {exc}", started)
            return ToolOutcome(call, "send_dtmf", json.dumps({"status": "sent"}), started_at=started)
        if tool.kind == "transfer_call":
            return await self._transfer(call, tool, arguments["target"], say_first, started)
        if self.http is None:
            return _error(call, "http", "HTTP tools are not available on this gateway", started)
        result = await call_http_tool(self.http, tool, arguments, secret=self.secret, call_id=self.call_id)
        return ToolOutcome(call, "http", result.text, "ok" if result.ok else "error", started_at=started)

    async def _transfer(
        self,
        call: ToolCall,
        tool: ToolDef,
        name: str,
        announce: Callable[[str | None], Awaitable[None]],
        started: float,
    ) -> ToolOutcome:
        target = tool.targets.get(name)
        if target is None:  # (the schema's enum already refuses it; a changed agent must not widen it)
            return _error(call, "transfer_call", f"unknown transfer target {name!r}", started)
        await announce(self.transfer_message)  # (a barge-in during the hand-off line: no transfer)
        failure = await self._hand_over(target)
        if failure is not None:
            log.warning("transfer_failed", target_name=name, error=str(failure)[:200])
            return _error(call, "transfer_call", f"the transfer failed: {failure}", started)
        log.info("call_transferred", target_name=name)
        result = json.dumps({"status": "transferred", "target": name})
        return ToolOutcome(call, "transfer_call", result, started_at=started, transferred_to=target)

    async def _hand_over(self, target: str) -> BaseException | None:
        """The provider's transfer request, shielded once sent: a cancel (a barge-in, the call ending) while it
        is in flight waits for the provider's answer, so whether the call is still ours is known. Returns
        why it failed, or None: handed over (then this call's outcome stands even though it was cancelled)."""
        request = asyncio.ensure_future(self.transport.transfer(target))
        try:
            await asyncio.shield(request)
        except asyncio.CancelledError:
            await asyncio.wait([request])  # (only the wait was cancelled: the request goes on to its answer)
            if request.cancelled():
                raise
            log.info("transfer_settled_after_cancel", transferred=request.exception() is None)
        except Exception:
            pass  # (read below)
        return request.exception()


async def run_round(
    runner: ToolRunner,
    calls: list[ToolCall],
    *,
    say_first: Callable[[str | None], Awaitable[None]],
    filler: Callable[[], None] | None,
    filler_after_s: float,
    spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[Any]],
    on_late: Callable[[ToolOutcome], None],
) -> list[ToolOutcome]:
    """Run ``calls`` concurrently; ``filler`` is called once if they are still running after
    ``filler_after_s``. Cancelled (barge-in): raises CancelledError after the outcomes of the calls stopped
    or left running are known — read them from the exception's ``outcomes`` attribute."""
    started = time.time()
    tasks = [asyncio.create_task(runner.run(call, say_first)) for call in calls]
    try:  # (asyncio.wait, not gather: a cancelled wait leaves the calls running, to be sorted out below)
        if filler is not None:
            _done, pending = await asyncio.wait(tasks, timeout=filler_after_s)
            if pending:
                filler()
        await asyncio.wait(tasks)
    except asyncio.CancelledError as exc:
        outcomes = await _interrupted(runner, calls, tasks, started, spawn, on_late)
        raise RoundCancelled(outcomes) from exc
    return [_result(runner, call, task, started) for call, task in zip(calls, tasks, strict=True)]


def _kind(runner: ToolRunner, call: ToolCall) -> ToolKind:
    return runner.kind(call)


def _result(runner: ToolRunner, call: ToolCall, task: asyncio.Task[ToolOutcome], started: float) -> ToolOutcome:
    """A finished call's outcome (a tool that crashed is an error for the LLM, logged here)."""
    if task.cancelled():
        return ToolOutcome(call, _kind(runner, call), CANCELLED, "cancelled", started_at=started)
    exc = task.exception()
    if exc is not None:
        log.error("tool_crashed", tool=call.name, error=type(exc).__name__)
        return _error(call, _kind(runner, call), f"the tool failed: {type(exc).__name__}", started)
    return task.result()


class RoundCancelled(asyncio.CancelledError):
    """A round cut by a barge-in, with what each of its calls came to (``cancelled`` or still running)."""

    def __init__(self, outcomes: list[ToolOutcome]) -> None:
        super().__init__()
        self.outcomes = outcomes


async def _interrupted(
    runner: ToolRunner,
    calls: list[ToolCall],
    tasks: list[asyncio.Task[ToolOutcome]],
    started: float,
    spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[Any]],
    on_late: Callable[[ToolOutcome], None],
) -> list[ToolOutcome]:
    """What each call of a round cut by a barge-in comes to: its result if it had one (a transfer in flight
    is waited for), else cancelled, or left running (not cancellable) with its result recorded by
    ``on_late`` when it comes."""
    stopping = [t for c, t in zip(calls, tasks, strict=True) if not t.done() and runner.cancellable(c)]
    for task in stopping:
        task.cancel()
    if stopping:
        await asyncio.wait(stopping)
    outcomes: list[ToolOutcome] = []
    for call, task in zip(calls, tasks, strict=True):
        if task.done():
            outcomes.append(_result(runner, call, task, started))
        else:
            log.info("tool_left_running", tool=call.name)
            _leave_running(runner, call, task, started, spawn, on_late)
            outcomes.append(ToolOutcome(call, _kind(runner, call), STILL_RUNNING, started_at=started, running=True))
    return outcomes


def _leave_running(
    runner: ToolRunner,
    call: ToolCall,
    task: asyncio.Task[ToolOutcome],
    started: float,
    spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[Any]],
    on_late: Callable[[ToolOutcome], None],
) -> None:
    """``task`` runs on, watched by a task the call owns: its outcome goes to ``on_late`` when it comes. When
    the call cancels the watcher (it is ending), the tool is cancelled too, and recorded so, at once."""

    async def finish() -> None:
        await asyncio.wait([task])
        on_late(_result(runner, call, task, started))

    def dropped(watcher: asyncio.Task[Any]) -> None:
        if not watcher.cancelled():
            return
        if task.done():
            on_late(_result(runner, call, task, started))
            return
        task.cancel()
        on_late(ToolOutcome(call, _kind(runner, call), CALL_ENDED, "cancelled", started_at=started))

    spawn(finish()).add_done_callback(dropped)
