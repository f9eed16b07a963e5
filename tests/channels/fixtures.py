"""Loopback TLS and protocol peers, shared by the channel and service tests."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme

from tests.channels.peers import PushService, SmtpServer, WebhookReceiver

SECRET = b"test-secret-for-tokens-and-hooks"
"""Signs the test tokens and webhooks."""

ANY_HOUR = """
workflow welcome {
  entry on subscribed
  stage first {
    after 10 minutes: send push welcome
  }
}

message welcome push {
  title "Hi {{ subscriber.id }}!"
  body "Thanks for subscribing."
  url "https://shop.example/bestsellers"
}
"""
"""A welcome push with no quiet hours, for tests whose dispatcher runs on the real clock: the
jewelry workflow's quiet hours would hold their pushes back at night."""


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The throw-away CA as a file, for libcurl (the push sender)."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def push_service(server_tls: ssl.SSLContext) -> Iterator[PushService]:
    service = PushService(server_tls)
    yield service
    service.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(SECRET)
    yield receiver
    receiver.stop()


