"""The http sender: one signed POST per attempt, and what the tool's answer means.

Requests follow the Standard Webhooks specification (``webhook-id`` = the delivery
id on every retry, HMAC-SHA256 over ``id.timestamp.body``); the body is streamed
from the blob store twice (once to sign, once to send). Redirects are never
followed, and the connection goes only to checked public addresses (``guard``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import socket
import time
from typing import Iterator

import httpcore
import httpx

from ..models import Connection, Delivery, Document, utcnow
from .bodies import Body
from .envelope import http_body, payload_for
from .guard import GuardedBackend, TargetRefused, check_url
from .options import effective_options
from .outcome import FILE_MISSING, Outcome, fail, retry, success
from .signing import sign, signing_secrets

USER_AGENT = "ged-forwarding/1"
RESPONSE_EXCERPT = 2048
SEND_BUFFER = 256 * 1024  # bytes written at a time when sending a body

_CLIENTS: dict[tuple, httpx.Client] = {}


def _client(cfg) -> httpx.Client:
    """The process's HTTP client for these settings, kept between deliveries: building
    one loads the CA bundle (milliseconds each time), and a kept client reuses its
    connections to a tool that receives many documents in a row."""
    key = (os.getpid(), cfg.allow_private_targets, cfg.delivery_timeout,
           cfg.delivery_connect_timeout)
    client = _CLIENTS.get(key)
    if client is None or client.is_closed:
        transport = httpx.HTTPTransport(trust_env=False, retries=0)
        # httpx has no hook on the connect step: give the transport a pool whose network
        # backend checks every address it connects to.
        # TCP_NODELAY: a request is headers then body; with Nagle's algorithm the body's
        # last segment can wait for the tool's delayed ACK (40 ms a request).
        transport._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=20,
            keepalive_expiry=30.0, network_backend=GuardedBackend(cfg.allow_private_targets),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        client = httpx.Client(transport=transport, follow_redirects=False, trust_env=False,
                              timeout=httpx.Timeout(cfg.delivery_timeout,
                                                    connect=cfg.delivery_connect_timeout))
        _CLIENTS[key] = client
    return client


class AttemptTimeout(Exception):
    """An attempt ran past its total time bound."""


def post(cfg, url: str, headers: dict, body: Body) -> tuple[int, httpx.Headers, str]:
    """POST the body; returns (status, headers, start of the response body). The
    attempt is bounded by the connect timeout plus the total timeout."""
    deadline = time.monotonic() + cfg.delivery_connect_timeout + cfg.delivery_timeout

    def bounded(chunks: Iterator[bytes]) -> Iterator[bytes]:
        # The body's small pieces (part headers, JSON around the base64) joined into
        # writes of up to SEND_BUFFER bytes: fewer system calls and packets.
        pending = bytearray()
        for chunk in chunks:
            if time.monotonic() > deadline:
                raise AttemptTimeout()
            pending += chunk
            if len(pending) >= SEND_BUFFER:
                yield bytes(pending)
                pending.clear()
        if pending:
            yield bytes(pending)

    client = _client(cfg)
    with client.stream("POST", url, headers=headers, content=bounded(body.chunks())) as resp:
        excerpt = b""
        for chunk in resp.iter_bytes():
            excerpt += chunk
            if len(excerpt) >= RESPONSE_EXCERPT or time.monotonic() > deadline:
                break
        return resp.status_code, resp.headers, excerpt[:RESPONSE_EXCERPT].decode(
            "utf-8", "replace")


def signed_headers(conn: Connection, msg_id: str, body: Body) -> dict:
    """The request's headers: the connection's static ones (e.g. a tool's Authorization),
    then the Standard Webhooks signature over the body, streamed through the HMAC."""
    timestamp = int(time.time())
    headers = dict(effective_options(conn).get("headers") or {})
    headers.update({
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(signing_secrets(conn), msg_id, timestamp, body.chunks()),
        "content-type": body.content_type,
        "content-length": str(len(body)),
        "user-agent": USER_AGENT,
    })
    return headers


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return (text[:300] + "…") if len(text) > 300 else text


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max((when - utcnow()).total_seconds(), 0.0)


def classify(status: int, headers: httpx.Headers, text: str) -> Outcome:
    """What an http answer means for the delivery (API.md, "What an http connection receives")."""
    said = f" : {_excerpt(text)}" if text.strip() else ""
    if 200 <= status < 300:
        return success("accepted", status)
    if 300 <= status < 400:
        location = headers.get("location") or "?"
        return fail(f"L'outil a répondu par une redirection (HTTP {status} vers {location}). "
                    "Les redirections ne sont pas suivies : corrigez l'URL de la connexion.",
                    status)
    if status == 410:
        return fail(f"L'outil a répondu HTTP 410 (Gone) : cette adresse n'accepte plus de "
                    f"documents. La connexion a été mise en pause{said}.", status, pause=True)
    if status in (408, 429) or status >= 500:
        return retry(f"L'outil a répondu HTTP {status}{said}", status, _retry_after(headers))
    return fail(f"L'outil a refusé le document (HTTP {status}){said}", status)


# What a request can end in before the tool answers.
NETWORK_ERRORS = (TargetRefused, AttemptTimeout, httpx.TransportError)


def network_outcome(exc: Exception) -> Outcome:
    """What a request that got no answer (one of NETWORK_ERRORS) means for the delivery."""
    if isinstance(exc, TargetRefused):
        return fail(f"Adresse refusée : {exc}")
    if isinstance(exc, (AttemptTimeout, httpx.TimeoutException)):
        return retry("Délai dépassé : l'outil n'a pas répondu à temps.")
    return retry(f"Erreur réseau : {exc or type(exc).__name__}")


def deliver(cfg, delivery: Delivery, doc: Document, conn: Connection, lease) -> Outcome:
    """One attempt at an http delivery; ``lease`` is extended once the body is signed."""
    try:
        check_url(conn.url, allow_private=cfg.allow_private_targets, resolve=False)
    except TargetRefused as exc:
        return fail(f"Adresse refusée : {exc}")
    options = effective_options(conn)
    try:
        body = http_body(delivery.id, payload_for(delivery, doc, options), options)
        headers = signed_headers(conn, delivery.id, body)
    except FileNotFoundError:
        return fail(FILE_MISSING)
    lease.extend()  # the clock of the attempt starts now, after the signing pass
    try:
        status, resp_headers, text = post(cfg, conn.url, headers, body)
    except FileNotFoundError:
        return fail(FILE_MISSING)
    except NETWORK_ERRORS as exc:
        return network_outcome(exc)
    return classify(status, resp_headers, text)
