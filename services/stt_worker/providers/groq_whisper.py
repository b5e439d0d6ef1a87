"""Cloud STT: Whisper on Groq through its OpenAI-compatible ``/audio/transcriptions`` endpoint.

Plain ``httpx.AsyncClient`` rather than the vendor SDK: it keeps the dependency surface small and lets tests
intercept every request at the HTTP boundary with respx. The turn is sent as a WAV file (multipart), and the
errors are classified and retried by ``shared.provider_http.HttpProvider`` like every cloud adapter's; a
transcription is one request with no partial output, so retrying the whole request is always safe.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from services.stt_worker.providers.base import Transcript
from shared.audio import write_wav
from shared.provider_cache import ProviderError
from shared.provider_catalog import Model, Offer, Usability, needs_env
from shared.provider_http import GroqSettings, HttpProvider
from shared.settings import SttSettings


class Settings(SttSettings, GroqSettings):
    """Groq's key and URL (``shared.provider_http.GroqSettings``) and the STT model."""

    groq_stt_model: str = "whisper-large-v3-turbo"


NAME = "groq"
# Whisper is multilingual; these are the languages it handles best (ISO 639-1 hints, as the STT request sends)
WHISPER_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "pl", "ru", "tr", "ar", "hi", "ja", "ko", "zh", "sv")
OFFER = Offer(
    models=(
        Model("whisper-large-v3-turbo", "fast multilingual Whisper"),
        Model("whisper-large-v3", "most accurate multilingual Whisper"),
        Model("distil-whisper-large-v3-en", "English only, fastest"),
    ),
    languages=WHISPER_LANGUAGES,
    default_model_setting="groq_stt_model",
)


def usable(env: Mapping[str, str]) -> Usability:
    """With a Groq key."""
    return needs_env(env, "GROQ_API_KEY")


class GroqWhisperStt(HttpProvider):
    """``POST {GROQ_BASE_URL}/audio/transcriptions`` with ``file`` (WAV), ``model`` (default
    ``GROQ_STT_MODEL``), ``language`` (a 2-letter hint, when known), ``response_format=json``, ``temperature=0``."""

    name = "groq"
    service = "stt"
    key_env = "GROQ_API_KEY"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.base_url = settings.groq_base_url.rstrip("/")
        self._api_key = settings.groq_api_key.get_secret_value()
        self.model = settings.groq_stt_model

    def client_config(self) -> tuple[str, dict[str, str]]:
        if not self._api_key:
            raise ProviderError("auth", f"set {self.key_env} to use the {self.name} STT provider")
        return self.base_url, {"Authorization": f"Bearer {self._api_key}"}

    async def transcribe(
        self, audio: bytes, sample_rate: int, *, language: str | None = None, model: str | None = None
    ) -> Transcript:
        client = self._client_for_request()
        lang = language.split("-")[0].lower() if language else None
        if not audio:
            return Transcript(text="", language=lang)
        wav = write_wav(audio[: len(audio) // 2 * 2], sample_rate)
        data = {"model": model or self.model, "response_format": "json", "temperature": "0"}
        if lang:
            data["language"] = lang
        return await self._post(
            client,
            "/audio/transcriptions",
            data=data,
            files={"file": ("turn.wav", wav, "audio/wav")},
            parse=lambda resp: self._parse(resp, lang),
        )

    def _parse(self, resp: httpx.Response, lang: str | None) -> Transcript:
        """``{"text": "...", ...}`` (Groq's Whisper answers in OpenAI's shape)."""
        body, text = self._json_string(resp, "text")
        return Transcript(text=text.strip(), language=body.get("language") or lang)


Provider = GroqWhisperStt
