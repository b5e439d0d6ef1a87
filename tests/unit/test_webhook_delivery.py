"""The post-call webhook's retry policy and request, without a database: backoff doubles within its jitter and
its cap, a receiver's Retry-After is read, only a 2xx counts as delivered, and the POST carries the signed body
and the headers receivers rely on (a real receiver on 127.0.0.1)."""

from __future__ import annotations

import httpx
import pytest

from services.call_recorder.webhooks import MAX_DELAY_S, Answer, Claim, WebhookDeliverer, backoff_s, retry_after_s
from shared.signing import verify
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
    assert verify("unit-secret", sent.body, sent.headers["X-Victoria-Signature"])


async def test_a_slow_or_absent_receiver_is_an_answer_not_an_exception() -> None:
    with Receiver(delay_s=1.0) as slow:
        async with httpx.AsyncClient(trust_env=False) as client:
            answer = await _deliverer(client, timeout_s=0.2).post(Claim("whd_2", "c", slow.url, 1, False), b"{}")
    assert answer == Answer(None, "no answer within 0.2s")
    async with httpx.AsyncClient(trust_env=False) as client:  # the receiver is gone: connection refused
        answer = await _deliverer(client).post(Claim("whd_3", "c", slow.url, 1, False), b"{}")
    assert answer.status_code is None and answer.error is not None and "ConnectError" in answer.error
