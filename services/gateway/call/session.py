"""One live call in the gateway: wires its parts together and executes what its state machine decides.

The session feeds the caller's audio to the turn detector, and every event (the detector's, the reply
pipeline's, the timers', a hang-up) to the :class:`CallMachine`, whose transition table is the only place the
call's state changes; each change is logged (``call_state``), counted, and sent to the client
(``StateChanged``). The session then runs the transition's actions: start a reply (:class:`ReplyPipeline`),
barge in (clear the client, cancel the workers, keep in :class:`CallRecord` only what the caller heard), or
say the last words and end (:mod:`.errors`), or hand the call over (a transfer). Keypad keys (:meth:`on_dtmf`)
gather into entries (:mod:`.dtmf`) that are turns of their own; the agent's tools run inside the reply
(:mod:`.tools`). The transport only moves bytes and messages, and owns the call's audio output (:mod:`.output`),
which the session and the pipeline use through its contract only.

The running reply's task (``_reply_task``) and the reply being recorded (``CallRecord.reply``) carry out what
the machine decided; they are not state: no decision reads them except to cancel what is running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import httpx

from services.gateway.call import errors
from services.gateway.call import machine as m
from services.gateway.call.audio_cache import AudioCache
from services.gateway.call.channel import CallChannel, TurnFailed
from services.gateway.call.dtmf import DigitCollector, mask
from services.gateway.call.errors import last_words, report_failure
from services.gateway.call.record import CallRecord
from services.gateway.call.reply import STT_RATE, ReplyPipeline
from services.gateway.call.speech import SegmentAudio
from services.gateway.call.timers import WATCHDOG_S, CallTimers
from services.gateway.call.tools import ToolRunner
from services.gateway.call.transport import SessionMessage, Transport
from services.gateway.call.turn_detector import VadEngine
from services.gateway.call.turn_taking import TURN_ACTIONS, TurnModel, TurnTaking, detector_for
from services.gateway.call.wiring import reply_parts
from services.gateway.call.worker_watch import WorkerWatch
from services.gateway.lifecycle.outbox import LifecycleOutbox
from services.gateway.metrics import BARGE_INS, CALL_STATE_TRANSITIONS, CALLS_ACTIVE, CALLS_TOTAL, INTERRUPTIONS
from services.gateway.transports.protocol import Ended, StateChanged
from shared.audio import StreamResampler
from shared.bus import Bus
from shared.call_config import CallConfig
from shared.events import CallEnded, CallStarted, ChatMessage
from shared.logging import bound_call, get_logger
from shared.settings import GatewaySettings
from shared.signing import signing_secret

__all__ = ["CallSession", "Transport"]

log = get_logger(__name__)


class CallSession:
    def __init__(
        self,
        *,
        call_id: str,
        transport: Transport,
        bus: Bus,
        outbox: LifecycleOutbox,
        settings: GatewaySettings,
        config: CallConfig,
        vad: VadEngine,
        audio_cache: AudioCache | None = None,
        transport_ids: dict[str, str] | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
        worker_watch: WorkerWatch | None = None,
        http: httpx.AsyncClient | None = None,
        model: TurnModel | None = None,
    ) -> None:
        self.call_id = call_id
        self.transport = transport
        self.outbox = outbox
        self.settings = settings
        self.config = config
        self.transport_ids = transport_ids or {}
        self.from_number = from_number
        self.to_number = to_number
        self.machine = m.CallMachine()
        self.timers = CallTimers(
            silence_timeout_s=config.turn.silence_timeout_s, max_call_s=config.turn.max_call_s, now=time.monotonic()
        )
        self.channel = CallChannel(bus, call_id, ack_timeout_s=settings.worker_ack_timeout_s, watch=worker_watch)
        self.detector = detector_for(vad, config.turn, max_turn_s=settings.max_turn_seconds, with_model=bool(model))
        self.inbound = StreamResampler(transport.sample_rate, STT_RATE)
        self.output = transport.open_output(frame_ms=settings.outbound_frame_ms, lead_ms=settings.outbound_lead_ms)
        self.record = CallRecord(call_id, outbox, self._send_soon)
        self.tools = ToolRunner(
            call_id=call_id,
            tools=config.tools,
            transport=transport,
            http=http,
            secret=signing_secret(settings.webhook_signing_secret.get_secret_value()),
            transfer_message=config.text("transfer_message"),
        )
        self.keypad = DigitCollector(config.dtmf, self._keypad_entry)
        self.speech, self.pipeline, self.turns = self._wire(audio_cache, model)
        self.started_at = time.time()
        self._reply_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # the call's own: cancelled (all, however late) by its end
        self._ending = False
        self._sends: set[asyncio.Task[None]] = set()  # messages on their way to the client: flushed, not cancelled
        self._ended = asyncio.Event()
        self.end_reason: str | None = None

    def _wire(
        self, audio_cache: AudioCache | None, model: TurnModel | None
    ) -> tuple[SegmentAudio, ReplyPipeline, TurnTaking]:
        """The reply pipeline and its segments' audio, and turn-taking, telling this session what happens."""
        speech, pipeline = reply_parts(
            call_id=self.call_id,
            channel=self.channel,
            config=self.config,
            settings=self.settings,
            cache=audio_cache if audio_cache is not None else AudioCache(),
            transport=self.transport,
            output=self.output,
            record=self.record,
            tools=self.tools,
            notify=self._dispatch,
            on_failure=self._on_failure,
            spawn=self._spawn,
        )
        turns = TurnTaking(
            turn=self.config.turn, detector=self.detector, model=model, pipeline=pipeline, spawn=self._spawn,
            dispatch=self._dispatch,
        )  # fmt: skip
        return speech, pipeline, turns

    # --- state -----------------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """The call's state in one word (``listening``, ``user_speaking``, ``thinking``, ``speaking``...)."""
        return self.machine.state.label

    @property
    def ended(self) -> bool:
        return self.machine.state == m.ENDED

    @property
    def history(self) -> list[ChatMessage]:
        return self.record.history

    async def wait_ended(self) -> None:
        await self._ended.wait()

    def _transition(self, event: m.CallEvent) -> m.Transition | None:
        """Hand ``event`` to the machine; announce the change it makes (log, metric, ``state`` message) right
        after the transition's actions have started, so that a turn's STT request leaves before the news of it."""
        transition = self.machine.handle(event)
        if transition is None or transition.internal:
            return transition
        self.timers.state_changed(time.monotonic())
        asyncio.get_running_loop().call_soon(self._announce, transition, type(event).__name__)
        return transition

    def _announce(self, transition: m.Transition, name: str) -> None:
        source, target = transition.source.label, transition.target.label
        with bound_call(self.call_id):
            log.info("call_state", **{"from": source, "to": target, "on": name})
        CALL_STATE_TRANSITIONS.labels(source, target).inc()
        self._send_soon(StateChanged(caller=transition.target.caller, agent=transition.target.agent, event=name))

    async def _dispatch(self, event: m.CallEvent) -> None:
        """The machine's transition for ``event``, then its actions in order."""
        if isinstance(event, m.NoWords) and (parts := self.turns.resumable(event.turn_id)):
            event = m.FalseInterruption(tuple(parts))
        transition = self._transition(event)
        for action in transition.actions if transition is not None else ():
            if self.ended:  # (an action ended the call: a transfer the barge-in found done)
                return
            await self._act(action, event)

    async def _act(self, action: m.Action, event: m.CallEvent) -> None:
        if action in TURN_ACTIONS:
            if (reply := await self.turns.act(action, event)) is not None:
                self._reply_task = reply
        elif action == m.Action.GREET:
            self._start_reply(self.pipeline.speak_fixed(self.record.next_turn(), self.config.first_message))
        elif action == m.Action.REPROMPT:
            log.info("silence_timeout_reprompt")
            self._start_reply(self.pipeline.speak_fixed(self.record.next_turn(), self.config.reprompt_message))
        elif action == m.Action.RESPOND_DIGITS:
            assert isinstance(event, m.DigitsEntered)
            sensitive = self.config.dtmf.sensitive
            self._start_reply(self.pipeline.respond_digits(self.record.next_turn(), event.digits, sensitive=sensitive))
        elif action == m.Action.CALLER_SPOKE:
            self.timers.caller_spoke()
        elif action == m.Action.BARGE_IN:
            await self._barge_in(resumable=not isinstance(event, m.DigitsEntered))
        elif action == m.Action.REPORT_ERROR:
            assert isinstance(event, m.ReplyFailed)
            await self._send_quietly(
                report_failure(event, call_id=self.call_id, turn_id=self.record.turn_id, outbox=self.outbox)
            )
        elif action == m.Action.LAST_WORDS:
            assert isinstance(event, errors.Closer)
            await self._last_words(event)
        elif action == m.Action.HAND_OVER:
            assert isinstance(event, m.Transferred)
            await self.end("transferred", transferred_to=event.target)

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        with bound_call(self.call_id):
            await self.channel.open()
            self.output.start()
            CALLS_ACTIVE.labels(self.transport.client_type).inc()
            self.outbox.put(
                CallStarted(
                    call_id=self.call_id,
                    agent_id=self.config.agent_id,
                    agent_version=self.config.agent_version,
                    client_type=self.transport.client_type,
                    transport_ids=self.transport_ids,
                    from_number=self.from_number,
                    to_number=self.to_number,
                    started_at=self.started_at,
                )
            )
            log.info(
                "call_started",
                client_type=self.transport.client_type,
                agent_id=self.config.agent_id,
                agent_version=self.config.agent_version,
            )
            self._spawn(self._watchdog())
            self._spawn(self.speech.prefetch(self.config.apology_message))  # speakable even if TTS fails later
            self._spawn(self.speech.prefetch(self.config.shutdown_text, segment=1))  # a deploy may stop workers
            await self._dispatch(m.Greet() if self.config.first_message else m.Start())

    async def end(self, reason: str, *, close_code: int = 1000, transferred_to: str | None = None) -> None:
        """End the call once (idempotent): stop work, record the end, close the transport. A second caller
        (the receive loop seeing the state change) waits until the first has finished: returning earlier lets
        the WebSocket endpoint return, and the server then drops the connection before "ended" was sent."""
        if self._transition(m.HangUp(reason)) is None:
            await self._ended.wait()
            return
        try:
            await self._end(reason, close_code, transferred_to)
        finally:
            self._ended.set()

    async def _end(self, reason: str, close_code: int, transferred_to: str | None) -> None:
        with bound_call(self.call_id):
            self.end_reason = reason
            self.keypad.close()
            await self._stop_tasks()
            if self.record.reply is not None:
                self.record.assistant(self.record.reply, interrupted=True, heard_bytes=self.output.played_bytes())
            try:
                await self.channel.cancel(None, reason="call_ended")
            except Exception:  # the bus may be down; workers then time out on their own
                log.warning("cancel_publish_failed")
            await self.output.stop()
            await self.channel.close()
            if self._sends:  # the last transcript goes out before "ended"; cancelling a send mid-frame would
                await asyncio.wait(self._sends, timeout=2.0)  # break the WebSocket (1006) instead
            duration, turns = max(0.0, time.time() - self.started_at), self.record.seq
            ids = {"call_id": self.call_id, "transferred_to": transferred_to}
            self.outbox.put(CallEnded(reason=reason, duration_s=round(duration, 3), turns=turns, **ids))
            CALLS_ACTIVE.labels(self.transport.client_type).dec()
            CALLS_TOTAL.labels(self.transport.client_type, reason).inc()
            log.info("call_ended", reason=reason, duration_s=round(duration, 1), turns=turns)
            try:
                await self.transport.send_event(Ended(reason=reason))
                await self.transport.close(close_code, reason)
            except Exception:  # the client is already gone
                pass

    async def _stop_tasks(self) -> None:
        """Cancel the reply and the call's tasks until none is left (a reply cut mid round leaves a tool to a
        task of its own; ``_spawn`` cancels what is spawned from now on): nothing runs past the end."""
        self._ending = True
        current = asyncio.current_task()
        while tasks := [t for t in (self._reply_task, *self._tasks) if t not in (None, current) and not t.done()]:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close_for_shutdown(self) -> None:
        """The gateway is going away and the drain timed out: cut whatever is playing, say the agent's
        shutdown goodbye (prefetched at start), then end (``gateway_shutdown``, 1012: call again). A call
        already saying another goodbye just finishes it."""
        say = asyncio.create_task(self._dispatch(m.Shutdown()))
        ended = asyncio.create_task(self.wait_ended())
        # a caller who hangs up during the goodbye ends the call: stop waiting for its audio to play out
        await asyncio.wait({say, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not say.done():
            say.cancel()
        await asyncio.gather(say, return_exceptions=True)
        await ended

    # --- caller audio ----------------------------------------------------------------------------------

    async def on_audio(self, pcm: bytes) -> None:
        """Caller audio (PCM16 at the transport's rate). Runs VAD and acts on turn boundaries."""
        if self.machine.state.agent in (m.Agent.ENDING, m.Agent.CLOSING, m.Agent.ENDED):
            return  # (nothing the caller says now is a turn: the agent is ending the call)
        for event in self.detector.feed(self.inbound.process(pcm)):
            await self._dispatch(event)

    async def on_dtmf(self, digit: str) -> None:
        """A keypad key from the line or the browser; entries (per the agent's ``dtmf``) become turns."""
        if self.machine.state.agent in (m.Agent.STARTING, m.Agent.ENDING, m.Agent.CLOSING, m.Agent.ENDED):
            return
        await self.keypad.press(digit)

    async def _keypad_entry(self, digits: str) -> None:
        log.info("dtmf_entry", digits=mask(digits) if self.config.dtmf.sensitive else digits, state=self.state)
        if not self.ended:
            await self._dispatch(m.DigitsEntered(digits))

    async def _barge_in(self, resumable: bool) -> None:
        """The caller talks (``resumable``) or keys over the agent: stop it and its workers, keep what was heard."""
        turn_id = self.record.reply.turn_id if self.record.reply is not None else None
        reply = self.record.reply
        self.turns.went_on(spoken=resumable)  # (a turn whose words were not taken yet opens the next one)
        heard = await self._stop_reply("barge_in")
        self.turns.keep_cut(reply.unheard(heard) if reply is not None and resumable else [])
        BARGE_INS.labels(self.transport.client_type).inc()
        INTERRUPTIONS.labels("barge_in").inc()
        log.info("barge_in", turn_id=turn_id, heard_bytes=heard)

    async def _stop_reply(self, reason: str) -> int:
        """Clear the client's audio, cancel the reply and its workers, record what of it was heard. A transfer
        whose request was already out when the reply was cut went through: the call ends ``transferred``."""
        reply, task = self.record.reply, self._reply_task
        heard = await self.output.clear()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if reply is not None:
            await self.channel.cancel(reply.turn_id, reason=reason)
            self.record.assistant(reply, interrupted=True, heard_bytes=heard)
        if self.pipeline.handed_over is not None:
            await self.end("transferred", transferred_to=self.pipeline.handed_over)
        return heard

    # --- replies ---------------------------------------------------------------------------------------

    def _start_reply(self, coro: Coroutine[Any, Any, None]) -> None:
        self._reply_task = asyncio.create_task(coro)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        if self._ending:  # (refused: cancelled before it runs, and its done callbacks see that)
            task.cancel()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_failure(self, exc: TurnFailed) -> None:
        """A stage failed after its retries (in the reply task or a segment's fetch): the error policy runs
        on its own task, which may cancel the reply."""
        self._spawn(self._dispatch(m.ReplyFailed(exc.stage, exc.error)))

    async def _last_words(self, event: errors.Closer) -> None:
        """Stop whatever is going on, say a last message (the caller can't interrupt it), then end."""
        words = last_words(event, self.config)
        task = self._reply_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            await self._stop_reply(words.reason)
        if self.ended:  # (handed over while being cut: nothing more is ours to say)
            return
        try:
            if words.text:
                await asyncio.wait_for(self.pipeline.speak_fixed(self.record.next_turn(), words.text), timeout=30)
        except (TimeoutError, TurnFailed):
            log.warning("last_message_not_spoken", reason=words.reason)
        await self.end(words.reason, close_code=words.close_code)

    async def _watchdog(self) -> None:
        """Re-prompt after a silence, hang up after a second one; end politely at the maximum duration."""
        while self.machine.state.agent not in (m.Agent.CLOSING, m.Agent.ENDED):
            await asyncio.sleep(WATCHDOG_S)
            event = self.timers.due(time.monotonic(), listening=self.machine.state == m.LISTENING)
            if event is not None:
                await self._dispatch(event)

    # --- messages to the client ------------------------------------------------------------------------

    def _send_soon(self, message: SessionMessage) -> None:
        task = asyncio.create_task(self._send_quietly(message))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_quietly(self, message: SessionMessage) -> None:
        try:
            await self.transport.send_event(message)
        except Exception:  # the client is gone; the receive loop ends the call
            pass
