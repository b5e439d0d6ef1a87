"""The end-of-turn model's CPU cost in one gateway process at N concurrent calls (target: <= 10 % of one core
at 50 calls), and how fast each pause gets its answer.

    python -m bench.turn_model_cpu                       # 50 calls, 60 s
    python -m bench.turn_model_cpu --calls 50 --seconds 60 --turn-every 10 --pauses 2
    python -m bench.turn_model_cpu --turn-every 18 --pauses 0.3   # docs/benchmarking.md's workload
    python -m bench.turn_model_cpu --turn-every 18 --pauses 0.3 --window 8 --margin 0   # the model as published

Workload: each simulated call ends a turn every ``--turn-every`` s (10 s: a ~3 s utterance, then the reply, as
in ``bench/conversation_load.py``) and pauses ``--pauses`` times inside each turn (2: candidate pauses the
model judges incomplete; a fraction is a chance: 0.3 = one pause in 30 % of the turns); every pause and every
turn end asks the shared :class:`EndOfTurnScorer` for a probability of the turn so far (the recorded questions
of ``tests/data/es``, whole or cut, + 200 ms of silence), read by the model cut to ``--window`` s and fitted to
each turn with ``--margin`` (the gateway's defaults: 6 s, 2 s). Calls start
at random phases. Rate: calls * (1 + pauses) / turn_every requests per second (50 calls: 15/s). Printed: the
process CPU (user + system, every thread) over the run as % of one core, and the scorer thread's alone (the
model's cost, without this bench's simulated calls), the load average (other work on the machine slows each
inference), the answers' latency p50/p99 (request -> probability, queue included), fallbacks
(EndOfTurnUnavailable), the scorer's rounds (pauses taken together), and first, alone, the CPU per inference:
features, model, and a batched ``run`` against a loop of single runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import threading
import time
from pathlib import Path

import numpy as np
from prometheus_client import REGISTRY

from services.gateway.end_of_turn import EndOfTurnScorer, EndOfTurnUnavailable, features
from services.gateway.end_of_turn.smart_turn import SmartTurnModel
from tools.talk import load_utterance

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "es"
PAUSE = bytes(2 * 16000 * 200 // 1000)


def turns() -> list[list[bytes]]:
    """Per utterance: the turn so far at two pauses inside it (1/3, 2/3) and at its end."""
    out = []
    for path in sorted(DATA.glob("q*.wav")):
        pcm = load_utterance(path)
        n = len(pcm) // 2
        out.append([pcm[: 2 * (n * k // 3)] + PAUSE for k in (1, 2, 3)])
    return out


def cpu_ms(fn, repeat: int) -> float:
    fn()
    started = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - started) / repeat * 1000


def per_inference(model: SmartTurnModel, pcm: bytes, repeat: int) -> None:
    x = features.batch([pcm], model.frames)
    print(f"features:            {cpu_ms(lambda: features.features(pcm, model.frames), repeat):6.1f} ms CPU per pause")
    print(f"model, single run:   {cpu_ms(lambda: model.predict(x), repeat):6.1f} ms CPU per pause")
    for size in (4, 8):
        xb = np.repeat(x, size, axis=0)
        batched = cpu_ms(lambda xb=xb: model.predict(xb), max(1, repeat // size)) / size
        print(f"model, batch of {size}:   {batched:6.1f} ms CPU per pause (one run for {size} pauses)")


async def call(scorer: EndOfTurnScorer, clips: list[list[bytes]], args, end: float, out: dict) -> None:
    rng = random.Random()
    await asyncio.sleep(rng.uniform(0, args.turn_every))
    while time.monotonic() < end:
        turn = rng.choice(clips)
        started = time.monotonic()
        pauses = int(args.pauses) + (rng.random() < args.pauses % 1)
        # pauses at ~1 s and ~2 s into a ~3 s turn, its end at ~3.2 s
        moments = [*(i * 3.0 / (pauses + 1) for i in range(1, pauses + 1)), 3.2]
        audios = [turn[min(i, len(turn) - 2)] for i in range(pauses)] + [turn[-1]]
        for at, audio in zip(moments, audios, strict=True):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            asked = time.monotonic()
            try:
                await scorer.probability(audio)
                out["latency"].append(time.monotonic() - asked)
            except EndOfTurnUnavailable:
                out["unavailable"] += 1
        await asyncio.sleep(max(0.0, started + args.turn_every - time.monotonic()))


def thread_cpu_s(name: str) -> float:
    """User + system CPU seconds of this process's thread called ``name`` (Linux /proc; 0 if none)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.native_id is not None:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def batch_stats() -> tuple[float, float, float]:
    """(scorer rounds, pauses taken in them, inferences run) so far."""
    name, seconds = "victoria_end_of_turn_batch_size", "victoria_end_of_turn_inference_seconds_count"
    sample = REGISTRY.get_sample_value
    return sample(f"{name}_count") or 0.0, sample(f"{name}_sum") or 0.0, sample(seconds) or 0.0


async def load(args) -> None:
    clips = turns()
    scorer = EndOfTurnScorer.shared(window_s=args.window, margin_s=args.margin)
    await scorer.warm()
    out: dict = {"latency": [], "unavailable": 0}
    before = batch_stats()
    cpu0, wall0, scorer0 = time.process_time(), time.monotonic(), thread_cpu_s("end-of-turn")
    end = wall0 + args.seconds
    await asyncio.gather(*(call(scorer, clips, args, end, out) for _ in range(args.calls)))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    scorer_cpu = thread_cpu_s("end-of-turn") - scorer0
    rounds, taken, inferences = (b - a for a, b in zip(before, batch_stats(), strict=True))
    scorer.close()
    lat = sorted(x * 1000 for x in out["latency"])
    asked = len(lat) + out["unavailable"]
    print(
        f"\n{args.calls} calls, {wall:.0f} s: {asked} pauses asked ({asked / wall:.1f}/s), "
        f"{out['unavailable']} fallbacks (EndOfTurnUnavailable)"
    )
    per = cpu / max(1, inferences) * 1000
    print(
        f"process CPU: {cpu:.1f} s = {cpu / wall * 100:.1f} % of one core; "
        f"{inferences:.0f} inferences, {per:.1f} ms CPU each"
    )
    print(
        f"scorer thread CPU: {scorer_cpu:.1f} s = {scorer_cpu / wall * 100:.1f} % of one core, "
        f"{scorer_cpu / max(1, inferences) * 1000:.1f} ms each; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    if lat:
        p99 = float(np.percentile(lat, 99))
        print(f"answer latency: p50 {statistics.median(lat):.0f} ms, p99 {p99:.0f} ms, max {lat[-1]:.0f} ms")
    print(f"scorer rounds: {rounds:.0f}, pauses taken {taken:.0f}, mean per round {taken / max(1, rounds):.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--turn-every", type=float, default=10.0, help="seconds between a call's turn ends")
    parser.add_argument("--pauses", type=float, default=2, help="candidate pauses inside each turn (mean)")
    parser.add_argument("--window", type=float, default=6.0, help="seconds the model reads (END_OF_TURN_WINDOW_S)")
    parser.add_argument("--margin", type=float, default=2.0, help="fitted to each turn (END_OF_TURN_MARGIN_S); 0: not")
    parser.add_argument("--repeat", type=int, default=20, help="inferences timed alone, per variant")
    args = parser.parse_args(argv)
    rate = args.calls * (1 + args.pauses) / args.turn_every
    fit = f", fitted to each turn with {args.margin:g} s of margin" if args.margin else ""
    print(f"Smart Turn v3.2 reading {args.window:g} s{fit}, one thread; workload {rate:.1f} pauses/s")
    per_inference(SmartTurnModel(window_s=args.window), turns()[0][-1], args.repeat)
    asyncio.run(load(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
