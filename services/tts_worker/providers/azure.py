"""Cloud TTS: Azure Speech neural voices through the REST text-to-speech endpoint.

``POST https://{region}.tts.speech.microsoft.com/cognitiveservices/v1`` with an SSML body; the response body
is the audio, streamed as it is synthesised. Plain ``httpx.AsyncClient`` rather than the
``azure-cognitiveservices-speech`` SDK: the SDK speaks its own websocket protocol from native code, which
tests cannot intercept at the HTTP boundary (respx), and it is a large native dependency; the REST response
is already streamed, so chunks are passed on as they arrive.

The output format is chosen from the requested sample rate, so the worker resamples nothing. Failures are
classified with ``shared.provider_http`` and retried only before the first audio chunk was yielded (after
that, a retry would repeat audio the caller has already played).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import httpx
from pydantic import Field

from shared.events import VoiceSpec
from shared.provider_catalog import Offer, Usability, Voice, needs_env
from shared.provider_http import AzureSpeechProvider, AzureSpeechSettings
from shared.settings import TtsSettings
from shared.ssml import build_ssml

PATH = "/cognitiveservices/v1"
# Raw (headerless) PCM16 mono formats. We yield PCM16 and the worker converts to μ-law once for telephony;
# Azure's ``raw-8khz-8bit-mono-mulaw`` would save that step, but the provider interface is PCM16.
OUTPUT_FORMATS: dict[int, str] = {
    8000: "raw-8khz-16bit-mono-pcm",
    16000: "raw-16khz-16bit-mono-pcm",
    22050: "raw-22050hz-16bit-mono-pcm",
    24000: "raw-24khz-16bit-mono-pcm",
    44100: "raw-44100hz-16bit-mono-pcm",
    48000: "raw-48khz-16bit-mono-pcm",
}


def output_format(sample_rate: int) -> tuple[int, str]:
    """The requested rate if Azure produces it, else the nearest higher one (the worker resamples down)."""
    rate = next((r for r in sorted(OUTPUT_FORMATS) if r >= sample_rate), max(OUTPUT_FORMATS))
    return rate, OUTPUT_FORMATS[rate]


class Settings(TtsSettings, AzureSpeechSettings):
    """The Azure Speech resource (``shared.provider_http.AzureSpeechSettings``) and the default voice."""

    azure_tts_voice: str = Field(default="en-US-JennyNeural", description="voice when the request names none")


NAME = "azure"
# Azure styles are the ``mstts:express-as`` styles each voice supports (only where known; others speak neutral)
_US_STYLES = ("angry", "cheerful", "excited", "friendly", "hopeful", "sad", "shouting", "terrified", "unfriendly")
OFFER = Offer(
    voices=(
        Voice("en-US-JennyNeural", "en-US", "female", ("assistant", "chat", "newscast", *_US_STYLES)),
        Voice("en-US-GuyNeural", "en-US", "male", ("newscast", *_US_STYLES)),
        Voice("en-US-AriaNeural", "en-US", "female", ("chat", "customerservice", "empathetic", *_US_STYLES)),
        Voice("en-US-DavisNeural", "en-US", "male", ("chat", *_US_STYLES)),
        Voice("en-US-AvaMultilingualNeural", "en-US", "female"),
        Voice("en-US-AndrewMultilingualNeural", "en-US", "male"),
        Voice("en-GB-SoniaNeural", "en-GB", "female", ("cheerful", "sad")),
        Voice("en-GB-RyanNeural", "en-GB", "male", ("chat", "cheerful")),
        Voice("es-ES-ElviraNeural", "es-ES", "female"),
        Voice("es-ES-AlvaroNeural", "es-ES", "male"),
        Voice("es-MX-DaliaNeural", "es-MX", "female"),
        Voice("es-MX-JorgeNeural", "es-MX", "male", ("chat", "cheerful")),
        Voice("fr-FR-DeniseNeural", "fr-FR", "female", ("cheerful", "sad")),
        Voice("fr-FR-HenriNeural", "fr-FR", "male", ("cheerful", "sad")),
        Voice("de-DE-KatjaNeural", "de-DE", "female"),
        Voice("de-DE-ConradNeural", "de-DE", "male", ("cheerful",)),
        Voice("it-IT-ElsaNeural", "it-IT", "female"),
        Voice("it-IT-DiegoNeural", "it-IT", "male"),
        Voice("pt-BR-FranciscaNeural", "pt-BR", "female", ("calm",)),
        Voice("pt-BR-AntonioNeural", "pt-BR", "male"),
    ),
    default_voice_setting="azure_tts_voice",
    note="any Azure neural voice name works; these are common ones",
)


def usable(env: Mapping[str, str]) -> Usability:
    """With an Azure Speech key and region."""
    return needs_env(env, "AZURE_SPEECH_KEY", "AZURE_SPEECH_REGION")


class AzureTts(AzureSpeechProvider):
    """Voice from ``voice.name`` (default ``AZURE_TTS_VOICE``), speaking style from ``voice.style``, rate and
    pitch from ``voice.rate``/``voice.pitch`` as SSML prosody; language from the request."""

    service = "tts"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.default_voice = settings.azure_tts_voice
        self.chunk_ms = settings.tts_chunk_ms

    async def synthesize(
        self, text: str, voice: VoiceSpec, *, language: str, sample_rate: int
    ) -> AsyncIterator[tuple[bytes, int]]:
        client = self._client_for_request()
        rate, fmt = output_format(sample_rate)
        ssml = build_ssml(
            text,
            voice_name=voice.name or self.default_voice,
            language=language,
            style=voice.style,
            rate=voice.rate,
            pitch=voice.pitch,
        )
        headers = {"Content-Type": "application/ssml+xml", "X-Microsoft-OutputFormat": fmt}
        step = max(1, rate * self.chunk_ms // 1000) * 2
        chunks = self._stream(
            client,
            PATH,
            content=ssml.encode(),
            headers=headers,
            parse=lambda resp: _pcm_chunks(resp, step),
            partial_is_final=False,
        )
        async with contextlib.aclosing(chunks):
            async for pcm in chunks:
                yield pcm, rate


async def _pcm_chunks(resp: httpx.Response, step: int) -> AsyncIterator[bytes]:
    """PCM16 chunks of ``step`` bytes as the body arrives (a trailing odd byte waits for the next read), then
    the remainder."""
    buf = bytearray()
    async for data in resp.aiter_bytes():
        buf += data
        while len(buf) >= step:
            chunk = bytes(buf[:step])
            del buf[:step]
            yield chunk
    tail = len(buf) // 2 * 2
    if tail:
        yield bytes(buf[:tail])


Provider = AzureTts
