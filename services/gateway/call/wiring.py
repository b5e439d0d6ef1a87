"""Builds a call's reply parts — the reply pipeline and its segments' audio — from the session's pieces, so
the session only says what they tell it (``notify``, ``on_failure``) and what they may start (``spawn``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from services.gateway.call.audio_cache import AudioCache
from services.gateway.call.channel import CallChannel, TurnFailed
from services.gateway.call.machine import CallEvent
from services.gateway.call.output import AudioOutput
from services.gateway.call.record import CallRecord
from services.gateway.call.reply import ReplyPipeline
from services.gateway.call.speech import SegmentAudio
from services.gateway.call.tools import ToolRunner
from services.gateway.call.transport import Transport
from shared.call_config import CallConfig
from shared.settings import GatewaySettings


def reply_parts(
    *,
    call_id: str,
    channel: CallChannel,
    config: CallConfig,
    settings: GatewaySettings,
    cache: AudioCache,
    transport: Transport,
    output: AudioOutput,
    record: CallRecord,
    tools: ToolRunner,
    notify: Callable[[CallEvent], Awaitable[None]],
    on_failure: Callable[[TurnFailed], None],
    spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
) -> tuple[SegmentAudio, ReplyPipeline]:
    """The call's segment audio (its voice and the transport's audio format) and reply pipeline."""
    speech = SegmentAudio(
        call_id=call_id,
        channel=channel,
        config=config,
        cache=cache,
        sample_rate=transport.sample_rate,
        encoding=transport.encoding,
        timeout_s=settings.tts_timeout_s,
        on_failure=on_failure,
    )
    pipeline = ReplyPipeline(
        call_id=call_id,
        channel=channel,
        config=config,
        settings=settings,
        speech=speech,
        output=output,
        record=record,
        notify=notify,
        on_failure=on_failure,
        tools=tools,
        spawn=spawn,
    )
    return speech, pipeline
