"""What the local (on-CPU) TTS engines share: running a blocking synthesis in a thread as an async stream, and
cutting each synthesised sentence into ``TTS_CHUNK_MS`` pieces at the engine's native rate (the worker resamples
once to the caller's rate and encoding, the same way for every engine)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator

from shared.provider_cache import ProviderError
from shared.threaded import iterate_in_thread

Audio = tuple[bytes, int]  # (PCM16 mono chunk, its sample rate)


def pcm_chunks(pcm: bytes, sample_rate: int, chunk_ms: int) -> Iterator[Audio]:
    """``pcm`` in pieces of ``chunk_ms``: the worker forwards the first piece without waiting for the rest."""
    step = max(1, sample_rate * chunk_ms // 1000) * 2
    for i in range(0, len(pcm), step):
        yield pcm[i : i + step], sample_rate


async def stream_in_thread(engine: str, generate: Callable[[threading.Event], Iterator[Audio]]) -> AsyncIterator[Audio]:
    """``generate(cancel)`` run in a thread; any failure but a ``ProviderError`` becomes ``internal``."""
    try:
        async for item in iterate_in_thread(generate):
            yield item
    except ProviderError:
        raise
    except Exception as exc:
        raise ProviderError("internal", f"{engine} failed: {type(exc).__name__}: {exc}") from exc
