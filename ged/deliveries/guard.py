"""The outbound-address guard: ged sends only to public addresses.

``check_url`` judges a connection's URL when it is saved and before each attempt;
``GuardedBackend`` checks again, at connection time, every address a host name
resolves to, so a DNS answer that changes in between (rebinding) gains nothing.
GED_ALLOW_PRIVATE_TARGETS=1 (on-premises tools) lifts both.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpcore

from .. import runtime


class TargetRefused(Exception):
    """A URL ged will not send to (scheme, credentials, or a non-public address)."""

    code = "target_not_allowed"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


def is_public_address(value: str) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local,
    shared, reserved, multicast, or an IPv6 wrapper around one of those)."""
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return is_public_address(str(embedded))
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64: the IPv4 address inside
            return is_public_address(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    if any(ip in net for net in _NOT_PUBLIC):
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


# Ranges some Python versions' tables count as global although they are not publicly
# routable: 192.0.0.0/24 (IETF protocol assignments; 192.0.0.192 is a cloud metadata
# address) is only partly listed before Python 3.12.4.
_NOT_PUBLIC = (ipaddress.ip_network("192.0.0.0/24"),)


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _refuse_private(host: str, addresses: list[str]) -> None:
    refused = [a for a in addresses if not is_public_address(a)]
    if refused or not addresses:
        raise TargetRefused(f"{host} resolves to a private or reserved address "
                            f"({', '.join(refused) or 'none'}); ged only sends to public addresses.")


def check_url(url: str, *, allow_private: bool | None = None, resolve: bool = True) -> str:
    """Check a connection URL; returns it, or raises TargetRefused with a clear reason.

    By default only ``https`` to hosts whose every address is public;
    GED_ALLOW_PRIVATE_TARGETS=1 also allows plain ``http`` and private addresses."""
    if allow_private is None:
        allow_private = runtime.config().allow_private_targets
    if len(url) > 2000:
        raise TargetRefused("The URL is too long (2000 characters at most).", "invalid_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("The URL is not valid.", "invalid_url") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise TargetRefused("The URL must start with https://"
                            + ("" if allow_private else " (plain http is refused)") + ".",
                            "invalid_url")
    if not parts.hostname:
        raise TargetRefused("The URL has no host name.", "invalid_url")
    if parts.username or parts.password:
        raise TargetRefused("Put credentials in the connection's headers option, not in the URL.",
                            "invalid_url")
    if any(c in url for c in "\r\n\t\0 "):
        raise TargetRefused("The URL contains spaces or control characters.", "invalid_url")
    if allow_private or not resolve:
        return url
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = _resolve(parts.hostname, port)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"The host name {parts.hostname!r} does not resolve.",
                            "unresolvable_host") from None
    _refuse_private(parts.hostname, addresses)
    return url


class GuardedBackend(httpcore.SyncBackend):
    """Connects only to checked addresses: the name is resolved here, every address
    checked, and the socket opened to the checked address itself, so a DNS answer
    that changes between the check and the connection (rebinding) gains nothing."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = _resolve(host, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from None
        if not self.allow_private:
            _refuse_private(host, addresses)
        last: Exception = httpcore.ConnectError(f"{host}: no address")
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last
