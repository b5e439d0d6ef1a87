"""What a shorter end-of-turn window costs in agreement and saves in CPU: Smart Turn v3.2 cut to read the last
6, 4 or 3 s (``END_OF_TURN_WINDOW_S``) against the published 8 s model.

    python -m bench.turn_model_window                   # windows 6 4 3, wideband
    python -m bench.turn_model_window --windows 4 --phone
    python -m bench.turn_model_window --windows 6 --fit 1 2 3    # the 6 s window fitted to each turn (margins)

The clips are those of ``bench/turn_model_thresholds.py`` (English piper + Spanish recorded questions;
complete, ``cut-gap`` and ``cut-half``, + 200 ms of silence), most of them 1-3 s long, plus ``long`` turns
that fill the window: the previous utterance of the same language, 300 ms of silence, then this one (complete,
and cut at its middle: ``long-cut``), 3-8 s. Printed per window: the CPU per pause (features + model, one
thread), |Δp| against the 8 s model (max, median), how many verdicts at 0.5 change, and per language the
complete-vs-cut separation (balanced accuracy at 0.5, medians) next to the 8 s model's. With ``--fit``, the
last window also read fitted (``END_OF_TURN_MARGIN_S``): each clip with the smallest whole-second cut (3 s at
least) holding it plus the margin; the CPU printed is then the mean over the clips of their cut's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np

from bench.turn_model_thresholds import RATE, cut_points, trimmed, utterances, with_pause
from services.gateway.end_of_turn import features
from services.gateway.end_of_turn.smart_turn import SmartTurnModel

GAP = np.zeros(RATE * 300 // 1000, dtype=np.int16)


def clips(phone: bool) -> list[tuple[str, str, bytes]]:
    """(language, kind, audio as the gateway would ask) for every clip."""
    out: list[tuple[str, str, bytes]] = []
    previous: dict[str, np.ndarray] = {}
    for language, _text, pcm in asyncio.run(utterances()):
        x = trimmed(pcm)
        out.append((language, "complete", with_pause(x, phone, 200)))
        out += [(language, kind, with_pause(x[:end], phone, 200)) for kind, end in cut_points(x)]
        if language in previous:
            long = np.concatenate([previous[language], GAP, x])
            half = len(previous[language]) + len(GAP) + dict(cut_points(x))["cut-half"]
            out += [
                (language, "long", with_pause(long, phone, 200)),
                (language, "long-cut", with_pause(long[:half], phone, 200)),
            ]
        previous[language] = x
    return out


def cpu_ms(model: SmartTurnModel, audio: bytes, repeat: int) -> float:
    model.predict(features.batch([audio], model.frames))
    started = time.process_time()
    for _ in range(repeat):
        model.predict(features.batch([audio], model.frames))
    return (time.process_time() - started) / repeat * 1000


def separation(rows: list[tuple[str, str, float]], language: str, cut_kind: str, done_kind: str) -> str:
    done = [p for lang, kind, p in rows if lang == language and kind == done_kind]
    cut = [p for lang, kind, p in rows if lang == language and kind == cut_kind]
    balanced = (sum(p >= 0.5 for p in done) / len(done) + sum(p < 0.5 for p in cut) / len(cut)) / 2
    return (
        f"{done_kind} vs {cut_kind}: balanced {balanced:.2f}, "
        f"medians {statistics.median(done):.3f} / {statistics.median(cut):.3f}"
    )


def scores(model: SmartTurnModel, audios: list[tuple[str, str, bytes]]) -> list[tuple[str, str, float]]:
    return [(lang, kind, float(model.predict(features.batch([a], model.frames))[0])) for lang, kind, a in audios]


def report(name: str, rows: list[tuple[str, str, float]], base: list[tuple[str, str, float]] | None) -> None:
    if base is not None:
        delta = [abs(p - q) for (_, _, p), (_, _, q) in zip(rows, base, strict=True)]
        flips = [
            (lang, kind) for (lang, kind, p), (_, _, q) in zip(rows, base, strict=True) if (p >= 0.5) != (q >= 0.5)
        ]
        long_delta = [d for d, (_, kind, _) in zip(delta, rows, strict=True) if kind.startswith("long")]
        print(
            f"{name}: |dp| max {max(delta):.3f} median {statistics.median(delta):.3f} "
            f"(long turns: max {max(long_delta):.3f}); verdicts at 0.5 changed {len(flips)}/{len(rows)} {flips}"
        )
    for language in sorted({lang for lang, _, _ in rows}):
        print(
            f"   {language} {separation(rows, language, 'cut-half', 'complete')}; "
            f"{separation(rows, language, 'cut-gap', 'complete')}; {separation(rows, language, 'long-cut', 'long')}"
        )


def fitted(
    window: float, margin: float, audios: list[tuple[str, str, bytes]], probe: bytes, repeat: int
) -> tuple[list[tuple[str, str, float]], float, dict[int, float]]:
    """The clips scored with the model fitted to each (margin ``margin``), the mean CPU per pause, CPU per cut."""
    model = SmartTurnModel(window_s=window, margin_s=margin)
    cost = {
        frames: cpu_ms_frames(model, probe, frames, repeat)
        for frames in {model.frames_for_turn(len(a) // 2) for _, _, a in audios}
    }
    rows, spent = [], []
    for lang, kind, audio in audios:
        frames = model.frames_for_turn(len(audio) // 2)
        rows.append((lang, kind, float(model.predict(features.batch([audio], frames))[0])))
        spent.append(cost[frames])
    return rows, statistics.mean(spent), cost


def cpu_ms_frames(model: SmartTurnModel, audio: bytes, frames: int, repeat: int) -> float:
    model.predict(features.batch([audio], frames))
    started = time.process_time()
    for _ in range(repeat):
        model.predict(features.batch([audio], frames))
    return (time.process_time() - started) / repeat * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=float, nargs="+", default=[6.0, 4.0, 3.0])
    parser.add_argument("--phone", action="store_true", help="band-limit to 8 kHz as a phone line would")
    parser.add_argument("--repeat", type=int, default=30, help="inferences timed per window")
    parser.add_argument("--fit", type=float, nargs="*", default=[], help="margins (s) to fit the last window with")
    args = parser.parse_args(argv)
    audios = clips(args.phone)
    probe = next(a for _, kind, a in audios if kind == "long")
    print(
        f"{len(audios)} clips ({'phone' if args.phone else 'wideband'}); "
        f"CPU timed on a {len(probe) / 2 / RATE:.1f} s turn"
    )
    full = SmartTurnModel()
    base = scores(full, audios)
    print(f"window 8 s: {cpu_ms(full, probe, args.repeat):.1f} ms CPU per pause")
    report("window 8 s", base, None)
    for window in args.windows:
        model = SmartTurnModel(window_s=window)
        print(f"\nwindow {window:g} s: {cpu_ms(model, probe, args.repeat):.1f} ms CPU per pause")
        report(f"window {window:g} s", scores(model, audios), base)
    for margin in args.fit:
        window = args.windows[-1]
        rows, mean_cpu, cost = fitted(window, margin, audios, probe, args.repeat)
        cuts = ", ".join(f"{frames / 100:g} s {ms:.1f}" for frames, ms in sorted(cost.items()))
        print(
            f"\nwindow {window:g} s fitted, margin {margin:g} s: {mean_cpu:.1f} ms CPU per pause on average "
            f"(cuts: {cuts} ms)"
        )
        report(f"fitted {margin:g} s", rows, base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
