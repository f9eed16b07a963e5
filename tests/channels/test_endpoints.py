"""The SSRF guard on push endpoints (SPEC §4): at registration and on every connection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from channels.endpoints import EndpointError, PushEndpointPolicy, is_public
from channels.vapid import VapidKey
from channels.webpush import PushJob, WebPushSender
from tests.channels.peers import Browser

STRICT = PushEndpointPolicy.from_hosts([])


@pytest.mark.parametrize("endpoint", [
    "https://fcm.googleapis.com/fcm/send/abc",
    "https://updates.push.services.mozilla.com/wpush/v2/abc",
    "https://web.push.apple.com/QGuQyavXut",
    "https://push.example:443/x",
])
def test_public_https_endpoints_pass_the_url_check(endpoint: str) -> None:
    STRICT.check_url(endpoint)


@pytest.mark.parametrize(("endpoint", "reason"), [
    ("http://fcm.googleapis.com/fcm/send/abc", "must use https"),
    ("https://push.example:8443/x", "default https port"),
    ("https://user:pw@push.example/x", "user information"),
    ("https:///x", "host"),
    ("ftp://push.example/x", "must use https"),
    ("https://push.example/" + "a" * 2100, "longer than"),
    ("https://[2001:db8::1/x", "not a valid URL"),
    ("https://push.example:99999/x", "invalid port"),
])
def test_bad_endpoint_urls_are_refused(endpoint: str, reason: str) -> None:
    with pytest.raises(EndpointError, match=reason):
        STRICT.check_url(endpoint)


@pytest.mark.parametrize("endpoint", [
    "https://127.0.0.1/push", "https://169.254.169.254/latest/meta-data",
    "https://10.1.2.3/push", "https://[::1]/push", "https://localhost/push",
    "https://100.64.0.1/push", "https://[fd00::1]/push", "https://0.0.0.0/push",
])
def test_endpoints_leading_to_non_public_addresses_are_refused(endpoint: str) -> None:
    with pytest.raises(EndpointError, match="non-public"):
        STRICT.check_resolved(endpoint)


def test_an_allowed_host_may_be_local_and_use_http() -> None:
    policy = PushEndpointPolicy.from_hosts(["127.0.0.1:8443", "push.test"])
    policy.check_resolved("http://127.0.0.1:8443/push/a")
    assert policy.check_url("http://push.test:9000/x") == ("push.test", 9000)
    with pytest.raises(EndpointError):
        policy.check_resolved("http://127.0.0.1:9999/push/a")  # another port is not allowed


def test_allowed_hosts_are_written_as_operators_write_them() -> None:
    """Case, spaces and an IPv6 address in brackets (with or without a port) all match."""
    policy = PushEndpointPolicy.from_hosts([" Push.Test ", "[::1]:8443", "[fd00:0:0::5]"])
    assert policy.allowed == {"push.test", "[::1]:8443", "fd00::5"}
    assert not policy.is_allowed("::1:8443", None)  # an address of its own, not ::1 and a port
    policy.check_resolved("http://[::1]:8443/push/a")
    policy.check_address("fd00:0::5", 443, "fd00::5")
    assert policy.check_url("http://[FD00::0:5]/push/a") == ("fd00::0:5", 80)
    assert policy.check_url("https://PUSH.test/x") == ("push.test", 443)
    with pytest.raises(EndpointError):
        policy.check_resolved("http://[::1]:9999/push/a")


@pytest.mark.parametrize(("entry", "reason"), [
    ("https://push.example.com", "a host, not a URL"),
    ("push.example.com/v1", "a host, not a URL"),
    ("push.example.com:push", "the port is not a number from 1 to 65535"),
    ("127.0.0.1:0", "the port is not a number"),
    ("[::1]:70000", "the port is not a number"),
    ("::::", "is not a host name or address"),
    ("push example", "is not a host name or address"),
])
def test_an_allowed_host_that_could_never_match_is_refused(entry: str, reason: str) -> None:
    with pytest.raises(EndpointError, match=reason):
        PushEndpointPolicy.from_hosts([entry])


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2a00:1450:4001::200e", True), ("192.168.1.1", False),
    ("172.16.0.1", False), ("::ffff:127.0.0.1", False), ("224.0.0.1", False),
    ("not an address", False),
])
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_a_push_to_a_name_that_resolves_to_loopback_fails_without_connecting() -> None:
    browser = Browser.new("b")

    async def send() -> Any:
        sender = WebPushSender(VapidKey.generate(), "mailto:ops@shop.example", STRICT,
                               lambda: datetime.now(UTC))
        try:
            return await sender.send(PushJob("1.1", "https://localhost/push/b",
                                             browser.p256dh, browser.auth_secret, b"{}",
                                             60, "normal", "t" * 24))
        finally:
            await sender.close()

    outcome = asyncio.run(send())
    assert outcome.kind == "failed"
    assert "not allowed" in outcome.detail and "127.0.0.1" in outcome.detail
