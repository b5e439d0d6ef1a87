"""What every gateway replica must agree it has seen: Telnyx event ids (a webhook repeated, or delivered to two
replicas, is processed once) and calls already hung up (a hang-up that overtook its ``call.initiated`` on
another replica still keeps the call from being answered).

Kept in a NATS KV bucket with a TTL (``victoria_telnyx_webhooks``, 24 h, longer than Telnyx retries), so
"first" is decided by JetStream for all replicas at once: ``create`` succeeds for exactly one writer. While
the bucket cannot be reached (NATS down) each replica falls back to a bounded set in its own memory, which
is what one replica had before.
"""

from __future__ import annotations

from collections import OrderedDict

from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared import subjects
from shared.kv import ensure_kv
from shared.logging import get_logger

log = get_logger(__name__)

TTL_S = 24 * 3600.0
REMEMBERED = 10_000  # per set, in memory, while the bucket is unreachable


class _Local:
    """A bounded set, oldest forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> bool:
        if key in self._items:
            return False
        self._items[key] = None
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return True

    def discard(self, key: str) -> None:
        self._items.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._items


class SharedSeen:
    """A set shared by every replica: keys ``<prefix>.<escaped key>`` in one KV bucket."""

    def __init__(
        self,
        js: JetStreamContext,
        prefix: str,
        *,
        bucket: str = subjects.TELNYX_WEBHOOKS_BUCKET,
        ttl_s: float = TTL_S,
    ) -> None:
        self.js = js
        self.prefix = prefix
        self.bucket = bucket
        self.ttl_s = ttl_s
        self.local = _Local(REMEMBERED)
        self._kv: KeyValue | None = None

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{subjects.safe_token(key)}"

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await ensure_kv(self.js, self.bucket, ttl_s=self.ttl_s)
        return self._kv

    async def add(self, key: str) -> bool:
        """True for the first replica to add ``key`` (within the TTL), False for every later one."""
        try:
            await (await self._bucket()).create(self._key(key), b"1")
        except KeyWrongLastSequenceError:
            self.local.add(key)
            return False
        except Exception as exc:  # NATS down: this replica's memory decides
            log.warning("webhook_dedupe_unavailable", bucket=self.bucket, error=str(exc) or type(exc).__name__)
            return self.local.add(key)
        self.local.add(key)
        return True

    async def discard(self, key: str) -> None:
        """Forget ``key`` (processing failed: the provider's retry must not look like a repeat)."""
        self.local.discard(key)
        try:
            await (await self._bucket()).delete(self._key(key))
        except Exception as exc:
            log.warning("webhook_dedupe_unavailable", bucket=self.bucket, error=str(exc) or type(exc).__name__)

    async def contains(self, key: str) -> bool:
        if key in self.local:
            return True
        try:
            await (await self._bucket()).get(self._key(key))
        except KeyNotFoundError:  # includes a deleted key
            return False
        except Exception as exc:
            log.warning("webhook_dedupe_unavailable", bucket=self.bucket, error=str(exc) or type(exc).__name__)
            return False
        return True
