"""RQ jobs of the raw limits: a trivial job, and a job posting a file to the receiver."""

from __future__ import annotations

import json


def noop() -> None:
    """The trivial job: RQ's own cost per job, nothing else."""
    return None


_client = None


def post_file(url: str, path: str, key: str) -> int:
    """Post a file to the receiver as ged posts a delivery (multipart file + metadata),
    without database, signature or status bookkeeping, on a client kept between jobs."""
    global _client
    import httpx

    if _client is None:
        _client = httpx.Client(timeout=30, trust_env=False)
    with open(path, "rb") as fh:
        response = _client.post(url, files={"file": ("document.pdf", fh, "application/pdf")},
                                data={"metadata": json.dumps({"document_id": key})},
                                headers={"x-bench-key": key})
    return response.status_code
