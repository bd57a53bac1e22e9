"""Where a webhook may be sent: https to public addresses only, unless private URLs are allowed."""

import socket

import pytest

from core.netsafety import Target, UnsafeUrl, address_allowed, resolve_allowed, url_check, url_target


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104  (an address the check must refuse, not a bind)
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "192.0.2.1",
        "240.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address):
    assert not address_allowed(address, allow_private=False)
    assert address_allowed(address, allow_private=True)


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert address_allowed(address, allow_private=False)


@pytest.mark.parametrize(
    "url,problem",
    [
        ("http://93.184.215.14/hook", "must be https"),
        ("ftp://93.184.215.14/hook", "must be https"),
        ("/relative", "must be https"),
        ("https:///nohost", "no host"),
        ("https://user:pw@93.184.215.14/hook", "credentials"),
        ("https://93.184.215.14:99999/hook", "not a valid URL"),
    ],
)
def test_url_form(url, problem):
    with pytest.raises(UnsafeUrl, match=problem):
        url_target(url, allow_private=False)


def test_http_only_when_private_urls_are_allowed():
    assert url_target("http://127.0.0.1:8080/h", allow_private=True) == Target("http", "127.0.0.1", 8080)
    assert url_target("https://[2606:4700::1]/h", allow_private=False) == Target("https", "2606:4700::1", 443)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest",
        "https://10.0.0.8/x",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://printer.local/x",
        "https://db.internal/x",
    ],
)
def test_storing_a_private_or_local_target_is_refused(url):
    with pytest.raises(UnsafeUrl):
        url_check(url, allow_private=False)
    url_check(url.replace("https", "http"), allow_private=True)


def test_a_public_literal_and_an_unresolvable_name_are_accepted_when_stored():
    url_check("https://93.184.215.14/hook", allow_private=False)
    url_check("https://hooks.invalid/orders", allow_private=False)  # checked again at every delivery


def test_every_resolved_address_must_be_public(monkeypatch):
    # given: a name that resolves to a public and a private address (DNS rebinding, split answers)
    answers = {"rebind.example": ["93.184.215.14", "127.0.0.1"], "fine.example": ["93.184.215.14", "1.1.1.1"]}
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]],
    )
    # then
    with pytest.raises(UnsafeUrl, match=r"127\.0\.0\.1"):
        resolve_allowed(Target("https", "rebind.example", 443), allow_private=False)
    assert resolve_allowed(Target("https", "fine.example", 443), allow_private=False) == ["1.1.1.1", "93.184.215.14"]
    with pytest.raises(UnsafeUrl):
        url_check("https://rebind.example/hook", allow_private=False)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 (RFC 6052) of 169.254.169.254, the cloud metadata service
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::a9fe:a9fe",  # a local-use NAT64 prefix (RFC 8215)
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "::a9fe:a9fe",  # IPv4-compatible (deprecated)
        "::ffff:0:a9fe:a9fe",  # IPv4-translated (SIIT)
    ],
)
def test_ipv6_forms_embedding_a_non_public_ipv4_address_are_refused(address):
    assert not address_allowed(address, allow_private=False)


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1"])
def test_ipv6_forms_embedding_a_public_ipv4_address_are_allowed(address):
    assert address_allowed(address, allow_private=False)


def test_a_webhook_url_with_a_nat64_literal_of_the_metadata_address_is_refused():
    with pytest.raises(UnsafeUrl):
        url_check("https://[64:ff9b::a9fe:a9fe]/hooks", allow_private=False)
