"""The turn-taking pause set: utterances with a mid-sentence pause, built offline in English and Spanish.

    python -m bench.pause_set                  # build (or load) both languages and list them
    python -m bench.pause_set --language es --rebuild

A caller who stops to think ("I'd like to book a table for... [700 ms] ...four people on Friday") has not
finished; an agent that answers at the pause cuts them off. The set holds, per language:

- ``pause``: a sentence spoken in two pieces joined by exact digital silence of 300-1000 ms, the pause's
  position and length known to the sample;
- ``control``: complete sentences without a pause (an end of turn must still be fast for them);
- ``backchannel``: "mm-hm", "yeah", "okay" / "sí", "ajá", "vale", said while the agent speaks (they must not
  interrupt it), and ``cough``: a short broadband burst, the same for both languages.

English is spoken by the piper voice and Spanish by a Kokoro voice other than the Spanish agent's
(``tools.talk.synthesize``). Each piece is trimmed of the synthesiser's leading and trailing near-silence, so the
last 20 ms frame of an utterance is speech. The set is cached (16 kHz PCM16 WAVs and ``manifest.json``) under
``~/.cache/victoria/pause_set/<language>/<digest>/``; the digest covers the texts, pauses and this builder's
version, so an edited script is rebuilt and never read stale.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import wave
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

RATE = 16000
FRAME_SAMPLES = 320  # 20 ms
BUILDER_VERSION = 2
Kind = Literal["pause", "control", "backchannel", "cough"]
Synth = Callable[[str, str], Awaitable[bytes]]  # (text, language) -> PCM16 16 kHz

# (first piece, second piece, pause in ms): the pause falls where a caller stops to think, never at the end
PAUSES: dict[str, list[tuple[str, str, int]]] = {
    "en": [
        ("I'd like to book a table for", "four people on Friday.", 700),
        ("Could you tell me if", "you have a table free tonight?", 300),
        ("The reservation is under the name", "Garcia for eight o'clock.", 1000),
        ("Can I bring", "my dog to the terrace?", 400),
        ("I was wondering whether", "I could move my booking to Saturday.", 800),
        ("My phone number is", "six five five two one three.", 500),
        ("We would like something", "vegetarian for the children.", 900),
        ("I need to change the time to", "half past seven please.", 600),
    ],
    "es": [
        ("Quería reservar una mesa para", "cuatro personas el viernes.", 600),
        ("¿Me podría decir si", "tienen una mesa libre esta noche?", 300),
        ("La reserva está a nombre de", "García para las ocho.", 1000),
        ("¿Puedo llevar", "a mi perro a la terraza?", 400),
        ("Me preguntaba si", "podría cambiar mi reserva al sábado.", 800),
        ("Mi número de teléfono es el", "seis cinco cinco dos uno tres.", 500),
        ("Queríamos algo", "vegetariano para los niños.", 900),
        ("Necesito cambiar la hora a", "las siete y media por favor.", 700),
    ],
}
CONTROLS: dict[str, list[str]] = {
    "en": [
        "What time do you open tomorrow morning?",
        "Do you have any vegetarian dishes on the menu?",
        "Can you tell me your address please?",
    ],
    "es": [
        "Quería saber a qué hora abren mañana.",
        "Tienen ustedes platos vegetarianos en el menú.",
        "Me puede dar su dirección por favor.",
    ],
}
BACKCHANNELS: dict[str, list[str]] = {"en": ["Mm-hmm.", "Yeah.", "Okay."], "es": ["Sí.", "Ajá.", "Vale."]}
LANGUAGES = tuple(PAUSES)


@dataclass(frozen=True)
class Utterance:
    """One thing the caller says: ``pcm`` is 16 kHz PCM16 whose last 20 ms frame is speech; a ``pause``
    utterance is silent (exact zeros) from ``pause_at_s`` for ``pause_ms``."""

    id: str
    language: str
    kind: Kind
    text: str
    pcm: bytes
    pause_at_s: float | None = None
    pause_ms: int = 0
    other_silence_ms: int = 0  # the longest silence inside it besides the pause (the synthesiser's own)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / RATE


def _frame_levels(pcm: bytes) -> np.ndarray:
    x = np.frombuffer(pcm[: len(pcm) // (2 * FRAME_SAMPLES) * 2 * FRAME_SAMPLES], dtype="<i2").astype(np.float64)
    frames = x.reshape(-1, FRAME_SAMPLES)
    return 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) / 32768 + 1e-12)


def trim(pcm: bytes, threshold_dbfs: float = -40.0) -> bytes:
    """``pcm`` from its first to its last 20 ms frame louder than ``threshold_dbfs`` (whole frames)."""
    loud = np.flatnonzero(_frame_levels(pcm) > threshold_dbfs)
    if not len(loud):
        return pcm
    step = 2 * FRAME_SAMPLES
    return pcm[int(loud[0]) * step : (int(loud[-1]) + 1) * step]


def silences(pcm: bytes, min_ms: int = 100, threshold_dbfs: float = -40.0) -> list[tuple[float, int]]:
    """(start in s, length in ms) of each run of 20 ms frames quieter than ``threshold_dbfs`` lasting at least
    ``min_ms``."""
    quiet = np.append(_frame_levels(pcm) <= threshold_dbfs, False)
    runs, start = [], None
    for i, q in enumerate(quiet):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) * 20 >= min_ms:
                runs.append((start * 0.02, (i - start) * 20))
            start = None
    return runs


def other_silence_ms(pcm: bytes, pause_at_s: float | None = None) -> int:
    """The longest silence in ``pcm`` that is not the pause starting at ``pause_at_s``."""
    others = [ms for at, ms in silences(pcm, 20) if pause_at_s is None or abs(at - pause_at_s) > 0.03]
    return max(others, default=0)


def join(head: bytes, tail: bytes, pause_ms: int) -> tuple[bytes, float]:
    """``head`` and ``tail`` (each trimmed) with exactly ``pause_ms`` of digital silence between them; returns
    the audio and where the pause starts (s)."""
    first = trim(head)
    return first + bytes(2 * RATE * pause_ms // 1000) + trim(tail), len(first) / 2 / RATE


def cough(duration_s: float = 0.25, seed: int = 7) -> bytes:
    """A cough-like burst: noise, low-passed, with a 10 ms attack and a fast decay (about -12 dBFS peak)."""
    n = int(duration_s * RATE)
    rng = np.random.default_rng(seed)
    noise = np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same")
    t = np.arange(n) / RATE
    envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / (duration_s / 4))
    burst = noise * envelope
    burst *= 0.25 / max(1e-9, float(np.abs(burst).max()))
    pcm = (burst * 32767).astype("<i2").tobytes()
    return pcm[: len(pcm) // (2 * FRAME_SAMPLES) * 2 * FRAME_SAMPLES]


def script_digest(language: str) -> str:
    """What the set of ``language`` is made of; the cache folder's name."""
    script = {
        "version": BUILDER_VERSION,
        "pauses": PAUSES[language],
        "controls": CONTROLS[language],
        "backchannels": BACKCHANNELS[language],
    }
    return hashlib.sha256(json.dumps(script, ensure_ascii=False).encode()).hexdigest()[:16]


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "victoria" / "pause_set"


async def synthesize_offline(text: str, language: str) -> bytes:
    """English: piper; Spanish: Kokoro ``jf_gongitsune`` (not the Spanish agent's ``jm_kumo``)."""
    from tools.talk import synthesize

    return await synthesize(text, language)


async def build(language: str, synth: Synth = synthesize_offline) -> list[Utterance]:
    """Synthesise the set of ``language`` (no cache)."""
    out: list[Utterance] = []
    for head, tail, pause_ms in PAUSES[language]:
        pcm, at = join(await synth(head, language), await synth(tail, language), pause_ms)
        text = f"{head} ... {tail}"
        other = other_silence_ms(pcm, at)
        out.append(Utterance(f"{language}-pause{pause_ms}", language, "pause", text, pcm, at, pause_ms, other))
    for i, text in enumerate(CONTROLS[language], 1):
        pcm = trim(await synth(text, language))
        out.append(Utterance(f"{language}-control{i}", language, "control", text, pcm, None, 0, other_silence_ms(pcm)))
    for i, text in enumerate(BACKCHANNELS[language], 1):
        pcm = trim(await synth(text, language))
        out.append(Utterance(f"{language}-backchannel{i}", language, "backchannel", text, pcm))
    out.append(Utterance(f"{language}-cough", language, "cough", "(cough)", cough()))
    return out


def save(folder: Path, utterances: list[Utterance]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for u in utterances:
        with wave.open(str(folder / f"{u.id}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(u.pcm)
        manifest.append({k: v for k, v in asdict(u).items() if k != "pcm"})
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")


def read(folder: Path) -> list[Utterance]:
    out = []
    for row in json.loads((folder / "manifest.json").read_text(encoding="utf-8")):
        with wave.open(str(folder / f"{row['id']}.wav")) as w:
            out.append(Utterance(pcm=w.readframes(w.getnframes()), **row))
    return out


async def load(
    language: str, cache: Path | None = None, synth: Synth = synthesize_offline, rebuild: bool = False
) -> list[Utterance]:
    """The set of ``language``: read from the cache, or built and cached."""
    folder = (cache or default_cache()) / language / script_digest(language)
    if not rebuild and (folder / "manifest.json").exists():
        return await asyncio.to_thread(read, folder)
    utterances = await build(language, synth)
    await asyncio.to_thread(save, folder, utterances)
    return utterances


async def main_async(languages: list[str], rebuild: bool) -> None:
    for language in languages:
        for u in await load(language, rebuild=rebuild):
            pause = f"pause {u.pause_ms} ms at {u.pause_at_s:.2f} s" if u.pause_at_s is not None else ""
            other = f"other silence ≤ {u.other_silence_ms} ms"
            print(f"{u.id:18s} {u.kind:11s} {u.duration_s:5.2f} s  {pause:24s} {other:22s} {u.text}")
        print(f"cached in {default_cache() / language / script_digest(language)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--language", choices=LANGUAGES, nargs="+", default=list(LANGUAGES))
    parser.add_argument("--rebuild", action="store_true", help="synthesise again even if cached")
    args = parser.parse_args()
    asyncio.run(main_async(args.language, args.rebuild))


if __name__ == "__main__":
    main()
