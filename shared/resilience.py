"""Circuit breakers for providers: after ``failure_threshold`` failures in a row a provider is skipped for
``reset_after_s`` (so calls go straight to the fallback instead of waiting on timeouts); then one trial
request is let through (half-open), and its outcome closes the circuit or opens it again."""

from __future__ import annotations

import time

from prometheus_client import Gauge

from shared.logging import get_logger

log = get_logger(__name__)

CIRCUIT_OPEN = Gauge("victoria_provider_circuit_open", "1 while a provider's circuit is open", ["service", "provider"])


class CircuitBreaker:
    def __init__(self, service: str, provider: str, *, failure_threshold: int = 5, reset_after_s: float = 30.0) -> None:
        self.service = service
        self.provider = provider
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() - self.opened_at >= self.reset_after_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial:
            self._trial = True  # one request probes the provider; the others keep falling back meanwhile
            return True
        return False

    def record_success(self) -> None:
        if self.opened_at is not None:
            log.info("provider_circuit_closed", service=self.service, provider=self.provider)
        self.failures = 0
        self.opened_at = None
        self._trial = False
        CIRCUIT_OPEN.labels(self.service, self.provider).set(0)

    def record_failure(self) -> None:
        self.failures += 1
        if self._trial or self.failures >= self.failure_threshold:
            if self.opened_at is None or self._trial:
                log.warning(
                    "provider_circuit_opened",
                    service=self.service,
                    provider=self.provider,
                    failures=self.failures,
                    reset_after_s=self.reset_after_s,
                )
            self.opened_at = time.monotonic()
            self._trial = False
            CIRCUIT_OPEN.labels(self.service, self.provider).set(1)
