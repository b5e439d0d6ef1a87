"""Delivers the post-call webhook: the rows of ``webhook_deliveries`` that are due, POSTed signed, retried with
exponential backoff and jitter, then given up as ``failed``.

Several recorder replicas run this loop side by side. A replica claims due rows with ``FOR UPDATE SKIP LOCKED``
(so no two claim the same row) and marks them ``delivering`` with a lease: ``next_attempt_at`` becomes the
moment the claim expires. A replica that dies mid-delivery leaves the row to be claimed again once its lease is
over; every result is written only if the claim is still the writer's (same status and attempt), so a replica
that was too slow cannot overwrite the next one's result. Delivery is at least once: a crash between the
receiver's 2xx and our write sends the same ``X-Victoria-Delivery`` again, which receivers dedupe on.

A claim's lease covers the POST's timeout plus :data:`LEASE_MARGIN_S` for the database around it, so waiting
for a connection must stay inside it: a poll claims no more rows than the pool serves at once (one connection
is left to the rest of the recorder), and every connection an attempt needs is awaited only until its lease
runs out. An attempt that cannot have one in time gives its row up (the claim expires and any replica retries
it) rather than POSTing or writing its result while another replica may already hold the row.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
from prometheus_client import Counter, Histogram

from services.call_recorder.webhook_payload import EVENT, build_payload
from shared.logging import bound_call, get_logger
from shared.metrics import LATENCY_BUCKETS
from shared.signing import DELIVERY_HEADER, SIGNATURE_HEADER, key_for, sign

log = get_logger(__name__)

EVENT_HEADER = "X-Victoria-Event"
LEASE_MARGIN_S = 30.0  # a claim outlives the POST's own timeout by this much (the database writes around it)
MAX_DELAY_S = 3600.0  # no retry waits longer, whatever the backoff or the receiver's Retry-After says
CLAIM_BATCH = 16  # at most, and never more than the pool's connections less one (WebhookDeliverer.batch)
# shares of LEASE_MARGIN_S: our view of a lease ends this much before the database's (the claim's round trip);
# the payload's connection is awaited only while the POST's timeout and this much more are left for the write
CLOCK_SLACK_SHARE = 0.1
WRITE_SHARE = 0.25

DELIVERIES = Counter(
    "victoria_webhook_deliveries_total",
    "Post-call webhook attempts by outcome: delivered (2xx), retry (will be tried again), failed (gave up)",
    ["outcome"],
)
DELIVERY_SECONDS = Histogram(
    "victoria_webhook_delivery_seconds",
    "One post-call webhook POST, from sending it to the receiver's answer (or the error)",
    buckets=LATENCY_BUCKETS,
)

_CLAIM = """
WITH due AS (
    SELECT id, status FROM webhook_deliveries
    WHERE status IN ('pending', 'delivering') AND next_attempt_at <= now()
    ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET status = 'delivering', attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $1)
FROM due WHERE d.id = due.id
RETURNING d.id, d.call_id, d.url, d.attempts, due.status AS was
"""
_DELIVERED = """
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), last_status_code = $3, last_error = NULL
WHERE id = $1 AND status = 'delivering' AND attempts = $2
"""
_NOT_DELIVERED = """
UPDATE webhook_deliveries SET status = $3, last_status_code = $4, last_error = $5,
       next_attempt_at = now() + make_interval(secs => $6)
WHERE id = $1 AND status = 'delivering' AND attempts = $2
"""


@dataclass(frozen=True)
class Claim:
    id: str
    call_id: str
    url: str
    attempts: int  # this attempt's number
    reclaimed: bool  # its previous claim expired (that replica died or hung)
    expires: float = math.inf  # time.monotonic() when this claim's lease runs out (a little before, in fact)

    def left_s(self) -> float:
        return self.expires - time.monotonic()


class ClaimLost(Exception):
    """No database connection came before the claim's lease ran out: the row is given up to the next claim."""


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no answer (refused, timed out)
    error: str | None
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def backoff_s(attempt: int, base_s: float) -> float:
    """The wait after failed attempt ``attempt`` (1, 2, ...): ``base_s`` doubling, within ±25 % so that many
    deliveries failing together do not come back together."""
    delay = min(MAX_DELAY_S, base_s * 2 ** min(attempt - 1, 30))
    return min(MAX_DELAY_S, delay * random.uniform(0.75, 1.25))


def retry_after_s(value: str | None) -> float | None:
    """A receiver's ``Retry-After`` in seconds (the delta form only), or None."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class WebhookDeliverer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        secret: str,
        retry_base_s: float,
        max_attempts: int,
        timeout_s: float,
        poll_s: float,
        client: httpx.AsyncClient | None = None,
        lease_margin_s: float = LEASE_MARGIN_S,
    ) -> None:
        self.pool = pool
        self.secret = secret
        self.retry_base_s = retry_base_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.lease_margin_s = lease_margin_s
        # no redirects: a receiver that moved says so with an error we record, we never follow it elsewhere
        self.client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False)
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-deliverer")

    def wake(self) -> None:
        """A delivery was just queued here: look now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        """Finish the deliveries in hand (bounded by their timeout), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self.timeout_s + 5.0)
            except TimeoutError:
                log.warning("webhook_deliverer_stop_timeout")  # the claims expire and another replica retries
        await self.client.aclose()

    async def _run(self) -> None:
        while not self._closing:
            try:
                handled = await self.deliver_due()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("webhook_poll_failed", error=str(exc) or type(exc).__name__)
                handled = 0
            except Exception:  # a bug must not stop every later delivery: logged, and the loop goes on
                log.exception("webhook_round_failed")
                handled = 0
            if handled < self.batch():  # a full batch: more may be due at once
                try:
                    async with asyncio.timeout(self.poll_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()

    def batch(self) -> int:
        """Rows claimed per poll: as many as the pool serves at once, one connection left to the recorder's
        other work, so that no attempt waits for a connection while its lease runs."""
        return max(1, min(CLAIM_BATCH, self.pool.get_max_size() - 1))

    async def deliver_due(self) -> int:
        """Claim the deliveries due now and make one attempt at each; returns how many."""
        lease_s = self.timeout_s + self.lease_margin_s
        rows = await self.pool.fetch(_CLAIM, lease_s, self.batch())
        expires = time.monotonic() + lease_s - CLOCK_SLACK_SHARE * self.lease_margin_s
        claims = [
            Claim(r["id"], r["call_id"], r["url"], r["attempts"], r["was"] == "delivering", expires) for r in rows
        ]
        await asyncio.gather(*(self._attempt(c) for c in claims))
        return len(claims)

    async def _attempt(self, claim: Claim) -> None:
        with bound_call(claim.call_id, delivery_id=claim.id, attempt=claim.attempts):
            try:
                if claim.reclaimed:
                    log.warning("webhook_claim_expired", hint="the replica delivering it died or hung: retried")
                if claim.attempts > self.max_attempts:  # its last attempt's replica died: that was the last one
                    await self._record(claim, Answer(None, "no result from the last attempt (its claim expired)"))
                    return
                try:
                    # the payload's connection only while the POST and the result's write still fit the lease
                    async with self._connection(claim, self.timeout_s + WRITE_SHARE * self.lease_margin_s) as conn:
                        payload = await build_payload(conn, claim.call_id, claim.id)
                except LookupError:
                    return  # the call was deleted (retention): its deliveries went with it
                except ValueError as exc:  # a stored row the payload model refuses: a bug, but never a dead loop
                    log.exception("webhook_payload_invalid")
                    await self._record(claim, Answer(None, f"the payload could not be built: {exc}"[:500]))
                    return
                answer = await self.post(claim, payload.model_dump_json().encode())
                await self._record(claim, answer)
            except ClaimLost as exc:
                log.warning("webhook_claim_given_up", reason=str(exc), hint="the claim expires and it is retried")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # the database failed under us: the claim expires and this attempt is made again
                log.warning("webhook_attempt_db_error", error=str(exc) or type(exc).__name__)

    @contextlib.asynccontextmanager
    async def _connection(self, claim: Claim, keep_s: float = 0.0) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, awaited only while ``keep_s`` of the claim's lease would still be left after it;
        :class:`ClaimLost` when none comes in time."""
        wait_s = claim.left_s() - keep_s
        if wait_s <= 0:
            raise ClaimLost(f"its lease runs out in {claim.left_s():.1f}s")
        try:
            conn = await self.pool.acquire(timeout=wait_s)
        except TimeoutError:
            raise ClaimLost(f"no database connection within {wait_s:.1f}s") from None
        try:
            yield conn
        finally:
            await self.pool.release(conn)

    async def post(self, claim: Claim, body: bytes) -> Answer:
        """One signed POST of ``body`` (with the key of ``claim.url``, :func:`shared.signing.key_for`); never
        raises for what the receiver or the network does."""
        started = time.monotonic()
        try:
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(key_for(self.secret, claim.url), body),
                DELIVERY_HEADER: claim.id,
                EVENT_HEADER: EVENT,
            }
            async with asyncio.timeout(self.timeout_s):
                async with self.client.stream("POST", claim.url, content=body, headers=headers) as resp:
                    code = resp.status_code  # the body is not read: a receiver's answer is its status
                    wait = retry_after_s(resp.headers.get("Retry-After"))
        except TimeoutError:
            return Answer(None, f"no answer within {self.timeout_s:g}s")
        except (httpx.HTTPError, OSError, ValueError) as exc:  # refused, reset, TLS, a malformed URL
            return Answer(None, f"{type(exc).__name__}: {exc}"[:500])
        finally:
            DELIVERY_SECONDS.observe(time.monotonic() - started)
        if 200 <= code < 300:
            return Answer(code, None)
        return Answer(code, f"HTTP {code}", wait)

    async def _record(self, claim: Claim, answer: Answer) -> None:
        """Write the attempt's result, if a connection comes while the claim is still ours (else ClaimLost)."""
        async with self._connection(claim) as conn:
            await self._write(conn, claim, answer)

    async def _write(self, conn: asyncpg.Connection, claim: Claim, answer: Answer) -> None:
        if answer.delivered:
            await conn.execute(_DELIVERED, claim.id, claim.attempts, answer.status_code)
            DELIVERIES.labels("delivered").inc()
            log.info("webhook_delivered", status_code=answer.status_code)
            return
        final = claim.attempts >= self.max_attempts
        delay = 0.0 if final else max(backoff_s(claim.attempts, self.retry_base_s), answer.retry_after_s or 0.0)
        await conn.execute(
            _NOT_DELIVERED,
            claim.id,
            claim.attempts,
            "failed" if final else "pending",
            answer.status_code,
            answer.error,
            min(delay, MAX_DELAY_S),
        )
        DELIVERIES.labels("failed" if final else "retry").inc()
        if final:
            log.error("webhook_failed", attempts=claim.attempts, status_code=answer.status_code, error=answer.error)
        else:
            log.warning("webhook_retry", status_code=answer.status_code, error=answer.error, retry_in_s=round(delay, 2))
