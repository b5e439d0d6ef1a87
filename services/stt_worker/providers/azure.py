"""Cloud STT: Azure Speech through its REST API for short audio (up to 60 s, one request per turn).

``POST https://{region}.stt.speech.microsoft.com/speech/recognition/conversation/cognitiveservices/v1
?language={locale}&format=simple`` with the turn as a 16 kHz WAV body. Plain ``httpx.AsyncClient`` rather than
the ``azure-cognitiveservices-speech`` SDK: the SDK speaks its own websocket protocol from native code, which
tests cannot intercept at the HTTP boundary (respx), and a whole turn needs no streaming recognition.
Errors are classified and retried like the Groq Whisper adapter's: a transcription has no partial output, so
retrying the whole request is always safe.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from pydantic import Field

from services.stt_worker.providers.base import Transcript
from shared.audio import resample_pcm16, write_wav
from shared.provider_cache import ProviderError
from shared.provider_catalog import Model, Offer, Usability, needs_env
from shared.provider_http import AzureSpeechProvider, AzureSpeechSettings
from shared.settings import SttSettings

PATH = "/speech/recognition/conversation/cognitiveservices/v1"
SAMPLE_RATE = 16000
# a bare language hint → the locale Azure most likely means
DEFAULT_LOCALES = {
    "ar": "ar-SA",
    "de": "de-DE",
    "en": "en-US",
    "es": "es-ES",
    "fr": "fr-FR",
    "hi": "hi-IN",
    "it": "it-IT",
    "ja": "ja-JP",
    "ko": "ko-KR",
    "nl": "nl-NL",
    "pl": "pl-PL",
    "pt": "pt-BR",
    "ru": "ru-RU",
    "sv": "sv-SE",
    "tr": "tr-TR",
    "zh": "zh-CN",
}
EMPTY_STATUSES = ("NoMatch", "InitialSilenceTimeout")


def azure_locale(language: str | None, default: str) -> str:
    """``es-ES`` as given; a bare ``es`` → its default locale; nothing (or an unknown hint) → ``default``."""
    lang = (language or "").strip().replace("_", "-")
    if "-" in lang:
        return lang
    return DEFAULT_LOCALES.get(lang.lower(), default)


class Settings(SttSettings, AzureSpeechSettings):
    """The Azure Speech resource (``shared.provider_http.AzureSpeechSettings``) and the default locale."""

    azure_stt_language: str = Field(default="en-US", description="locale when the request gives none")


NAME = "azure"
OFFER = Offer(
    models=(Model("default", "Azure Speech short-audio recognition (the locale picks the model)"),),
    languages=(
        "en-US",
        "en-GB",
        "es-ES",
        "es-MX",
        "fr-FR",
        "de-DE",
        "it-IT",
        "pt-BR",
        "pt-PT",
        "nl-NL",
        "pl-PL",
        "sv-SE",
        "ru-RU",
        "tr-TR",
        "ar-SA",
        "hi-IN",
        "ja-JP",
        "ko-KR",
        "zh-CN",
    ),
    note="AZURE_STT_LANGUAGE when the call gives no language",
)


def usable(env: Mapping[str, str]) -> Usability:
    """With an Azure Speech key and region."""
    return needs_env(env, "AZURE_SPEECH_KEY", "AZURE_SPEECH_REGION")


class AzureStt(AzureSpeechProvider):
    """One request per turn; the locale from the request (see ``azure_locale``) or ``AZURE_STT_LANGUAGE``."""

    service = "stt"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.default_language = settings.azure_stt_language

    async def transcribe(
        self, audio: bytes, sample_rate: int, *, language: str | None = None, model: str | None = None
    ) -> Transcript:
        """``model`` is ignored (Azure picks the model for the locale)."""
        client = self._client_for_request()
        locale = azure_locale(language, self.default_language)
        if not audio:
            return Transcript(text="", language=locale)
        pcm = resample_pcm16(audio[: len(audio) // 2 * 2], sample_rate, SAMPLE_RATE)
        wav = write_wav(pcm, SAMPLE_RATE)
        headers = {
            "Content-Type": f"audio/wav; codecs=audio/pcm; samplerate={SAMPLE_RATE}",
            "Accept": "application/json",
        }
        params = {"language": locale, "format": "simple"}
        return await self._post(
            client,
            PATH,
            params=params,
            content=wav,
            headers=headers,
            parse=lambda resp: Transcript(text=self._parse(resp), language=locale),
        )

    def _parse(self, resp: httpx.Response) -> str:
        """``{"RecognitionStatus": "Success", "DisplayText": ..., "Offset": ..., "Duration": ...}``."""
        body, status = self._json_string(resp, "RecognitionStatus")
        if status in EMPTY_STATUSES:
            return ""
        if status != "Success":
            # "Error" is the service failing (worth another try); "BabbleTimeout" is noise, and stays noise
            raise ProviderError("internal", f"{self.name}: RecognitionStatus {status}", retryable=status == "Error")
        text = body.get("DisplayText")
        if not isinstance(text, str):
            raise ProviderError("internal", f"{self.name}: Success without DisplayText", retryable=True)
        return text.strip()


Provider = AzureStt
