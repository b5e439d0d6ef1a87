"""What the per-call stream token costs a call's set-up.

    python -m bench.call_setup               # starts its own stack (shipped defaults, fake providers)
    python -m bench.call_setup --calls 40 --iterations 20000

Two figures: the token's own CPU (mint in the webhook, check at the stream's ``start``), timed in-process over
many iterations; and a phone call's set-up on the running stack as a Twilio caller sees it, one call after
another: webhook (``POST /twilio/voice``, which mints) → stream connected → ``start`` (checked) → first
greeting frame. The check's share of the set-up is the ratio of the two medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from bench.stack import running_stack
from services.gateway.edge.call_tokens import CallTokens
from tools.phonecaller import PhoneCaller, twilio_dial


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def token_cpu(iterations: int) -> tuple[list[float], list[float]]:
    """Microseconds per mint and per check (each check spends a fresh token, as a real stream does)."""
    tokens = CallTokens(b"s" * 32, 120)
    mint_us, check_us = [], []
    for _ in range(iterations):
        sid = "CA" + uuid.uuid4().hex
        t0 = time.perf_counter()
        token = tokens.mint("twilio", call_id=sid, agent_id="default", from_number="+15550001111", to_number="+1555")
        t1 = time.perf_counter()
        tokens.check(token, "twilio", call_id=sid)
        t2 = time.perf_counter()
        mint_us.append((t1 - t0) * 1e6)
        check_us.append((t2 - t1) * 1e6)
    return mint_us, check_us


async def setups(base: str, calls: int) -> tuple[list[float], list[float]]:
    """Per call, ms: webhook answer, and webhook start → first greeting frame."""
    host = base.removeprefix("http://")
    webhook_ms, first_frame_ms = [], []
    for _ in range(calls):
        caller = PhoneCaller(f"ws://{host}/twilio/media", "twilio")
        t0 = time.perf_counter()
        caller.parameters = await twilio_dial(base, caller.call_id)
        t1 = time.perf_counter()
        await caller.connect()
        while not caller.frames:  # noqa: ASYNC110  # polls the reader's list; no event exists for it
            await asyncio.sleep(0.001)
        t2 = caller.frames[0].at
        await caller.stop()
        webhook_ms.append((t1 - t0) * 1000)
        first_frame_ms.append((t2 - t0) * 1000)
    return webhook_ms, first_frame_ms


def summary(name: str, values: list[float], unit: str) -> str:
    return f"  {name:42s} median {statistics.median(values):8.2f} {unit}   p99 {percentile(values, 0.99):8.2f} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    mint_us, check_us = token_cpu(args.iterations)
    print(f"token CPU, {args.iterations} tokens")
    print(summary("mint (webhook)", mint_us, "µs"))
    print(summary("check (stream start)", check_us, "µs"))
    with running_stack(fake=True) as stack:
        webhook_ms, first_ms = asyncio.run(setups(stack.url, args.calls))
    print(f"phone call set-up on the shipped defaults (fake providers), {args.calls} calls one after another")
    print(summary("webhook answered (mints)", webhook_ms, "ms"))
    print(summary("webhook → first greeting frame", first_ms, "ms"))
    share = (statistics.median(mint_us) + statistics.median(check_us)) / 1000 / statistics.median(first_ms)
    print(f"  token mint + check as a share of the set-up: {share * 100:.3f} %")


if __name__ == "__main__":
    main()
