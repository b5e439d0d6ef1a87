"""The post-call webhook's retry policy and request, without a database: backoff doubles within its jitter and
its cap, a receiver's Retry-After is read, only a 2xx counts as delivered, and the POST carries the signed body
and the headers receivers rely on (a real receiver on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import httpx
import pytest

from services.call_recorder import webhooks
from services.call_recorder.webhooks import (
    CLAIM_BATCH,
    MAX_DELAY_S,
    Answer,
    Claim,
    WebhookDeliverer,
    backoff_s,
    retry_after_s,
)
from shared.signing import key_for, verify
from tests.webhook_receiver import Receiver


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    for attempt, nominal in ((1, 2.0), (2, 4.0), (3, 8.0), (7, 128.0)):
        waits = {backoff_s(attempt, 2.0) for _ in range(200)}
        assert all(0.75 * nominal <= w <= 1.25 * nominal for w in waits), (attempt, min(waits), max(waits))
        assert len(waits) > 100  # jittered, not one fixed value
    assert backoff_s(40, 2.0) <= MAX_DELAY_S and backoff_s(1000, 2.0) <= MAX_DELAY_S


def test_retry_after_is_read_in_seconds_only() -> None:
    assert retry_after_s("30") == 30.0 and retry_after_s("0.5") == 0.5 and retry_after_s("-3") == 0.0
    assert retry_after_s(None) is None and retry_after_s("") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") is None


@pytest.mark.parametrize(("code", "delivered"), [(200, True), (204, True), (299, True), (302, False), (500, False)])
def test_only_a_2xx_is_delivered(code: int, delivered: bool) -> None:
    assert Answer(code, None).delivered is delivered
    assert Answer(None, "refused").delivered is False


def _deliverer(client: httpx.AsyncClient, timeout_s: float = 2.0) -> WebhookDeliverer:
    return WebhookDeliverer(
        None,  # type: ignore[arg-type]  # post() never touches the database
        secret="unit-secret",
        retry_base_s=1.0,
        max_attempts=3,
        timeout_s=timeout_s,
        poll_s=1.0,
        client=client,
    )


async def test_the_post_is_signed_and_names_its_delivery() -> None:
    with Receiver(statuses=[503, 200], retry_after="7") as receiver:
        claim = Claim("whd_1", "call-1", receiver.url, 1, False)
        async with httpx.AsyncClient(trust_env=False) as client:
            loop = _deliverer(client)
            first = await loop.post(claim, b'{"event": "call.completed"}')
            second = await loop.post(claim, b'{"event": "call.completed"}')
        sent = receiver.received()[1]
    assert first == Answer(503, "HTTP 503", 7.0) and second == Answer(200, None)
    assert sent.headers["X-Victoria-Delivery"] == "whd_1" and sent.headers["X-Victoria-Event"] == "call.completed"
    assert sent.headers["Content-Type"] == "application/json" and sent.body == b'{"event": "call.completed"}'
    assert verify(key_for("unit-secret", receiver.url), sent.body, sent.headers["X-Victoria-Signature"])
    assert not verify("unit-secret", sent.body, sent.headers["X-Victoria-Signature"])


async def test_a_slow_or_absent_receiver_is_an_answer_not_an_exception() -> None:
    with Receiver(delay_s=1.0) as slow:
        async with httpx.AsyncClient(trust_env=False) as client:
            answer = await _deliverer(client, timeout_s=0.2).post(Claim("whd_2", "c", slow.url, 1, False), b"{}")
    assert answer == Answer(None, "no answer within 0.2s")
    async with httpx.AsyncClient(trust_env=False) as client:  # the receiver is gone: connection refused
        answer = await _deliverer(client).post(Claim("whd_3", "c", slow.url, 1, False), b"{}")
    assert answer.status_code is None and answer.error is not None and "ConnectError" in answer.error


# --- the pool: a poll claims no more than it can serve, and no attempt outlives its lease waiting for it ---------


class _Pool:
    """An asyncpg pool's surface as the deliverer uses it: ``max_size`` connections, ``free`` of them ever
    handed out (the others are busy elsewhere: ``acquire`` waits, as asyncpg's does, until its timeout)."""

    def __init__(self, rows: list[dict[str, object]], *, max_size: int = 4, free: int = 4) -> None:
        self.rows, self.max_size, self.free = rows, max_size, free
        self.limits: list[int] = []
        self.executed: list[tuple[object, ...]] = []
        self.waits: list[float] = []

    def get_max_size(self) -> int:
        return self.max_size

    async def fetch(self, query: str, lease_s: float, limit: int) -> list[dict[str, object]]:
        self.limits.append(limit)
        return self.rows[:limit]

    async def acquire(self, *, timeout: float) -> _Pool:
        self.waits.append(timeout)
        if self.free <= 0:
            await asyncio.sleep(timeout)
            raise TimeoutError
        self.free -= 1
        return self

    async def release(self, conn: object) -> None:
        self.free += 1

    async def execute(self, *args: object) -> None:
        self.executed.append(args)


def _rows(url: str, n: int) -> list[dict[str, object]]:
    return [{"id": f"whd_{i}", "call_id": f"call-{i}", "url": url, "attempts": 1, "was": "pending"} for i in range(n)]


def _loop(pool: _Pool, client: httpx.AsyncClient | None = None, **timing: float) -> WebhookDeliverer:
    timing = {"timeout_s": 2.0, **timing}
    return WebhookDeliverer(pool, secret="k", retry_base_s=1, max_attempts=3, poll_s=1, client=client, **timing)  # type: ignore[arg-type]


@pytest.fixture
def payload(monkeypatch: pytest.MonkeyPatch) -> None:
    async def build(conn: object, call_id: str, delivery_id: str) -> SimpleNamespace:
        return SimpleNamespace(model_dump_json=lambda: f'{{"delivery_id": "{delivery_id}"}}')

    monkeypatch.setattr(webhooks, "build_payload", build)


async def test_a_poll_claims_no_more_rows_than_the_pool_serves_at_once(payload: None) -> None:
    with Receiver(delay_s=0.1) as receiver:
        pool = _Pool(_rows(receiver.url, 16), max_size=4)  # 16 due, a whole batch, for a pool of 4
        async with httpx.AsyncClient(trust_env=False) as client:
            loop = _loop(pool, client)
            assert loop.batch() == 3 < CLAIM_BATCH  # one connection stays with the recorder's other work
            assert await loop.deliver_due() == 3
    assert pool.limits == [3] and len(receiver.received()) == 3
    assert sorted(args[1:3] for args in pool.executed) == [(f"whd_{i}", 1) for i in range(3)]  # results written
    assert pool.free == 4  # every connection given back
    assert _loop(_Pool([], max_size=1)).batch() == 1 and _loop(_Pool([], max_size=40)).batch() == CLAIM_BATCH


async def test_an_attempt_without_a_connection_in_its_lease_gives_the_row_up(
    payload: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every connection busy elsewhere: the payload's wait ends while the POST (0.3 s) and the write (a quarter
    of the 0.5 s margin) still fit the 0.8 s lease; nothing is sent, nothing written."""
    with Receiver() as receiver:
        pool = _Pool(_rows(receiver.url, 2), free=0)
        async with httpx.AsyncClient(trust_env=False) as client:
            started = time.monotonic()
            assert await _loop(pool, client, timeout_s=0.3, lease_margin_s=0.5).deliver_due() == 2
            took = time.monotonic() - started
    assert receiver.received() == [] and pool.executed == []
    assert took < 0.8 - 0.3 and all(w < 0.8 - 0.3 - 0.125 for w in pool.waits), (took, pool.waits)
    assert capsys.readouterr().out.count("webhook_claim_given_up") == 2


async def test_a_result_that_cannot_be_written_in_the_lease_is_not_written_late(
    payload: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The payload had its connection, then the pool ran dry during the POST: the result is not written after
    the lease (another replica may hold the row by then); the claim expires and the row is retried."""
    with Receiver(delay_s=0.2) as receiver:
        pool = _Pool(_rows(receiver.url, 1), free=1)
        async with httpx.AsyncClient(trust_env=False) as client:
            loop = _loop(pool, client, timeout_s=0.5, lease_margin_s=0.5)
            original = loop.post

            async def post_then_starve(claim: Claim, body: bytes) -> Answer:
                answer = await original(claim, body)
                pool.free = 0  # the other connections went to other work meanwhile
                return answer

            loop.post = post_then_starve  # type: ignore[method-assign]
            started = time.monotonic()
            await loop._attempt(Claim("whd_0", "call-0", receiver.url, 1, False, started + 1.0))
            took = time.monotonic() - started
    assert len(receiver.received()) == 1 and pool.executed == []
    assert 0.9 < took < 1.1  # waited for a connection until the lease's end, not after
    assert "webhook_claim_given_up" in capsys.readouterr().out
