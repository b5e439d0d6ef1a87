"""The audio of a reply's segments: each segment's TTS request (in the call's voice and audio format), its
audio streamed from the TTS workers, and the fixed texts (greeting, re-prompt, goodbyes, apology) kept in the
gateway's audio cache: prefetched at the call's start, so the apology plays even when TTS has failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal

from services.gateway.call.audio_cache import AudioCache
from services.gateway.call.channel import CallChannel, TurnFailed
from services.gateway.call.record import Segment
from shared.call_config import CallConfig
from shared.events import TtsContinuation, TtsRequest
from shared.logging import get_logger
from shared.texts import AGENT_TEXTS

log = get_logger(__name__)


class SegmentAudio:
    def __init__(
        self,
        *,
        call_id: str,
        channel: CallChannel,
        config: CallConfig,
        cache: AudioCache,
        sample_rate: int,
        encoding: Literal["pcm16", "mulaw"],
        timeout_s: float,
        on_failure: Callable[[TurnFailed], None],
    ) -> None:
        self.call_id = call_id
        self.channel = channel
        self.config = config
        self.cache = cache
        self.sample_rate = sample_rate
        self.encoding = encoding
        self.timeout_s = timeout_s
        self.on_failure = on_failure  # a segment's TTS failed after its retries
        # what the agent says word for word (every agent text but the prompt): its audio is worth keeping
        self.fixed_texts = {config.text(key) for key in AGENT_TEXTS if key != "system_prompt"}

    def continuation(self) -> TtsContinuation:
        """The voice and the audio format this call's TTS requests ask for, and where the audio goes."""
        return TtsContinuation(
            voice=self.config.voice,
            language=self.config.language,
            sample_rate=self.sample_rate,
            encoding=self.encoding,
            reply_to=self.channel.subject_tts,
        )

    def request(self, turn_id: int, segment: Segment) -> TtsRequest:
        return self.continuation().request(self.call_id, turn_id, segment.index, segment.text)

    def _key(self, text: str) -> str:
        return self.cache.key(text, self.config.voice, self.sample_rate, self.encoding)

    async def fetch(self, turn_id: int, segment: Segment, out: asyncio.Queue[bytes | None], chained: bool) -> None:
        """One segment's audio into ``out`` (then None); fixed texts come from (and fill) the audio cache.
        ``chained``: the LLM worker has sent the request."""
        key = self._key(segment.text)
        cached = self.cache.get(key)
        if cached is not None:
            out.put_nowait(cached)
            out.put_nowait(None)
            return
        parts: list[bytes] = []
        try:
            synthesize = self.channel.synthesize(self.request(turn_id, segment), self.timeout_s, chained=chained)
            async with contextlib.aclosing(synthesize) as chunks:
                async for chunk in chunks:
                    if chunk.audio:
                        parts.append(chunk.audio)
                        out.put_nowait(chunk.audio)
        except TurnFailed as exc:
            out.put_nowait(None)
            self.on_failure(exc)
            return
        out.put_nowait(None)
        if segment.text in self.fixed_texts:
            self.cache.put(key, b"".join(parts))

    async def prefetch(self, text: str, segment: int = 0) -> None:
        """Put a fixed text's audio in the cache ahead of need (the apology must play even when TTS fails)."""
        key = self._key(text)
        if self.cache.get(key) is not None or not self.cache.claim(key):
            return
        try:
            request = self.request(0, Segment(index=segment, text=text))
            async with contextlib.aclosing(self.channel.synthesize(request, self.timeout_s)) as chunks:
                parts = [c.audio async for c in chunks]
            self.cache.put(key, b"".join(parts))
        except TurnFailed as exc:
            log.warning("prefetch_failed", code=exc.error.code)
        finally:
            self.cache.release(key)
