"""SSRF guard: which callback URLs and addresses relaybox may connect to.

Pure classification, no DNS: the caller resolves the host and passes the
addresses here, both when a callback URL is configured and again at connect
time (so a DNS answer that changes in between, "DNS rebinding", is caught),
and then connects to an address it checked.

`blocked_reason` names the class of a non-public address. IPv6 forms that
embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo
``2001::/32``) are judged by the IPv4 address they carry, so
``::ffff:127.0.0.1`` is as blocked as ``127.0.0.1``. Anything else the
`ipaddress` module does not consider globally reachable is blocked as
"reserved", so a range missing from the tables below fails closed.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Iterable

import idna

from relaybox.core.errors import BlockedAddress, InvalidCallbackURL

__all__ = [
    "MAX_URL_LENGTH",
    "blocked_reason",
    "check_callback_url",
    "check_resolved",
    "wire_target",
]

#: Longest callback URL accepted, in characters.
MAX_URL_LENGTH = 2048

_IPv4Net = ipaddress.IPv4Network
_IPv6Net = ipaddress.IPv6Network

# First match wins, so narrower ranges come before the ranges holding them.
_IPV4_CLASSES: tuple[tuple[_IPv4Net, str], ...] = tuple(
    (ipaddress.IPv4Network(net), name)
    for net, name in (
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "this-network"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("169.254.0.0/16", "link-local"),
        ("100.64.0.0/10", "CGNAT"),
        ("192.0.2.0/24", "documentation"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("198.18.0.0/15", "benchmarking"),
        ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
        ("192.88.99.0/24", "reserved"),  # deprecated 6to4 relay anycast
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_IPV6_CLASSES: tuple[tuple[_IPv6Net, str], ...] = tuple(
    (ipaddress.IPv6Network(net), name)
    for net, name in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("2001:db8::/32", "documentation"),
        ("2001:2::/48", "benchmarking"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
        ("100::/64", "reserved"),  # discard-only
        ("64:ff9b:1::/48", "reserved"),  # NAT64 local use: translation is site-defined
    )
)

_LOOPBACK = ("loopback", "IPv4-mapped loopback")

_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# A host name: letters, digits, hyphens, dots, underscores; non-ASCII for IDNs.
_HOSTNAME = re.compile(r"[A-Za-z0-9._\-\u0080-\U0010ffff]+")
_FORBIDDEN_IN_URL = re.compile(r"[\x00-\x20\x7f\\]")


def _ipv4_reason(ip: ipaddress.IPv4Address) -> str | None:
    for network, name in _IPV4_CLASSES:
        if ip in network:
            return name
    return None if ip.is_global else "reserved"


def _embedded_reason(kind: str, *embedded: ipaddress.IPv4Address) -> str | None:
    for ip in embedded:
        reason = _ipv4_reason(ip)
        if reason is not None:
            return f"{kind} {reason}"
    return None


def _ipv6_reason(ip: ipaddress.IPv6Address) -> str | None:
    for network, name in _IPV6_CLASSES:
        if ip in network:
            return name
    if ip.ipv4_mapped is not None:
        return _embedded_reason("IPv4-mapped", ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE:
        # Deprecated form; never a legitimate destination, whatever it embeds.
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        return _embedded_reason("IPv4-compatible", embedded) or "IPv4-compatible reserved"
    if ip in _NAT64:
        return _embedded_reason("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        return _embedded_reason("6to4", ip.sixtofour)
    if ip.teredo is not None:
        return _embedded_reason("Teredo", *ip.teredo)
    return None if ip.is_global else "reserved"


def blocked_reason(address: str) -> str | None:
    """The class of a non-public IP address, or None for a public one.

    `address` is an IPv4 or IPv6 literal (brackets and an IPv6 zone id are
    allowed). The class is a short phrase for messages: "loopback",
    "private", "link-local", "CGNAT", "documentation", "unspecified",
    "multicast", "broadcast", "benchmarking", "unique-local", "site-local",
    "this-network", "reserved", or an embedded IPv4 class prefixed with its
    form, e.g. "IPv4-mapped loopback" or "6to4 private".
    Raises ValueError if `address` is not an IP literal.
    """
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_reason(ip)
    return _ipv6_reason(ip)


def check_callback_url(url: str) -> tuple[str, int]:
    """Check a callback URL's form and return its (host, port).

    The scheme must be http or https, the host present and well formed, no
    user name or password, the port 1-65535 (default 80 or 443). The host is
    returned lower-cased, an IPv6 literal without brackets. Raises
    `InvalidCallbackURL` with a message saying what is wrong. Whether the
    host is allowed is `check_resolved`'s job, after the caller resolves it.
    (An internationalized host passes here; `wire_target` says whether it can
    be sent, so a stored configuration keeps parsing whatever is decided.)
    """
    if not url:
        raise InvalidCallbackURL("callback URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidCallbackURL(f"callback URL is longer than {MAX_URL_LENGTH} characters")
    if _FORBIDDEN_IN_URL.search(url):
        raise InvalidCallbackURL(
            "callback URL contains whitespace, a control character or a backslash"
        )
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise InvalidCallbackURL(f"callback URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        shown = parts.scheme or "none"
        raise InvalidCallbackURL(f"callback URL must use http or https, not {shown!r}")
    if "@" in parts.netloc:
        raise InvalidCallbackURL("callback URL must not contain a user name or password")
    host = parts.hostname
    if not host:
        raise InvalidCallbackURL("callback URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise InvalidCallbackURL("callback URL has an invalid port") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    elif not 1 <= port <= 65535:
        raise InvalidCallbackURL(f"callback URL port must be 1-65535, not {port}")
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidCallbackURL(
                f"callback URL host [{host}] is not a valid IPv6 address"
            ) from None
    elif not _HOSTNAME.fullmatch(host) or host.strip(".") == "":
        raise InvalidCallbackURL(f"callback URL host {host!r} is not a valid host name")
    return host, port


def wire_target(url: str) -> tuple[str, int]:
    """The (host, port) a callback URL connects to: `check_callback_url`'s, with an
    internationalized host IDNA-encoded as httpx sends it (``bücher.example`` as
    ``xn--bcher-kva.example``), so the name checked is the name resolved and verified.

    Raises `InvalidCallbackURL` as `check_callback_url` does, and for a host that has no
    IDNA form (``☃.example``).
    """
    host, port = check_callback_url(url)
    if host.isascii():
        return host, port
    try:
        return idna.encode(host).decode("ascii"), port
    except idna.IDNAError as exc:
        raise InvalidCallbackURL(
            f"callback URL host {host!r} is not a valid internationalized domain name: {exc}"
        ) from None


def check_resolved(host: str, addresses: Iterable[str], *, allow_loopback: bool = False) -> None:
    """Refuse `host` unless every address it resolved to is public (or, with
    `allow_loopback`, a loopback address: the sandbox's webhooks to the relaybox
    beside it on the same machine).

    Raises `BlockedAddress` for the first blocked address; its message names
    the host and the address's class but not the address, so a tenant learns
    nothing of the internal network from it. An address that is not an IP
    literal counts as blocked, and a host that resolved to nothing raises
    `InvalidCallbackURL`: the guard fails closed.
    """
    seen = False
    for address in addresses:
        seen = True
        try:
            reason = blocked_reason(address)
        except ValueError:
            reason = "not an IP address"
        if reason is not None and not (allow_loopback and reason in _LOOPBACK):
            raise BlockedAddress(host=host, address=address, reason=reason)
    if not seen:
        raise InvalidCallbackURL(f"callback URL host {host!r} did not resolve to any address")
