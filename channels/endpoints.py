"""Push endpoints come from browsers, so they are untrusted URLs (SSRF guard, SPEC §4).

An endpoint must be `https` on the default port, without user info, and must not lead to a
private, loopback, link-local (cloud metadata), carrier-grade NAT, unique-local, multicast or
reserved address — unless the operator allows its host (`NURTURE_PUSH_ALLOW_HOSTS`: names or
addresses, optionally with a port; an allowed host may also use plain `http`). The check runs
when a subscription is registered and again for every connection: the sender's resolver only
returns addresses that pass, so a name that resolves to 127.0.0.1 later is refused too.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_ENDPOINT = 2048
CGNAT = ipaddress.ip_network("100.64.0.0/10")


class EndpointError(ValueError):
    """A push endpoint that is refused; the message says why."""


@dataclass(frozen=True, slots=True)
class PushEndpointPolicy:
    allowed: frozenset[str] = frozenset()
    """`host` or `host:port` entries (`[address]:port` for IPv6), as `allowed_host` writes."""

    @classmethod
    def from_hosts(cls, hosts: Iterable[str]) -> PushEndpointPolicy:
        return cls(frozenset(allowed_host(host) for host in hosts if host.strip()))

    def is_allowed(self, host: str, port: int | None) -> bool:
        return host_allowed(self.allowed, host, port)

    def check_url(self, endpoint: str) -> tuple[str, int]:
        """The (host, port) of an acceptable endpoint URL; EndpointError otherwise."""
        if len(endpoint) > MAX_ENDPOINT:
            raise EndpointError(f"longer than {MAX_ENDPOINT} characters")
        try:
            parts = urlsplit(endpoint)
        except ValueError:  # an unclosed `[` of an IPv6 host
            raise EndpointError("not a valid URL (check its host)") from None
        host = parts.hostname
        if not host:
            raise EndpointError("not an absolute URL with a host")
        if parts.username is not None or parts.password is not None:
            raise EndpointError("must not contain user information")
        try:
            port = parts.port
        except ValueError:
            raise EndpointError("has an invalid port") from None
        allowed = self.is_allowed(host, port)
        if parts.scheme != "https" and not (allowed and parts.scheme == "http"):
            raise EndpointError("must use https")
        if not allowed and port not in (None, 443):
            raise EndpointError("must use the default https port")
        default = 443 if parts.scheme == "https" else 80
        return host, port or default

    def check_address(self, host: str, port: int, address: str) -> None:
        if self.is_allowed(host, port) or self.is_allowed(address, port):
            return
        if not is_public(address):
            raise EndpointError(f"{host} resolves to a non-public address ({address})")

    def check_resolved(self, endpoint: str) -> None:
        """Resolve now and refuse if any address is not public (at registration time)."""
        host, port = self.check_url(endpoint)
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except OSError as problem:
            raise EndpointError(f"{host} does not resolve ({problem})") from None
        for info in infos:
            self.check_address(host, port, str(info[4][0]))


def host_allowed(allowed: frozenset[str], host: str, port: int | None) -> bool:
    """Whether an operator's allow-list (entries as `allowed_host` writes them) names this
    host, alone or with this port."""
    host = host.lower().strip("[]")
    host = _address(host) or host
    return host in allowed or (port is not None and _with_port(host, port) in allowed)


@dataclass(frozen=True, slots=True)
class WebhookAddressPolicy:
    """Where webhooks may connect. Their URLs are written by the workflows' authors, but a
    template may take the host from a subscriber's data (`url "{{ subscriber.crm }}"`), and a
    webhook's answer is kept where the marketer reads it (the timeline, the funnel). So this
    machine's own services (loopback: the database, the API) and link-local addresses (cloud
    metadata) are refused, unless the operator allows the host (`NURTURE_WEBHOOK_ALLOW_HOSTS`);
    private networks stay reachable, for a CRM inside the company. Checked at every
    connection, for every address a name resolves to."""

    allowed: frozenset[str] = frozenset()

    @classmethod
    def from_hosts(cls, hosts: Iterable[str]) -> WebhookAddressPolicy:
        return cls(frozenset(allowed_host(host) for host in hosts if host.strip()))

    def refusal(self, host: str, port: int, address: str) -> str | None:
        """Why a connection to `address` (for `host`) is refused; None when it may go."""
        if host_allowed(self.allowed, host, port) or host_allowed(self.allowed, address, port):
            return None
        if not off_limits(address):
            return None
        named = "" if _address(host.strip("[]")) else f"{host} resolves to "
        return (f"{named}{address}, an address of this machine or its cloud (loopback, "
                "link-local), which webhooks may not reach; allow the host with "
                "NURTURE_WEBHOOK_ALLOW_HOSTS if it is meant")


def off_limits(address: str) -> bool:
    """Loopback, link-local (cloud metadata), unspecified, multicast or reserved."""
    ip = _ip(address)
    return ip is None or (ip.is_loopback or ip.is_link_local or ip.is_unspecified
                          or ip.is_multicast or ip.is_reserved)


HOST_NAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
                       r"(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?\Z")


def allowed_host(entry: str) -> str:
    """One `NURTURE_PUSH_ALLOW_HOSTS` entry as the policy compares it: `host` or `host:port`,
    lower-case, an IP address in its one written form (`[0:0::1]:8443` is `[::1]:8443`).

    An entry that can never match (a URL, a path, a bad port) is refused: silently allowing
    nothing would leave the operator wondering why their push service is refused."""
    text = entry.strip().lower()
    if "/" in text:
        raise EndpointError(f"{entry.strip()!r}: a host, not a URL (such as push.example.com "
                            "or 127.0.0.1:8443)")
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            host = ""
        port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise EndpointError(f"{entry.strip()!r}: the port is not a number from 1 to 65535")
    address = _address(host)
    if address is None and not HOST_NAME.match(host):
        raise EndpointError(f"{entry.strip()!r} is not a host name or address, optionally "
                            "with a port (such as push.example.com or 127.0.0.1:8443)")
    host = address or host
    return _with_port(host, int(port)) if port else host


def _with_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _address(text: str) -> str | None:
    """An IP address in its one written form (`2001:db8:0::1` is `2001:db8::1`), or None."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address as the network sees it (an IPv4-mapped IPv6 address is its IPv4 one,
    a zone index dropped), or None for text that is no address."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_public(address: str) -> bool:
    ip = _ip(address)
    return ip is not None and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or getattr(ip, "is_site_local", False)
        or (isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT))
