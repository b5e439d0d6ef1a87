"""Opening a NATS JetStream key-value bucket the same way everywhere: created on first use, idempotent when
several processes race to create it (the loser uses the winner's bucket)."""

from __future__ import annotations

from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue

from shared.logging import get_logger

log = get_logger(__name__)


async def ensure_kv(js: JetStreamContext, bucket: str, *, ttl_s: float | None = None, history: int = 1) -> KeyValue:
    """The bucket, created if missing; ``ttl_s`` makes every entry expire that long after it was written."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    try:
        kv = await js.create_key_value(
            KeyValueConfig(bucket=bucket, history=history, ttl=ttl_s, storage=StorageType.FILE)
        )
        log.info("kv_bucket_created", bucket=bucket, ttl_s=ttl_s)
        return kv
    except BadRequestError:  # someone else created it meanwhile
        return await js.key_value(bucket)
