"""Outbound pacing of phone calls: N concurrent Twilio-protocol callers through the whole stack.

Each caller (tools/phonecaller.py, the documented Twilio Media Streams messages) hears the greeting, asks
two questions and hangs up. For every utterance the gateway sends, each 20 ms frame's arrival is compared
with where a steady 20 ms clock (anchored at the utterance's median offset) puts it: the deviation is what a
media server's jitter buffer has to absorb (target: within ±5 ms at 50 calls). Inter-frame gaps over 40 ms
are counted too. Fake providers with fixed latency; the server is pinned to core 0, the callers to core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.conversation_load import PROVIDERS, cpu_seconds, gateway_pid, server_processes, trim_trailing_silence
from bench.stack import add_placement_args, place, running_stack
from tools.phonecaller import PhoneCaller
from tools.talk import synthesize


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def one_call(host: str, question: bytes, deviations: list[float], gaps: list[float], failures: list[str]) -> None:
    caller = PhoneCaller(f"ws://{host}/twilio/media", "twilio")
    try:
        await caller.dial_and_connect(f"http://{host}")  # the webhook's stream token, as a real call
        await caller.wait_reply(0, timeout=30)  # the greeting
        for _ in range(2):
            before = len(caller.frames)
            await caller.speak(question)
            await caller.wait_reply(before, timeout=30)
        await caller.stop()
    except Exception as exc:  # a failed call is reported, not hidden
        failures.append(f"{type(exc).__name__}: {exc}")
        await caller.close()
    for utterance in caller.utterances(gap_s=0.1):
        # the steady clock is anchored at the utterance's median offset: the frame sent ahead (the lead)
        # and every late or early frame then show as deviations, a constant network delay does not
        offsets = [f.at - k * 0.02 for k, f in enumerate(utterance)]
        anchor = statistics.median(offsets)
        deviations.extend((o - anchor) * 1000 for o in offsets)
        gaps.extend((b.at - a.at) * 1000 for a, b in itertools.pairwise(utterance))


async def lateness_buckets(host: str) -> dict[float, float]:
    """The gateway's cumulative histogram of outbound frame lateness for phone calls: {le: count}."""
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        text = (await client.get(f"http://{host}/metrics")).text
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "victoria_outbound_frame_lateness_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket") and sample.labels.get("client_type") == "twilio":
                    out[float(sample.labels["le"])] = sample.value
    return out


def lateness_summary(before: dict[float, float], after: dict[float, float]) -> str:
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in sorted(after)}
    total = delta.get(float("inf"), 0.0)
    if not total:
        return "gateway-side lateness: no samples"
    p50 = next(le for le, c in delta.items() if c >= 0.5 * total)
    p99 = next(le for le, c in delta.items() if c >= 0.99 * total)
    within = delta.get(0.005, 0.0) / total
    return (
        f"gateway-side: frames leaving ≤ 5 ms after their slot {within * 100:.2f} % "
        f"(p50 ≤ {p50 * 1000:g} ms, p99 ≤ {p99 * 1000:g} ms, of {total:.0f})"
    )


async def run_level(host: str, n: int, question: bytes, root_pid: int) -> None:
    procs = server_processes(root_pid)
    gw = gateway_pid(procs)
    cpu_before = cpu_seconds(procs)
    before = await lateness_buckets(host)
    deviations: list[float] = []
    gaps: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()

    async def staggered(i: int) -> None:
        await asyncio.sleep(i / max(1, n))  # calls start over one second
        await one_call(host, question, deviations, gaps, failures)

    await asyncio.gather(*(staggered(i) for i in range(n)))
    absdev = [abs(d) for d in deviations]
    within = sum(d <= 5.0 for d in absdev) / max(1, len(absdev))
    print(
        f"N={n:3d}: {len(deviations)} frames in {time.perf_counter() - started:.1f} s; "
        f"|deviation from a steady 20 ms clock| median {statistics.median(absdev):.2f} ms, "
        f"p99 {percentile(absdev, 0.99):.2f} ms, max {max(absdev):.2f} ms; within ±5 ms: {within * 100:.2f} %; "
        f"inter-frame gap median {statistics.median(gaps):.2f} ms, p99 {percentile(gaps, 0.99):.2f} ms, "
        f"max {max(gaps):.2f} ms, gaps over 40 ms: {sum(g > 40 for g in gaps)}; failed calls: {len(failures)}"
    )
    wall = time.perf_counter() - started
    cpu_after = cpu_seconds(procs)
    total = sum(cpu_after.get(p, 0.0) - v for p, v in cpu_before.items())
    gateway = cpu_after.get(gw or -1, 0.0) - cpu_before.get(gw or -1, 0.0)
    print("  " + lateness_summary(before, await lateness_buckets(host)))
    print(
        f"  server CPU {total / wall * 1000 / n:.1f} ms per call-second (gateway {gateway / wall * 1000 / n:.1f}); "
        f"server core busy {total / wall * 100:.0f} %"
    )
    for failure in failures[:5]:
        print(f"  failed call: {failure}")


async def main_async(levels: list[int], base: str, root_pid: int) -> None:
    host = base.removeprefix("http://")
    question = trim_trailing_silence(await synthesize("Do you have a table for two tonight?"))
    for n in levels:
        await run_level(host, n, question, root_pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 20, 50])
    add_placement_args(parser)
    args = parser.parse_args()
    stack_args = place(args)
    print(
        f"victoria phone_pacing {time.strftime('%Y-%m-%d %H:%M')}  server cpus={args.server_cpus!r}  "
        f"gateway nice={args.gateway_nice}"
    )
    with running_stack(fake=True, env=PROVIDERS, **stack_args) as stack:
        asyncio.run(main_async(args.n, stack.url, stack.pid))


if __name__ == "__main__":
    main()
