"""Call control across gateway replicas: a command for a call reaches the replica that owns it.

A call lives on the one replica that holds its media socket, but a provider's webhook (Telnyx ``call.hangup``,
Twilio's status callback) or an operator's hang-up can land on any replica behind the load balancer. So every
replica subscribes to ``gateway.control.<call token>`` for each call it owns, for as long as it owns it
(``OwnedSessions`` follows ``runtime.sessions``), and a command is a NATS request on that subject
(``CallControl`` → ``CallControlReply``). Nobody subscribed means nobody owns the call: NATS answers *no
responders* at once, so asking about an unknown call costs one round trip, not a timeout.

The same router answers ``gateway.live`` (every replica replies with its live calls; ``gather_live`` merges
the replies within a short window), which the live-calls API and the agent-in-use check use.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import ValidationError

from shared import subjects
from shared.events import CallControl, CallControlReply, EventDecodeError, GatewayLiveReply, LiveCallInfo, decode_as
from shared.health import default_instance_id
from shared.logging import get_logger

if TYPE_CHECKING:
    from services.gateway.call.session import CallSession
    from services.gateway.runtime import GatewayRuntime

log = get_logger(__name__)

CONTROL_TIMEOUT_S = 1.0  # the owner answers at once (it acts after replying)
PROBE_TIMEOUT_S = 0.5
LIVE_WINDOW_S = 0.25  # how long replies to gateway.live are collected


class OwnedSessions(dict[str, "CallSession"]):
    """``runtime.sessions``, telling the router when a call joins or leaves this replica (the places that add
    and remove calls stay as they are: ``sessions[id] = s``, ``sessions.pop(id, None)``)."""

    def __init__(
        self, initial: dict[str, CallSession], on_add: Callable[[str], None], on_remove: Callable[[str], None]
    ) -> None:
        super().__init__(initial)
        self._on_add = on_add
        self._on_remove = on_remove
        for call_id in initial:
            on_add(call_id)

    def __setitem__(self, call_id: str, session: CallSession) -> None:
        new = call_id not in self
        super().__setitem__(call_id, session)
        if new:
            self._on_add(call_id)

    def __delitem__(self, call_id: str) -> None:
        super().__delitem__(call_id)
        self._on_remove(call_id)

    def pop(self, call_id: str, *default: Any) -> Any:  # type: ignore[override]
        had = call_id in self
        value = super().pop(call_id, *default)
        if had:
            self._on_remove(call_id)
        return value


class CallControlRouter:
    """Owns this replica's ``gateway.control.<token>`` subscriptions and sends commands to other owners."""

    def __init__(self, runtime: GatewayRuntime) -> None:
        self.runtime = runtime
        self.instance = runtime.settings.instance_id or default_instance_id()
        self._subs: dict[str, asyncio.Task[Subscription | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._live_sub: Subscription | None = None

    async def start(self) -> None:
        self.runtime.sessions = OwnedSessions(self.runtime.sessions, self._own, self._disown)
        self._live_sub = await self.runtime.bus.nc.subscribe(subjects.GATEWAY_LIVE, cb=self._on_live)

    async def stop(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 5)
        for call_id in list(self._subs):
            self._disown(call_id)

    # --- the calls this replica owns -------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _own(self, call_id: str) -> None:
        self._subs[call_id] = asyncio.ensure_future(self._subscribe(call_id))

    def _disown(self, call_id: str) -> None:
        task = self._subs.pop(call_id, None)
        if task is not None:
            self._spawn(self._unsubscribe(task))

    async def _subscribe(self, call_id: str) -> Subscription | None:
        try:
            return await self.runtime.bus.nc.subscribe(subjects.control_subject(call_id), cb=self._on_control)
        except Exception as exc:  # the bus is closed: nobody can send us commands anyway
            log.warning("call_control_subscribe_failed", call_id=call_id, error=str(exc) or type(exc).__name__)
            return None

    async def _unsubscribe(self, task: asyncio.Task[Subscription | None]) -> None:
        with contextlib.suppress(Exception):
            sub = await task
            if sub is not None:
                await sub.unsubscribe()

    async def _on_control(self, msg: Msg) -> None:
        try:
            cmd = decode_as(msg.data, CallControl, msg.headers)
        except EventDecodeError as exc:
            log.warning("call_control_malformed", error=str(exc)[:200])
            return
        reply = self.apply(cmd)
        if msg.reply:
            await msg.respond(reply.to_bytes())

    def apply(self, cmd: CallControl) -> CallControlReply:
        """Act on a command for a call of this replica; a hang-up ends the call after the reply is sent."""
        session = self.runtime.sessions.get(cmd.call_id)
        if session is None or (cmd.client_type is not None and session.transport.client_type != cmd.client_type):
            return CallControlReply(call_id=cmd.call_id, found=False, instance=self.instance)
        reply = CallControlReply(
            call_id=cmd.call_id,
            found=True,
            done=cmd.action == "hangup",
            instance=self.instance,
            client_type=session.transport.client_type,
            state=str(session.state),
        )
        if cmd.action == "hangup":
            log.info("call_control_hangup", call_id=cmd.call_id, reason=cmd.reason, requested_by=cmd.requested_by)
            if cmd.remote_ended and hasattr(session.transport, "remote_ended"):
                session.transport.remote_ended = True  # the provider ended it: no hang-up request back
            self._spawn(session.end(cmd.reason))
        return reply

    # --- commands for any replica's calls --------------------------------------------------------------

    async def send(self, cmd: CallControl, *, timeout: float = CONTROL_TIMEOUT_S) -> CallControlReply | None:
        """The owner's reply (this replica's own calls are handled here, without the bus); None when no
        replica owns the call or none answered within ``timeout``."""
        local = self.apply(cmd)
        if local.found:
            return local
        if not self.runtime.bus.connected:
            return None
        try:
            msg = await self.runtime.bus.nc.request(
                subjects.control_subject(cmd.call_id), cmd.to_bytes(), timeout=timeout
            )
        except NoRespondersError:
            return None
        except NatsTimeoutError:
            log.warning("call_control_unanswered", call_id=cmd.call_id, action=cmd.action)
            return None
        try:
            reply = decode_as(msg.data, CallControlReply, msg.headers)
        except EventDecodeError:
            return None
        return reply if reply.found else None

    async def live_elsewhere(self, call_id: str, client_type: str | None = None) -> CallControlReply | None:
        """Whether another replica holds ``call_id`` live (the duplicate-stream check for a second stream)."""
        cmd = CallControl(call_id=call_id, action="probe", client_type=client_type, requested_by=self.instance)
        if not self.runtime.bus.connected:
            return None
        try:
            msg = await self.runtime.bus.nc.request(
                subjects.control_subject(call_id), cmd.to_bytes(), timeout=PROBE_TIMEOUT_S
            )
            reply = decode_as(msg.data, CallControlReply, msg.headers)
        except (NoRespondersError, NatsTimeoutError, EventDecodeError):
            return None
        return reply if reply.found and reply.instance != self.instance else None

    # --- every replica's live calls --------------------------------------------------------------------

    def snapshot(self) -> GatewayLiveReply:
        refusal = self.runtime.refusal()
        return GatewayLiveReply(
            instance=self.instance,
            accepting_calls=refusal is None,
            refusal=refusal,
            calls=[
                LiveCallInfo(
                    call_id=s.call_id,
                    agent_id=s.config.agent_id,
                    agent_version=s.config.agent_version,
                    client_type=s.transport.client_type,
                    state=str(s.state),
                    started_at=s.started_at,
                    instance=self.instance,
                )
                for s in list(self.runtime.sessions.values())
            ],
        )

    async def _on_live(self, msg: Msg) -> None:
        if msg.reply:
            await msg.respond(self.snapshot().model_dump_json().encode())

    async def gather_live(self, window_s: float = LIVE_WINDOW_S) -> list[GatewayLiveReply]:
        """Every replica's answer on ``gateway.live`` within ``window_s``, this one's first (from memory, so
        it is there even with the bus down), one per instance."""
        found: dict[str, GatewayLiveReply] = {self.instance: self.snapshot()}
        if not self.runtime.bus.connected:
            return list(found.values())
        nc = self.runtime.bus.nc
        inbox = nc.new_inbox()

        async def on_reply(msg: Msg) -> None:
            try:
                reply = GatewayLiveReply.model_validate_json(msg.data)
            except ValidationError:
                log.warning("bad_live_reply", data=msg.data[:200])
                return
            found.setdefault(reply.instance, reply)

        started = time.monotonic()
        sub = await nc.subscribe(inbox, cb=on_reply)
        try:
            await nc.publish(subjects.GATEWAY_LIVE, b"", reply=inbox)
            await asyncio.sleep(max(0.0, window_s - (time.monotonic() - started)))
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return list(found.values())
