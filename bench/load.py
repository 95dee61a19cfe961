"""HTTP load for the deposit figures: N uploads by C concurrent clients, each on
its own keep-alive connection, timing every request."""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    seconds: float = 0.0  # wall time of the whole load
    errors: list[str] = field(default_factory=list)
    replies: list[tuple[float, bytes]] = field(default_factory=list)  # (reply time, body)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def multipart(data: bytes, filename: str, field_name: str = "file",
              content_type: str = "application/pdf") -> tuple[bytes, str]:
    """A multipart/form-data body with one file part, and its Content-Type header."""
    boundary = "ged-bench-boundary-7c1f"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


def upload_load(port: int, path: str, body_for: Callable[[int], tuple[bytes, str]], count: int,
                concurrency: int, headers: dict | None = None, expect: int = 201,
                keep_replies: bool = False) -> LoadResult:
    """POST ``count`` bodies to 127.0.0.1:``port`` with ``concurrency`` clients."""
    result = LoadResult()
    counter = itertools.count()
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter)
            if i >= count:
                break
            body, ctype = body_for(i)
            hdrs = dict(headers or {}, **{"Content-Type": ctype})
            started = time.perf_counter()
            try:
                conn.request("POST", path, body, hdrs)
                response = conn.getresponse()
                reply = response.read()
                elapsed = time.perf_counter() - started
                if response.status != expect:
                    with lock:
                        result.errors.append(f"{response.status}: {reply[:200]!r}")
                    continue
                with lock:
                    result.latencies.append(elapsed)
                    if keep_replies:
                        result.replies.append((time.monotonic(), reply))
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    result.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.close()

    threads = [threading.Thread(target=client, name=f"load-{n}") for n in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    return result
