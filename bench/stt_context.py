"""Offline STT on a shorter Whisper window: word error rate, loops, fallbacks and CPU per turn, by window.

Run from the repository root (offline)::

    python -m bench.stt_context                 # en (tiny.en) + es (Whisper base), wideband + phone band, 3 repeats
    python -m bench.stt_context --repeats 5 --language es

The turns are ``bench.turn_model_thresholds.utterances()``: the 10 English sentences of ``bench.first_turn`` in
piper's voice and the 10 Spanish questions of ``tests/data/es`` (Kokoro ``jf_*`` voices), 1.5-3.7 s each. *Phone*
= resampled to 8 kHz and back, as a phone line band-limits them. Windows:

- ``30 s``: faster-whisper's ``transcribe`` as published (what the provider did before ``STT_CONTEXT_S``).
- ``10 s raw``: one decode on a fixed 10 s window, no gates and no fallback (the lead's first measurement).
- ``shipped``: the provider with its defaults (``STT_CONTEXT_S=10``: 10 s or the turn + 7 s; gates; 30 s fallback).
- ``+1 s gated``: the shipped code with a window of the turn + 1 s (``context_s`` 1, ``min_padding_s`` 1), where
  the decoder loops: what the gates catch and what their fallbacks cost.

*Loops*: transcripts that repeat themselves (gzip ratio > 2.4) or that reached the token cap. CPU is
``time.process_time`` around one transcription (the process's CPU on every thread; the machine is shared, so CPU
time is the figure to compare); wall is ``perf_counter``. Medians (and the CPU mean, which shows what fallbacks
cost) over turns × repeats. piper's voice is not bit-exact from run to run, so an English word may move.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import soxr

from bench.spanish_models import wer
from bench.turn_model_thresholds import utterances
from services.stt_worker.providers import SttWorkerSettings
from services.stt_worker.providers.local_whisper import WHISPER_RATE, LocalWhisperStt, pcm16_to_whisper
from services.stt_worker.providers.whisper_window import COMPRESSION_RATIO_THRESHOLD, compression_ratio, decode_short

WINDOWS = ("30 s", "10 s raw", "shipped", "+1 s gated")


@dataclass
class Row:
    """One (language, band, window) cell: a transcript per turn and the cost of each run."""

    language: str
    band: str
    window: str
    refs: list[str] = field(default_factory=list)
    hyps: list[str] = field(default_factory=list)
    loops: int = 0
    fallbacks: int = 0
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)


def phone_band(samples: np.ndarray) -> np.ndarray:
    """What an 8 kHz phone line leaves of 16 kHz audio."""
    narrow = soxr.resample(samples, WHISPER_RATE, 8000)
    return soxr.resample(narrow, 8000, WHISPER_RATE).astype(np.float32, copy=False)


def runner(stt: LocalWhisperStt, window: str, language: str) -> Callable[[np.ndarray], tuple[str, bool]]:
    """A function transcribing one turn on ``window``: its text, and whether its decode looped."""
    model = stt._load(language)

    def full(samples: np.ndarray) -> tuple[str, bool]:
        text, _ = stt._run_full(model, samples, language, "bench")
        return text, False

    def raw(samples: np.ndarray) -> tuple[str, bool]:
        decoded = decode_short(model, samples, language, 10.0, stt.beam_size)
        return decoded.text, decoded.verdict in ("repetition", "token_cap")

    def provider(samples: np.ndarray) -> tuple[str, bool]:
        text, _ = stt._run(samples, language)
        return text, False

    return {"30 s": full, "10 s raw": raw}.get(window, provider)


def measure(stt: LocalWhisperStt, row: Row, turns: list[tuple[str, np.ndarray]], repeats: int) -> None:
    stressed = row.window == "+1 s gated"
    stt.context_s, stt.min_padding_s = (1.0, 1.0) if stressed else (10.0, 7.0)
    run = runner(stt, row.window, row.language)
    run(turns[0][1])  # this window's allocations, not counted
    for repeat in range(repeats):
        for ref, samples in turns:
            before = stt.paths["fallback"]
            cpu, wall = time.process_time(), time.perf_counter()
            text, looped = run(samples)
            row.cpu_ms.append((time.process_time() - cpu) * 1000)
            row.wall_ms.append((time.perf_counter() - wall) * 1000)
            if repeat == 0:
                row.refs.append(ref)
                row.hyps.append(text)
                row.fallbacks += stt.paths["fallback"] - before
                row.loops += looped or compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD


def report(rows: list[Row]) -> None:
    print("\n| language | band | window | WER | loops | fallbacks | CPU ms p50 (mean) | wall ms p50 | CPU vs 30 s |")
    print("|---|---|---|---|---|---|---|---|---|")
    base: dict[tuple[str, str], float] = {}
    for r in rows:
        cpu = statistics.median(r.cpu_ms)
        base.setdefault((r.language, r.band), cpu)
        ratio = cpu / base[(r.language, r.band)]
        print(
            f"| {r.language} | {r.band} | {r.window} | {wer(r.refs, r.hyps):.3f} | {r.loops}/{len(r.refs)} | "
            f"{r.fallbacks}/{len(r.refs)} | {cpu:.0f} ({statistics.mean(r.cpu_ms):.0f}) | "
            f"{statistics.median(r.wall_ms):.0f} | {ratio:.2f} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each turn for the CPU and wall medians")
    parser.add_argument("--language", choices=("en", "es", "both"), default="both")
    parser.add_argument("--verbose", action="store_true", help="print every transcript that is not the reference")
    args = parser.parse_args(argv)
    stt = LocalWhisperStt(SttWorkerSettings(stt_model_dir="", stt_multilingual_model_dir=""))
    turns = [(lang, ref, pcm16_to_whisper(pcm, WHISPER_RATE)) for lang, ref, pcm in asyncio.run(utterances())]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rows: list[Row] = []
    for language in ("en", "es") if args.language == "both" else (args.language,):
        for band in ("wide", "phone"):
            clips = [(ref, s if band == "wide" else phone_band(s)) for lang, ref, s in turns if lang == language]
            for window in WINDOWS:
                row = Row(language, band, window)
                measure(stt, row, clips, args.repeats)
                rows.append(row)
                print(f"{language} {band} {window}: done, load {os.getloadavg()[0]:.2f}", flush=True)
                for ref, hyp in zip(row.refs, row.hyps, strict=True):
                    if args.verbose and wer([ref], [hyp]):
                        print(f"    {hyp!r}  (said: {ref!r})")
    report(rows)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
