"""Where the end-of-turn model (Smart Turn v3.2) puts complete and cut-off turns, per language: what
``eot_threshold`` should be.

    python -m bench.turn_model_thresholds            # English (piper) + Spanish (tests/data/es), wideband
    python -m bench.turn_model_thresholds --phone    # the same through an 8 kHz phone line (band-limited)
    python -m bench.turn_model_thresholds --pause-ms 400   # asked after a longer pause

Each utterance is trimmed to its speech and scored twice, as the gateway would ask after a 200 ms pause:
``complete`` = the whole utterance + 200 ms of silence; ``cut`` = the utterance up to a pause inside it
(``cut-gap``: every silence gap >= 40 ms between 20 % and 85 % of it: a word boundary or a stop inside a word;
``cut-half``: the quietest 10 ms between 45 % and 55 %), + 200 ms of silence. Some cuts leave a phrase that is
complete on its own ("Is there parking"): the model is right to call those complete, so read ``cut-half``
(the cleaner set) and ``cut-gap`` apart. English: the sentences of
``bench/first_turn.py`` synthesised by the piper voice; Spanish: the recorded questions of ``tests/data/es``
(Kokoro voices). Printed: every score, the distributions per language, and per threshold how many complete
turns are judged complete and cut ones incomplete.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from dataclasses import dataclass

import numpy as np

from bench.first_turn import SENTENCES, SPANISH
from services.gateway.end_of_turn import features
from services.gateway.end_of_turn.smart_turn import SmartTurnModel
from shared.audio import resample_pcm16
from tools.talk import load_utterance, synthesize

RATE = 16000
PAUSE_MS = 200
WIN = RATE // 100  # 10 ms
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass
class Scored:
    language: str
    text: str
    kind: str  # complete | cut-gap | cut-half
    at_s: float  # where the audio ends (cut point or the end)
    probability: float


def levels_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // WIN
    rms = np.sqrt(np.mean(x[: n * WIN].reshape(n, WIN).astype(np.float64) ** 2, axis=1)) + 1e-9
    return 20 * np.log10(rms)


def trimmed(pcm: bytes, floor_db: float = 40.0) -> np.ndarray:
    x = np.frombuffer(pcm, dtype=np.int16)
    level = levels_db(x)
    voiced = np.flatnonzero(level >= level.max() - floor_db)
    return x[voiced[0] * WIN : (voiced[-1] + 1) * WIN]


def cut_points(x: np.ndarray, gap_db: float = 35.0, min_gap: int = 4) -> list[tuple[str, int]]:
    """Sample indices to cut at: the start of each pause inside the utterance, else the quietest mid point."""
    level = levels_db(x)
    quiet = level < level.max() - gap_db
    n = len(level)
    cuts, run = [], 0
    for i, q in enumerate(quiet):
        run = run + 1 if q else 0
        if run == min_gap and 0.2 * n <= i - min_gap + 1 <= 0.85 * n:
            cuts.append(("cut-gap", (i - min_gap + 1) * WIN))
    lo, hi = int(0.45 * n), int(0.55 * n)
    cuts.append(("cut-half", (lo + int(np.argmin(level[lo:hi]))) * WIN))
    return cuts


def with_pause(x: np.ndarray, phone: bool, pause_ms: int) -> bytes:
    pcm = np.concatenate([x, np.zeros(RATE * pause_ms // 1000, dtype=np.int16)]).tobytes()
    return resample_pcm16(resample_pcm16(pcm, RATE, 8000), 8000, RATE) if phone else pcm


def score_all(model: SmartTurnModel, language: str, text: str, pcm: bytes, phone: bool, pause_ms: int) -> list[Scored]:
    x = trimmed(pcm)
    clips = [("complete", len(x)), *cut_points(x)]
    out = []
    for kind, end in clips:
        p = float(model.predict(features.batch([with_pause(x[:end], phone, pause_ms)]))[0])
        out.append(Scored(language, text, kind, end / RATE, p))
    return out


async def utterances() -> list[tuple[str, str, bytes]]:
    texts = {
        row.split("\t")[0]: row.split("\t")[2] for row in (SPANISH[0].parent / "manifest.tsv").read_text().splitlines()
    }
    english = [("en", s, await synthesize(s)) for s in SENTENCES]
    spanish = [("es", texts.get(p.name, p.name), load_utterance(p)) for p in SPANISH]
    return english + spanish


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    return f"n={len(values):2d} min {min(values):.3f} median {statistics.median(values):.3f} max {max(values):.3f}"


def report(rows: list[Scored]) -> None:
    for r in rows:
        print(f"{r.language} {r.kind:8s} {r.at_s:5.2f} s  p={r.probability:.3f}  {r.text}")
    for language in sorted({r.language for r in rows}):
        done = [r.probability for r in rows if r.language == language and r.kind == "complete"]
        print(f"\n{language} complete: {summary(done)}")
        for kind in ("cut-half", "cut-gap"):
            cut = [r.probability for r in rows if r.language == language and r.kind == kind]
            print(f"{language} {kind}: {summary(cut)}")
            for t in THRESHOLDS:
                ok_done, ok_cut = sum(p >= t for p in done), sum(p < t for p in cut)
                balanced = (ok_done / len(done) + ok_cut / len(cut)) / 2
                print(
                    f"   threshold {t:.1f}: complete judged complete {ok_done:2d}/{len(done)}, "
                    f"{kind} judged incomplete {ok_cut:2d}/{len(cut)}, balanced accuracy {balanced:.2f}"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phone", action="store_true", help="band-limit to 8 kHz as a phone line would")
    parser.add_argument("--pause-ms", type=int, default=PAUSE_MS, help="silence after the speech when asked")
    args = parser.parse_args(argv)
    model = SmartTurnModel()
    rows = []
    for language, text, pcm in asyncio.run(utterances()):
        rows += score_all(model, language, text, pcm, args.phone, args.pause_ms)
    print(f"Smart Turn v3.2, {'phone (8 kHz)' if args.phone else 'wideband 16 kHz'}, {args.pause_ms} ms pause appended")
    report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
