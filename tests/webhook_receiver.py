"""A real HTTP server on 127.0.0.1 that plays a webhook receiver: it keeps every request it gets and answers
each with the next status of a script (the last one repeats)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=lambda: [200])
    delay_s: float = 0.0  # each answer waits this long (a slow receiver)
    retry_after: str | None = None  # sent with every answer that is not a 2xx
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(receiver.delay_s)
                with receiver._lock:
                    n = len(receiver.requests)
                    code = receiver.statuses[min(n, len(receiver.statuses) - 1)]
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body, code))
                self.send_response(code)
                if code in (301, 302, 307, 308):
                    self.send_header("Location", "/elsewhere")
                if receiver.retry_after is not None and not 200 <= code < 300:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:  # quiet
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog (5) resets connections of concurrent deliveries

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)
