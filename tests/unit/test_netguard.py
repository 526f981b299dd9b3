"""SSRF guard: callback URL form, and the classification of resolved addresses."""

from __future__ import annotations

import pytest

from relaybox.core.errors import (
    CALLBACK_URL_FIELD,
    BlockedAddress,
    InvalidCallbackURL,
    InvalidInput,
    RelayboxError,
)
from relaybox.core.netguard import (
    MAX_URL_LENGTH,
    blocked_reason,
    check_callback_url,
    check_resolved,
    wire_target,
)


def _guard(url: str) -> tuple[str, int]:
    """What the caller does, for a URL whose host is a literal: parse, then check it."""
    host, port = check_callback_url(url)
    check_resolved(host, [host])
    return host, port


# -- URLs that are refused at the address check ------------------------------------


@pytest.mark.parametrize(
    ("url", "address", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1", "loopback"),
        ("http://127.8.9.10:8080/x", "127.8.9.10", "loopback"),
        ("http://10.0.0.1/", "10.0.0.1", "private"),
        ("http://172.16.5.4/", "172.16.5.4", "private"),
        ("http://192.168.1.1/", "192.168.1.1", "private"),
        ("http://[::1]/", "::1", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("http://[::ffff:10.1.2.3]/", "::ffff:10.1.2.3", "IPv4-mapped private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("http://100.64.1.1/", "100.64.1.1", "CGNAT"),
        ("http://0.0.0.0/", "0.0.0.0", "unspecified"),
        ("http://[::]/", "::", "unspecified"),
        ("http://[fe80::1]/", "fe80::1", "link-local"),
        ("https://[fd00::5]:8443/", "fd00::5", "unique-local"),
        ("http://224.0.0.1/", "224.0.0.1", "multicast"),
        ("http://192.0.2.10/", "192.0.2.10", "documentation"),
    ],
)
def test_blocked_urls(url: str, address: str, reason: str) -> None:
    with pytest.raises(BlockedAddress) as info:
        _guard(url)
    error = info.value
    assert error.address == address
    assert error.reason == reason
    assert error.host == address
    assert str(error) == (
        f"callback URL host {address!r} is a non-public address ({reason});"
        " only public addresses are allowed"
    )
    assert error.field == CALLBACK_URL_FIELD


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://93.184.216.34/", ("93.184.216.34", 80)),
        ("https://93.184.216.34/hook", ("93.184.216.34", 443)),
        ("https://[2606:4700::1111]/events", ("2606:4700::1111", 443)),
        ("http://[2606:4700::1111]:8080/", ("2606:4700::1111", 8080)),
        ("http://8.8.8.8:65535/", ("8.8.8.8", 65535)),
    ],
)
def test_public_addresses_are_allowed(url: str, expected: tuple[str, int]) -> None:
    assert _guard(url) == expected


# -- blocked_reason ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        # IPv4
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this-network"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.255.255.255", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("169.254.0.1", "link-local"),
        ("100.64.0.0", "CGNAT"),
        ("100.127.255.255", "CGNAT"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.200", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.8", "reserved"),
        # IPv6
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("[::1]", "loopback"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("febf::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fdff:ffff::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("2001:2::1", "benchmarking"),
        ("100::1", "reserved"),
        # IPv4 embedded in IPv6
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:7f00:1", "IPv4-mapped loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
        ("::ffff:100.64.0.1", "IPv4-mapped CGNAT"),
        ("::ffff:0.0.0.0", "IPv4-mapped unspecified"),
        ("::127.0.0.1", "IPv4-compatible loopback"),
        ("::10.0.0.1", "IPv4-compatible private"),
        ("::93.184.216.34", "IPv4-compatible reserved"),
        ("64:ff9b::127.0.0.1", "NAT64 loopback"),
        ("64:ff9b::a00:1", "NAT64 private"),
        ("64:ff9b:1::1", "reserved"),
        ("2002:7f00:1::", "6to4 loopback"),
        ("2002:a9fe:a9fe::1", "6to4 link-local"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo loopback"),  # client 127.0.0.1
        ("2001:0:c000:22d:8000:63bf:3fff:fdd2", "Teredo documentation"),  # server 192.0.2.45
    ],
)
def test_blocked_reason(address: str, reason: str) -> None:
    assert blocked_reason(address) == reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above CGNAT
        "172.15.255.255",
        "172.32.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "2606:4700::1111",
        "2a00:1450:4001:80b::200e",
        "[2606:4700::1111]",
        "::ffff:93.184.216.34",  # mapped public IPv4 is that public address
        "64:ff9b::93.184.216.34",  # NAT64 of a public address
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
        "2001:0:4136:e378:8000:63bf:a247:27dd",  # Teredo, public server and client
    ],
)
def test_public_addresses_have_no_reason(address: str) -> None:
    assert blocked_reason(address) is None


@pytest.mark.parametrize("text", ["", "example.com", "127.1", "0x7f000001", "1.2.3.4.5", "::g"])
def test_blocked_reason_refuses_non_literals(text: str) -> None:
    with pytest.raises(ValueError):
        blocked_reason(text)


# -- check_callback_url -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/", ("example.com", 80)),
        ("https://example.com", ("example.com", 443)),
        ("HTTPS://Hooks.Example.COM:8443/a/b?c=d#e", ("hooks.example.com", 8443)),
        ("http://example.com:/", ("example.com", 80)),
        ("http://my_host.internal-name.test/", ("my_host.internal-name.test", 80)),
        ("https://bücher.example/", ("bücher.example", 443)),
        ("http://127.1/", ("127.1", 80)),  # the resolver, then check_resolved, decide
        ("http://[::ffff:127.0.0.1]:81/", ("::ffff:127.0.0.1", 81)),
    ],
)
def test_check_callback_url_returns_host_and_port(url: str, expected: tuple[str, int]) -> None:
    assert check_callback_url(url) == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/file", "http or https, not 'ftp'"),
        ("file:///etc/passwd", "http or https, not 'file'"),
        ("gopher://example.com/", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("example.com/events", "http or https, not 'none'"),
        ("//example.com/events", "http or https"),
        ("", "empty"),
        ("http://user:pw@x/", "user name or password"),
        ("http://user@example.com/", "user name or password"),
        ("http://@example.com/", "user name or password"),
        ("http://example.com@127.0.0.1/", "user name or password"),
        ("http:///events", "no host"),
        ("http://", "no host"),
        ("http://:80/", "no host"),
        ("http://example.com:0/", "port"),
        ("http://example.com:65536/", "port"),
        ("http://example.com:-1/", "port"),
        ("http://example.com:http/", "port"),
        ("http://[::1/", "malformed"),
        ("http://[example.com]/", "IPv6"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com/\nHost: evil", "whitespace"),
        ("http://example.com\\@evil.com/", "backslash"),
        ("http://exa%2fmple.com/", "host name"),
        ("http://exa<mple.com/", "host name"),
        ("http://.../", "host name"),
        ("http://example.com/" + "a" * MAX_URL_LENGTH, "longer than"),
    ],
)
def test_check_callback_url_refuses(url: str, words: str) -> None:
    with pytest.raises(InvalidCallbackURL) as info:
        check_callback_url(url)
    assert words in str(info.value)
    assert info.value.field == CALLBACK_URL_FIELD
    assert not isinstance(info.value, BlockedAddress)


# -- wire_target ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/", ("example.com", 443)),
        ("http://[::1]:8080/", ("::1", 8080)),
        # Internationalized names as httpx sends them (IDNA 2008), so the name checked at
        # configuration is the one resolved and verified at delivery.
        ("https://bücher.example/", ("xn--bcher-kva.example", 443)),
        ("https://BÜCHER.example:8443/", ("xn--bcher-kva.example", 8443)),
        ("https://faß.de/", ("xn--fa-hia.de", 443)),
        ("https://xn--bcher-kva.example/", ("xn--bcher-kva.example", 443)),
    ],
)
def test_wire_target_encodes_internationalized_hosts(url: str, expected: tuple[str, int]) -> None:
    assert wire_target(url) == expected


@pytest.mark.parametrize("url", ["http://☃.example/", "https://bü..cher.example/"])
def test_wire_target_refuses_hosts_without_an_idna_form(url: str) -> None:
    with pytest.raises(InvalidCallbackURL, match="not a valid internationalized domain name"):
        wire_target(url)
    check_callback_url(url)  # a stored configuration with it still parses


def test_wire_target_checks_the_form_first() -> None:
    with pytest.raises(InvalidCallbackURL, match="http or https"):
        wire_target("ftp://bücher.example/")


# -- check_resolved ------------------------------------------------------------------


def test_check_resolved_allows_all_public() -> None:
    check_resolved("example.com", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])


def test_check_resolved_blocks_when_any_address_is_blocked() -> None:
    with pytest.raises(BlockedAddress) as info:
        check_resolved("rebind.example", ["93.184.216.34", "10.0.0.7", "127.0.0.1"])
    error = info.value
    assert (error.host, error.address, error.reason) == ("rebind.example", "10.0.0.7", "private")
    # Shown to tenants: the class of the address, never the internal address itself.
    assert str(error) == (
        "callback URL host 'rebind.example' resolves to a non-public address (private);"
        " only public addresses are allowed"
    )


def test_check_resolved_may_allow_loopback_and_nothing_else_private() -> None:
    """The sandbox on loopback sends its webhooks to the relaybox beside it, nowhere else."""
    check_resolved("localhost", ["127.0.0.1", "::1", "::ffff:127.0.0.1"], allow_loopback=True)
    check_resolved("example.com", ["93.184.216.34"], allow_loopback=True)
    for address in ("10.0.0.7", "169.254.169.254", "::ffff:10.0.0.7", "0.0.0.0", "fe80::1"):
        with pytest.raises(BlockedAddress):
            check_resolved("h", ["127.0.0.1", address], allow_loopback=True)
    with pytest.raises(BlockedAddress):
        check_resolved("localhost", ["127.0.0.1"])


def test_check_resolved_accepts_any_iterable() -> None:
    with pytest.raises(BlockedAddress):
        check_resolved("h", (a for a in ["8.8.8.8", "fe80::1"]))


def test_check_resolved_fails_closed_on_a_non_address() -> None:
    with pytest.raises(BlockedAddress) as info:
        check_resolved("h", ["8.8.8.8", "not-an-ip"])
    assert info.value.reason == "not an IP address"


def test_check_resolved_fails_closed_on_no_address() -> None:
    with pytest.raises(InvalidCallbackURL, match="did not resolve") as info:
        check_resolved("nowhere.example", [])
    assert not isinstance(info.value, BlockedAddress)


# -- the exception tree ----------------------------------------------------------------


def test_exception_tree() -> None:
    error = BlockedAddress(host="h", address="::1", reason="loopback")
    assert isinstance(error, InvalidCallbackURL)
    assert isinstance(error, InvalidInput)
    assert isinstance(error, RelayboxError)
    assert isinstance(error, ValueError)
    assert error.message == str(error)
    assert InvalidInput("bad", field="name").field == "name"
    assert InvalidInput("bad").field is None
    assert InvalidCallbackURL("bad").field == CALLBACK_URL_FIELD
