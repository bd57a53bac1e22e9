"""Where the system may send an HTTP request on someone else's say-so (a client's webhook URL): https only,
never to a private, loopback, link-local or otherwise non-public address, unless `allow_private` (local
development and tests). Checked when the URL is stored and again, on every resolved address, right before
each request (a name that resolved to a public address yesterday may resolve to 127.0.0.1 today: DNS
rebinding); the request then connects to the address that was checked."""

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    """The URL may not be called: its scheme, its form, or an address its host resolves to."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (no brackets around an IPv6 literal)
    port: int


# IPv6 forms that carry an IPv4 address a translator or tunnel delivers to: the IPv4 address is the one
# checked. NAT64's well-known prefix (RFC 6052: 64:ff9b::a9fe:a9fe is 169.254.169.254) and 6to4 (RFC 3056).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Forms never used for a public web server, whose IPv4 part a local translator may deliver anywhere: a
# network's own NAT64 prefix (RFC 8215), IPv4-compatible (deprecated, RFC 4291) and IPv4-translated (SIIT).
_REFUSED_V6 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address (Teredo's 2001::/32 is not global anyway)
    return None


def address_allowed(address: str, *, allow_private: bool) -> bool:
    if allow_private:
        return True
    # An IPv6 zone id is not part of the address.
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _REFUSED_V6):
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
    # is_global is False for private, loopback, link-local, shared (100.64/10), reserved and documentation
    # ranges; multicast addresses can be "global" but are never a web server.
    return ip.is_global and not ip.is_multicast


def url_target(url: str, *, allow_private: bool) -> Target:
    """The URL's scheme, host and port, or UnsafeUrl for anything but an absolute https URL (http too
    with `allow_private`) without credentials in it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeUrl(f"the URL must be {' or '.join(allowed)}, not {parts.scheme or 'relative'!r}")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the URL must not carry credentials")
    if any(c.isspace() for c in url):
        raise UnsafeUrl("the URL must not contain whitespace")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def resolve_allowed(target: Target, *, allow_private: bool) -> list[str]:
    """Every address the host resolves to, all of them allowed, or UnsafeUrl (a socket.gaierror when the
    name does not resolve). One disallowed address refuses the lot: the connection could pick it."""
    literal = _literal(target.host)
    addresses = (
        [literal]
        if literal
        else sorted({str(info[4][0]) for info in socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)})
    )
    refused = [a for a in addresses if not address_allowed(a, allow_private=allow_private)]
    if refused or not addresses:
        raise UnsafeUrl(f"{target.host} resolves to a non-public address ({', '.join(refused) or 'none'})")
    return addresses


def url_check(url: str, *, allow_private: bool) -> Target:
    """The check when a URL is stored: its form, and its host's addresses when the name resolves now (a
    name that does not resolve yet is accepted; every delivery checks again)."""
    target = url_target(url, allow_private=allow_private)
    name = target.host.rstrip(".").lower()
    if not allow_private and (name == "localhost" or name.endswith((".localhost", ".local", ".internal"))):
        raise UnsafeUrl(f"{target.host} is not a public host")
    with contextlib.suppress(OSError):
        resolve_allowed(target, allow_private=allow_private)
    return target
