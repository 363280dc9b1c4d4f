"""Where webhooks may go: public addresses only, judged on the URL at registration and on the
resolved address at every connection (one lookup, then a connection to that very address).

`ipaddress`'s `is_global` is the base; it misses multicast (224.0.0.0/4 is "global"), the
translation prefixes that carry an IPv4 address inside an IPv6 one (NAT64 64:ff9b::/96, 6to4
2002::/16, IPv4-compatible ::/96; IPv4-mapped ::ffff:0:0/96 is caught but not explained), and
some newer or deprecated IANA special-purpose blocks. The tables below close those gaps, and an
embedded IPv4 address is checked like any other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import typing
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IANA IPv4 special-purpose blocks that are not globally reachable (and multicast, reserved).
_REFUSED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
# IPv6 blocks refused outright (the translation prefixes are handled by `_embedded_ipv4`).
_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "64:ff9b:1::/48",  # local-use NAT64: where the IPv4 part sits is a local choice
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
        "2001:db8::/32",
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

# Labels that are all decimal, octal or hex numbers: `127.1`, `0x7f.1`, `017700000001`,
# `2130706433` all reach 127.0.0.1 through common resolvers (inet_aton) although they are not
# canonical IP literals.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*$")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address a translation form carries, with the form's name."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE:  # also :: and ::1, which become 0.0.0.0 and 0.0.0.1
        return "IPv4-compatible", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why a webhook may not be delivered to `address`, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            form, inner = embedded
            reason = address_refusal(inner)
            return f"{form} form of {inner}, which {reason}" if reason else None
        if any(address in net for net in _REFUSED_V6) or not address.is_global:
            return "is not a public address"
        return None
    if any(address in net for net in _REFUSED_V4) or not address.is_global:
        return "is not a public address"
    return None


def url_refusal(url: str) -> str | None:
    """Why `url` may not be registered to receive deliveries, or None when it may.

    The URL as written: https, no localhost, no IP literal that `address_refusal` refuses, no
    numeric host form. The name's addresses are checked again at each delivery."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        return "must use https"
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "must name a host"
    if host == "localhost" or host.endswith(".localhost"):
        return "must not name localhost"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if _NUMERIC_HOST.match(host):
            return "must not name an IP address in a non-canonical numeric form"
        return None
    reason = address_refusal(address)
    return f"must not name {address}, which {reason}" if reason else None


class TargetRefusedError(Exception):
    """A delivery's host resolved to an address webhooks may not reach; never retried."""


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""(host, port) -> the addresses to connect to, as text."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (getaddrinfo), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves each host once, refuses the connection when
    any of its addresses is not public (unless `allow_private`), and connects to the checked
    address itself, so no second lookup can answer differently (DNS rebinding).

    httpcore still starts TLS with the URL's host name, so SNI and certificate verification,
    like the Host header, are for the name, not the address."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self.backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                found = await self.resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not found:
            raise httpcore.ConnectError(f"{host} has no address")
        if not self.allow_private:
            # All or nothing: a name with one internal address among public ones is either
            # misconfigured or a rebinding attempt, and its owner should hear of it.
            for text in found:
                address = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 zone
                if (reason := address_refusal(address)) is not None:
                    raise TargetRefusedError(f"{host} resolves to {address}, which {reason}")
        # The addresses in the resolver's order, within one connect timeout for them all.
        last_error: Exception = httpcore.ConnectError(f"cannot connect to {host}")
        for text in found:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host} timed out")
            try:
                return await self.backend.connect_tcp(
                    text, port, remaining, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefusedError("webhooks are not delivered over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


def guarded_transport(
    *, allow_private: bool, resolver: Resolver = system_resolver, **kwargs: typing.Any
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through `GuardedNetworkBackend`.

    `kwargs` are `httpx.AsyncHTTPTransport`'s. httpx does not expose httpcore's
    `network_backend` option, so the backend is set on the transport's connection pool."""
    transport = httpx.AsyncHTTPTransport(**kwargs)
    transport._pool._network_backend = GuardedNetworkBackend(
        allow_private=allow_private, resolver=resolver
    )
    return transport
