"""The client's address behind reverse proxies.

Behind a proxy every request comes from the proxy's address, so anything keyed on
``remote_addr`` (login throttling, the audit trail) would treat all users as one.
``TrustedProxies`` replaces REMOTE_ADDR by the client address that the proxies
report in X-Forwarded-For, but only when the connection comes from an address of
GED_TRUSTED_PROXIES, and only as far back as the chain of trusted hops goes: a
client cannot choose its address by sending the header itself. (Werkzeug's
ProxyFix trusts a fixed number of hops from whoever connects, which a client
reaching ged directly could spoof.)
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache


@lru_cache(maxsize=8)
def parse_networks(entries: tuple[str, ...]) -> tuple:
    """Addresses and CIDR ranges (``10.0.0.0/8``, ``::1``) as networks; ValueError
    names an entry that is neither."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"GED_TRUSTED_PROXIES: {entry!r} is not an address or "
                             "a CIDR range") from None
    return tuple(networks)


def _address(text: str):
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(peer: str, forwarded_for: list[str], trusted: tuple) -> str:
    """The client's address: ``peer`` itself unless it is a trusted proxy; then the
    nearest X-Forwarded-For hop that is not a trusted proxy."""
    def is_trusted(addr) -> bool:
        return addr is not None and any(addr in net for net in trusted)

    current = peer
    if not is_trusted(_address(peer)):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:  # garbage written by a trusted hop: stop at the last good one
            return current
        current = str(addr)
        if not is_trusted(addr):
            return current
    return current


class TrustedProxies:
    """WSGI middleware setting REMOTE_ADDR to the real client address (see above).
    The setting is read per request, so a test may change it on a running app."""

    def __init__(self, wsgi_app, cfg):
        self.wsgi_app = wsgi_app
        self.cfg = cfg

    def __call__(self, environ, start_response):
        entries = tuple(self.cfg.trusted_proxies)
        if entries:
            peer = environ.get("REMOTE_ADDR", "")
            header = environ.get("HTTP_X_FORWARDED_FOR")
            if header:
                environ["ged.proxy_peer"] = peer
                environ["REMOTE_ADDR"] = client_address(peer, [header],
                                                        parse_networks(entries))
        return self.wsgi_app(environ, start_response)
