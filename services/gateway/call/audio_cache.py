"""Synthesised audio of fixed texts (greeting, re-prompt, goodbyes, apology), shared by all calls on this
gateway: a greeting plays with no TTS wait after its first call, and the apology can still be spoken when
TTS itself is what failed. Keyed by text, voice and output format; bounded (least recently used goes)."""

from __future__ import annotations

from collections import OrderedDict

from shared.events import VoiceSpec

CacheKey = tuple[str, str, int, str]


class AudioCache:
    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[CacheKey, bytes] = OrderedDict()
        self._claimed: set[CacheKey] = set()

    @staticmethod
    def key(text: str, voice: VoiceSpec, sample_rate: int, encoding: str) -> CacheKey:
        return (text, voice.model_dump_json(), sample_rate, encoding)

    def get(self, key: CacheKey) -> bytes | None:
        audio = self._items.get(key)
        if audio is None:
            return None
        self._items.move_to_end(key)
        return audio

    def put(self, key: CacheKey, audio: bytes) -> None:
        if not audio:
            return
        self._items[key] = audio
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def claim(self, key: CacheKey) -> bool:
        """Only one call at a time fills a missing entry ahead of need."""
        if key in self._claimed:
            return False
        self._claimed.add(key)
        return True

    def release(self, key: CacheKey) -> None:
        self._claimed.discard(key)

    def __len__(self) -> int:
        return len(self._items)
