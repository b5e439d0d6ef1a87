"""One health probe for every service, for compose's ``healthcheck`` (the seeds' ``health_check.py``):

    python -m tools.healthcheck stt_worker | llm_worker | tts_worker | call_recorder
    python -m tools.healthcheck gateway        # GET http://127.0.0.1:$GATEWAY_PORT/health
    python -m tools.healthcheck nats           # GET http://127.0.0.1:8222/healthz (--url to change)
    python -m tools.healthcheck postgres       # SELECT 1 on DATABASE_URL

Exit 0 when healthy, 1 when not; one line says why. Workers and the recorder are asked over NATS, with the
service API's ``$SRV.STATS.<service>`` (``shared.health``: every replica answers with its readiness), so
"healthy" means this replica is connected, has loaded its model and answers: a real round trip, not "the
process exists". Only this container's replica counts (its ``INSTANCE_ID``, else an instance named after this
host), unless ``--any`` accepts any replica.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from dataclasses import dataclass

from shared.health import ServiceInfo, parse_stats, stats_subject
from shared.settings import CommonSettings

# compose service name -> the service its replicas say they are
PING_NAMES = {"stt_worker": "stt", "llm_worker": "llm", "tts_worker": "tts", "call_recorder": "call_recorder"}
SERVICES = (*PING_NAMES, "gateway", "nats", "postgres")


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str


def is_this_replica(info: ServiceInfo, instance_id: str, hostname: str) -> bool:
    """An instance is ``INSTANCE_ID`` when set, else ``<hostname>-<pid>`` (shared.health.default_instance_id)."""
    return info.instance == instance_id if instance_id else info.instance.startswith(f"{hostname}-")


async def check_ping(service: str, nats_url: str, timeout: float, *, any_replica: bool, instance_id: str) -> Verdict:
    import nats
    from nats.aio.msg import Msg

    name = PING_NAMES[service]
    hostname = socket.gethostname()
    deadline = time.monotonic() + timeout

    async def quiet(_exc: Exception) -> None:  # the verdict says it; no traceback on stderr
        return None

    try:
        nc = await asyncio.wait_for(
            nats.connect(
                servers=[s.strip() for s in nats_url.split(",") if s.strip()],
                name=f"healthcheck-{service}",
                connect_timeout=max(0.5, timeout / 2),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=quiet,
            ),
            timeout,
        )
    except TimeoutError:
        return Verdict(False, f"NATS {nats_url} unreachable: no connection within {timeout:g}s")
    except Exception as exc:  # nats raises several unrelated types for "cannot connect"
        return Verdict(False, f"NATS {nats_url} unreachable: {type(exc).__name__} {exc}".strip())
    found: asyncio.Queue[ServiceInfo] = asyncio.Queue()
    others: list[str] = []

    async def on_reply(msg: Msg) -> None:
        info = parse_stats(msg.data)
        if info is not None:
            await found.put(info)

    try:
        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=on_reply)
        await nc.publish(stats_subject(name), b"", reply=inbox)
        while (left := deadline - time.monotonic()) > 0:
            try:
                info = await asyncio.wait_for(found.get(), left)
            except TimeoutError:
                break
            if not (any_replica or is_this_replica(info, instance_id, hostname)):
                others.append(info.instance)
                continue
            detail = ", ".join(f"{k}={v}" for k, v in info.detail.items())
            summary = f"{service} {info.instance} up {info.uptime_s:.0f}s" + (f" ({detail})" if detail else "")
            return Verdict(True, summary) if info.ready else Verdict(False, f"not ready: {summary}")
    finally:
        await nc.close()
    whose = "any replica" if any_replica else (f"instance {instance_id!r}" if instance_id else f"host {hostname!r}")
    also = f"; other replicas answered: {', '.join(sorted(others))}" if others else ""
    return Verdict(False, f"no answer from {service} ({whose}) to {stats_subject(name)} in {timeout:g}s{also}")


async def check_http(url: str, timeout: float) -> Verdict:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            resp = await client.get(url)
    except httpx.HTTPError as exc:
        return Verdict(False, f"{url}: {type(exc).__name__} {exc}".strip())
    if resp.status_code != 200:
        return Verdict(False, f"{url}: HTTP {resp.status_code} {resp.text[:200]}")
    return Verdict(True, f"{url}: HTTP 200")


async def check_postgres(dsn: str, timeout: float) -> Verdict:
    import asyncpg

    from tools.embedded import mask_dsn

    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            await conn.fetchval("SELECT 1", timeout=timeout)
        finally:
            await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return Verdict(False, f"PostgreSQL {mask_dsn(dsn)}: {type(exc).__name__} {exc}".strip())
    return Verdict(True, f"PostgreSQL {mask_dsn(dsn)} answers")


async def check(service: str, args: argparse.Namespace, settings: CommonSettings) -> Verdict:
    if service in PING_NAMES:
        return await check_ping(
            service, settings.nats_url, args.timeout, any_replica=args.any, instance_id=settings.instance_id
        )
    if service == "gateway":
        port = os.environ.get("GATEWAY_PORT", "8000")
        return await check_http(args.url or f"http://127.0.0.1:{port}/health", args.timeout)
    if service == "nats":
        return await check_http(args.url or "http://127.0.0.1:8222/healthz", args.timeout)
    return await check_postgres(settings.database_url.get_secret_value(), args.timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.healthcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    parser.add_argument("--any", action="store_true", help="workers/recorder: any replica's answer counts")
    parser.add_argument("--url", default="", help="gateway/nats: the URL to GET instead of the default")
    args = parser.parse_args(argv)
    verdict = asyncio.run(check(args.service, args, CommonSettings()))
    print(f"{'healthy' if verdict.healthy else 'unhealthy'}: {verdict.reason}")
    return 0 if verdict.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
