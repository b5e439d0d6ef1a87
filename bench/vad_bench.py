"""VAD engines compared: CPU cost per call and turn-detection accuracy on synthesized speech.

Run from the repository root (fully offline: speech comes from the bundled piper voice)::

    python -m bench.vad_bench                      # defaults: 20 repeats, 60 s of audio per CPU repeat
    python -m bench.vad_bench --repeats 5 --start-ms 160

CPU: ``time.process_time`` (CPU of the whole process, all threads) over ``--cpu-seconds`` of audio (speech,
silence, low-level noise, loud noise and clicks), fed to a ``TurnDetector`` in 20 ms chunks as the gateway
does. CPU seconds per audio second is the share of one core that one call's VAD keeps busy, and its
inverse is how many calls one core could run on VAD alone.

Accuracy: piper phrases placed between silences over a -60 dBFS noise floor, with the true speech
bounds taken from the clean synthesized audio (10 ms windows within 40 dB of the phrase's peak).
The same phrases are also run over -30 dBFS white noise (about 15-20 dB SNR).
Onset delay = SpeechStarted time - true start (it includes the ``start_ms`` confirmation window by
design); end delay = TurnEnded time - true end (includes ``stop_ms``). False starts: 10 s of white noise
at -30 dBFS RMS with four 50 ms clicks. Every figure is a median and a p99 over repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from services.gateway.call.turn_detector import SpeechStarted, TurnDetector, TurnEnded, TurnEvent, VadEngine

SR = 16000
BYTES_PER_S = SR * 2
CHUNK_BYTES = 640  # 20 ms: what the gateway hands the detector per media packet

PHRASES = (
    "I'd like to book a table for two people at eight tonight, please.",
    "Hello, can you hear me?",
    "Seven thirty works for us.",
    "Five people, and one of them is a child.",
    "My name is Maria Hernandez.",
    "Thanks, that's all for now.",
    "Yes.",
)


# ---------------------------------------------------------------- audio helpers (also used by tests/unit/test_vad.py)


async def synthesize(texts: Sequence[str]) -> list[np.ndarray]:
    """Each text spoken by the offline piper voice, as float32 in [-1, 1] at 16 kHz."""
    from services.tts_worker.providers import TtsWorkerSettings
    from services.tts_worker.providers.local_piper import LocalPiperTts
    from shared.audio import resample_pcm16
    from shared.events import VoiceSpec

    tts = LocalPiperTts(TtsWorkerSettings())
    out = []
    for text in texts:
        chunks: list[bytes] = []
        rate = SR
        async for pcm, chunk_rate in tts.synthesize(text, VoiceSpec(), language="en-US", sample_rate=SR):
            chunks.append(pcm)
            rate = chunk_rate
        pcm16 = resample_pcm16(b"".join(chunks), rate, SR)
        out.append(np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0)
    return out


def speech_bounds(x: np.ndarray, floor_db: float = 40.0) -> tuple[float, float]:
    """(start_s, end_s) of the voiced part of a clean clip: 10 ms windows within ``floor_db`` of the peak."""
    win = SR // 100
    n = len(x) // win
    rms = np.sqrt(np.mean(x[: n * win].reshape(n, win).astype(np.float64) ** 2, axis=1)) + 1e-12
    level = 20 * np.log10(rms)
    voiced = np.flatnonzero(level >= level.max() - floor_db)
    return voiced[0] * win / SR, (voiced[-1] + 1) * win / SR


def trim(x: np.ndarray) -> np.ndarray:
    start, end = speech_bounds(x)
    return x[round(start * SR) : round(end * SR)]


def white_noise(seconds: float, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """White noise with an RMS of ``dbfs`` relative to full scale."""
    return rng.normal(0.0, 10 ** (dbfs / 20), round(seconds * SR)).astype(np.float32)


def burst(kind: str, ms: float, rng: np.random.Generator) -> np.ndarray:
    """A short non-speech transient: ``click`` (a knock: broadband, sharp attack, fast decay) or ``cough``
    (low-passed noise under a rise-and-fall envelope, about -10 dBFS)."""
    n = round(ms * SR / 1000)
    t = np.arange(n)
    if kind == "click":
        return (rng.normal(0.0, 0.3, n) * np.exp(-t / (0.015 * SR))).astype(np.float32)
    if kind == "cough":
        b = np.convolve(rng.normal(0.0, 1.0, n), np.ones(8) / 8, "same")
        return (0.3 * b / b.std() * np.sin(np.pi * t / n)).astype(np.float32)
    raise ValueError(kind)


def to_pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16).tobytes()


@dataclass(frozen=True)
class Scene:
    pcm: bytes
    speech_start_s: float  # true bounds in stream time
    speech_end_s: float


def utterance_scene(
    speech: np.ndarray, rng: np.random.Generator, *, lead_s: float = 1.0, tail_s: float = 1.5, noise_dbfs=-60.0
) -> Scene:
    """Silence, one utterance, silence, all over a white-noise floor."""
    clip = trim(speech)
    lead = round(lead_s * SR)
    x = white_noise(lead_s + len(clip) / SR + tail_s, noise_dbfs, rng)
    x[lead : lead + len(clip)] += clip
    return Scene(to_pcm16(x), lead / SR, (lead + len(clip)) / SR)


def run(detector: TurnDetector, pcm: bytes, chunk_bytes: int = CHUNK_BYTES) -> list[TurnEvent]:
    events: list[TurnEvent] = []
    for i in range(0, len(pcm), chunk_bytes):
        events.extend(detector.feed(pcm[i : i + chunk_bytes]))
    return events


# ---------------------------------------------------------------- engines


def engine_factories() -> dict[str, Callable[[], VadEngine]]:
    from services.gateway.call.vad_silero import GatedSileroVad, SileroVad
    from services.gateway.call.vad_webrtc import WebRtcVad

    return {
        "webrtc+silero (default)": lambda: GatedSileroVad(2),
        "webrtc (mode 2)": lambda: WebRtcVad(2),
        "webrtc (mode 3)": lambda: WebRtcVad(3),
        "silero (thr 0.5)": lambda: SileroVad(0.5),
    }


@dataclass(frozen=True)
class Params:
    start_ms: int = 120
    stop_ms: int = 500
    preroll_ms: int = 200
    max_turn_s: float = 20.0

    def detector(self, engine: VadEngine) -> TurnDetector:
        return TurnDetector(
            engine,
            start_ms=self.start_ms,
            stop_ms=self.stop_ms,
            preroll_ms=self.preroll_ms,
            max_turn_s=self.max_turn_s,
        )


# ---------------------------------------------------------------- measurements


def cpu_audio(phrases: list[np.ndarray], seconds: float, rng: np.random.Generator) -> bytes:
    """~2/3 conversation (utterances with pauses over a -60 dBFS floor), ~1/3 loud noise with clicks."""
    parts: list[np.ndarray] = []
    total = 0.0
    i = 0
    while total < seconds * 2 / 3:
        scene = white_noise(0.8, -60, rng)
        clip = trim(phrases[i % len(phrases)])
        parts += [scene, clip + white_noise(len(clip) / SR, -60, rng)]
        total += 0.8 + len(clip) / SR
        i += 1
    noisy = white_noise(max(1.0, seconds - total), -30, rng)
    for k in range(1, int(len(noisy) / SR)):
        noisy[k * SR : k * SR + 800] += burst("click", 50, rng)
    parts.append(noisy)
    return to_pcm16(np.concatenate(parts)[: round(seconds * SR)])


def cpu_per_audio_second(factory: Callable[[], VadEngine], params: Params, pcm: bytes, repeats: int) -> dict:
    audio_s = len(pcm) / BYTES_PER_S
    run(params.detector(factory()), pcm[: 5 * BYTES_PER_S])  # warm-up (first ORT runs allocate)
    detector_share, engine_share = [], []
    gc.disable()
    try:
        for _ in range(repeats):
            detector = params.detector(factory())
            t0 = time.process_time()
            run(detector, pcm)
            detector_share.append((time.process_time() - t0) / audio_s)

            engine = factory()
            fb = engine.frame_samples * 2
            frames = [pcm[i : i + fb] for i in range(0, len(pcm) - fb + 1, fb)]
            t0 = time.process_time()
            for frame in frames:
                engine.is_speech(frame)
            engine_share.append((time.process_time() - t0) / audio_s)
    finally:
        gc.enable()
    setup = []
    for _ in range(max(5, repeats // 2)):
        t0 = time.process_time()
        factory()
        setup.append(time.process_time() - t0)
    return {"detector": detector_share, "engine": engine_share, "setup": setup}


def accuracy(
    factory: Callable[[], VadEngine],
    params: Params,
    phrases: list[np.ndarray],
    repeats: int,
    seed: int,
    noise_dbfs: float = -60.0,
) -> dict:
    onset, end = [], []
    wrong = clipped = 0
    for r in range(repeats):
        for p, speech in enumerate(phrases):
            rng = np.random.default_rng([seed, r, p])
            scene = utterance_scene(speech, rng, lead_s=float(rng.uniform(0.8, 1.2)), noise_dbfs=noise_dbfs)
            events = run(params.detector(factory()), scene.pcm)
            starts = [e for e in events if isinstance(e, SpeechStarted)]
            ends = [e for e in events if isinstance(e, TurnEnded)]
            if len(starts) != 1 or len(ends) != 1 or ends[0].reason != "silence":
                wrong += 1
            if starts:
                onset.append(starts[0].at_s - scene.speech_start_s)
            if ends:
                end.append(ends[0].at_s - scene.speech_end_s)
                offset = scene.pcm.find(ends[0].audio) / BYTES_PER_S
                if offset > scene.speech_start_s or offset + len(ends[0].audio) / BYTES_PER_S < scene.speech_end_s:
                    clipped += 1
    return {"onset": onset, "end": end, "wrong": wrong, "clipped": clipped, "n": repeats * len(phrases)}


def false_starts(factory: Callable[[], VadEngine], params: Params, repeats: int, seed: int) -> dict:
    """SpeechStarted count per 10 s: (a) -30 dBFS white noise + four 50 ms clicks, as specified, and the two
    separately: (b) the noise alone, (c) the four clicks alone over a -60 dBFS floor."""
    out: dict[str, list[int]] = {"noise+clicks": [], "noise": [], "clicks": []}
    for r in range(repeats):
        rng = np.random.default_rng([seed, 1000 + r])
        click_at = [round((1.0 + 2.2 * k + rng.uniform(0, 0.5)) * SR) for k in range(4)]
        clicks = [burst("click", 50, rng) for _ in click_at]
        for name, noise_db, with_clicks in (("noise+clicks", -30, True), ("noise", -30, False), ("clicks", -60, True)):
            x = white_noise(10.0, noise_db, rng)
            if with_clicks:
                for at, c in zip(click_at, clicks, strict=True):
                    x[at : at + len(c)] += c
            events = run(params.detector(factory()), to_pcm16(x))
            out[name].append(sum(isinstance(e, SpeechStarted) for e in events))
    return out


# ---------------------------------------------------------------- report


def p99(xs: Sequence[float]) -> float:
    return float(np.percentile(xs, 99))


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.vad_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="repeats of each measurement (>= 5)")
    ap.add_argument("--cpu-seconds", type=float, default=60.0, help="audio per CPU repeat")
    ap.add_argument("--start-ms", type=int, default=120)
    ap.add_argument("--stop-ms", type=int, default=500)
    ap.add_argument("--preroll-ms", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be >= 5")
    params = Params(start_ms=args.start_ms, stop_ms=args.stop_ms, preroll_ms=args.preroll_ms)

    import onnxruntime

    command = " ".join(["python -m bench.vad_bench", *(argv if argv is not None else sys.argv[1:])])
    print(f"command: {command}")
    print(
        f"host: {platform.processor() or platform.machine()}, {_cpu_model()}, {os.cpu_count()} CPUs; "
        f"python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"
    )
    print(
        f"detector: start_ms={params.start_ms} stop_ms={params.stop_ms} preroll_ms={params.preroll_ms}; "
        f"repeats={args.repeats}; CPU audio={args.cpu_seconds:g} s per repeat, fed in 20 ms chunks"
    )

    t0 = time.perf_counter()
    phrases = asyncio.run(synthesize(PHRASES))
    durations = [(lambda b: b[1] - b[0])(speech_bounds(p)) for p in phrases]
    print(
        f"synthesized {len(phrases)} phrases with piper in {time.perf_counter() - t0:.1f} s "
        f"(speech {min(durations):.2f}-{max(durations):.2f} s each)\n"
    )
    cpu_pcm = cpu_audio(phrases, args.cpu_seconds, np.random.default_rng(args.seed))

    rows = []
    for name, factory in engine_factories().items():
        cpu = cpu_per_audio_second(factory, params, cpu_pcm, args.repeats)
        acc = accuracy(factory, params, phrases, args.repeats, args.seed)
        acc["noisy"] = accuracy(factory, params, phrases, args.repeats, args.seed, noise_dbfs=-30.0)
        fs = false_starts(factory, params, args.repeats, args.seed)
        rows.append((name, cpu, acc, fs))

    def line(label: str, unit: str, values: Callable[[dict, dict, dict], str]) -> None:
        print(f"{label:<44}{unit:<16}" + "".join(f"{values(c, a, f):>28}" for _, c, a, f in rows))

    def mp(xs: Sequence[float], scale: float = 1.0, fmt: str = ".1f") -> str:
        return f"{med(xs) * scale:{fmt}} / {p99(xs) * scale:{fmt}}"

    print(f"{'figure (median / p99 over repeats)':<44}{'unit':<16}" + "".join(f"{n:>28}" for n, *_ in rows))
    print("-" * (60 + 28 * len(rows)))
    line("CPU per call-second: detector+engine", "ms CPU / s", lambda c, a, f: mp(c["detector"], 1e3, ".2f"))
    line("  = share of one core per call", "% of a core", lambda c, a, f: mp(c["detector"], 1e2, ".3f"))
    line("CPU per call-second: engine alone", "ms CPU / s", lambda c, a, f: mp(c["engine"], 1e3, ".2f"))
    line(
        "calls per core, VAD alone (from med / p99)",
        "calls",
        lambda c, a, f: f"{1 / med(c['detector']):,.0f} / {1 / p99(c['detector']):,.0f}",
    )
    line("core share at 50 calls (med / p99)", "% of a core", lambda c, a, f: mp(c["detector"], 50e2, ".1f"))
    line("engine setup per call", "ms CPU", lambda c, a, f: mp(c["setup"], 1e3, ".2f"))
    line("onset delay (true start -> SpeechStarted)", "ms", lambda c, a, f: mp(a["onset"], 1e3, ".0f"))
    line("end delay (true end -> TurnEnded)", "ms", lambda c, a, f: mp(a["end"], 1e3, ".0f"))
    line("utterances not exactly 1 start + 1 end", "utterances", lambda c, a, f: f"{a['wrong']} of {a['n']}")
    line("turn audio missing part of the speech", "utterances", lambda c, a, f: f"{a['clipped']} of {a['n']}")
    line("same speech over -30 dBFS noise: onset", "ms", lambda c, a, f: mp(a["noisy"]["onset"], 1e3, ".0f"))
    line("  end delay", "ms", lambda c, a, f: mp(a["noisy"]["end"], 1e3, ".0f"))
    line(
        "  utterances not exactly 1 start + 1 end",
        "utterances",
        lambda c, a, f: f"{a['noisy']['wrong']} of {a['noisy']['n']}",
    )
    line("false starts: -30 dBFS noise + 4 clicks", "starts / 10 s", lambda c, a, f: mp(f["noise+clicks"], fmt=".0f"))
    line("  of which: -30 dBFS noise alone", "starts / 10 s", lambda c, a, f: mp(f["noise"], fmt=".0f"))
    line("  of which: 4 x 50 ms clicks alone", "starts / 10 s", lambda c, a, f: mp(f["clicks"], fmt=".0f"))
    n_acc = rows[0][2]["n"]
    print(
        f"\nCPU: n={args.repeats} runs over {args.cpu_seconds:g} s of audio; onset/end: n={n_acc} utterances "
        f"({len(PHRASES)} phrases x {args.repeats} noise seeds and lead-in offsets); false starts: n={args.repeats} "
        f"clips of 10 s. Onset includes the {params.start_ms} ms confirmation window, end includes the "
        f"{params.stop_ms} ms silence window (both rounded to whole frames: 20 ms webrtc, 32 ms silero)."
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
