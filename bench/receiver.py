"""A local HTTP receiver standing for a linked tool: it takes every POST, notes when
it arrived and which document it carried, and answers 200 at once."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOCUMENT_ID = re.compile(rb'"document_id"\s*:\s*"([^"]+)"')


class Receiver:
    """``url`` to post to; ``arrivals`` maps a document id (or x-bench-key) to the
    monotonic time its first request arrived."""

    def __init__(self):
        self.arrivals: dict[str, float] = {}
        self.requests = 0
        self.bytes = 0
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self._body()
                now = time.monotonic()
                key = self.headers.get("x-bench-key")
                if not key:
                    match = DOCUMENT_ID.search(body)
                    key = match.group(1).decode() if match else f"unknown-{now}"
                with receiver._cond:
                    receiver.requests += 1
                    receiver.bytes += len(body)
                    receiver.arrivals.setdefault(key, now)
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="bench-receiver")
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, key: str, timeout: float) -> float | None:
        """The arrival time of ``key``, waiting up to ``timeout`` seconds; None if it never came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self.arrivals:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.arrivals[key]

    def wait_count(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` distinct keys have arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.arrivals) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
            return True

    def reset(self) -> None:
        with self._cond:
            self.arrivals.clear()
            self.requests = 0
            self.bytes = 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
