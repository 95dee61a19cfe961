"""The raw limit of a deposit: a trivial WSGI app, served by the same gunicorn as ged,
that writes the request body to disk (fsynced, like ged's blob store) and answers 201.

No multipart parsing, no hashing, no database: only what no deposit can avoid.
Run as ``gunicorn bench.rawapp:app`` with BENCH_RAW_DIR naming the directory.
"""

from __future__ import annotations

import os
import uuid

DIRECTORY = os.environ.get("BENCH_RAW_DIR", "/tmp/ged-bench-raw")
os.makedirs(DIRECTORY, exist_ok=True)


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    path = os.path.join(DIRECTORY, uuid.uuid4().hex)
    with open(path, "wb") as out:
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(remaining, 1024 * 1024))
            if not chunk:
                break
            out.write(chunk)
            remaining -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    dir_fd = os.open(DIRECTORY, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    body = b'{"stored": true}'
    start_response("201 Created", [("Content-Type", "application/json"),
                                   ("Content-Length", str(len(body)))])
    return [body]
