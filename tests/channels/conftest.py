"""Fixtures: TLS for loopback, the protocol peers, and an engine with its dispatcher."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, select

from channels.email import SmtpSender
from channels.endpoints import PushEndpointPolicy, WebhookAddressPolicy
from channels.tokens import Signer
from channels.vapid import VapidKey
from channels.webhook import WebhookSender
from channels.webpush import WebPushSender
from dsl.loader import load_paths
from engine.clock import SystemClock, VirtualClock
from engine.dispatcher import Dispatcher, DispatchStats, Links
from engine.events import parse_event
from engine.processor import Engine
from engine.store import push_subscriptions, queries
from engine.store.database import Database, open_database
from engine.store.states import DELIVERIES, DISPATCHES
from tests.channels.fixtures import SECRET
from tests.channels.peers import PushService, SmtpServer

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday, 10:00 in Warsaw
LOOPBACK_HOOKS = WebhookAddressPolicy.from_hosts(["127.0.0.1"])
"""The tests' webhook receivers listen on this machine, which webhooks may reach only so."""


@dataclass
class Shop:
    """The engine (outbox on) and the dispatcher, on one database and one virtual clock."""

    engine: Engine
    dispatcher: Dispatcher
    database: Database
    clock: VirtualClock
    vapid: VapidKey
    seq: int = 0

    def event(self, subscriber: str, kind: str, **properties: object) -> None:
        self.seq += 1
        self.engine.ingest([parse_event({"subscriber": subscriber, "type": kind,
                                         "properties": properties}, self.seq,
                                        default_at=self.clock.now())])

    def import_events(self, *events: tuple[datetime, str, str, dict[str, object]]) -> None:
        """`(at, subscriber, type, properties)` dated in the past, as one batch: an import, or
        a client's queue sent again after an outage."""
        batch = []
        for at, subscriber, kind, properties in events:
            self.seq += 1
            batch.append(parse_event({"subscriber": subscriber, "type": kind,
                                      "at": at.isoformat(), "properties": properties},
                                     self.seq))
        self.engine.ingest(batch)

    def event_of_each(self, subscribers: list[str], kind: str, **properties: object) -> None:
        """The same event from each subscriber, at this instant, as one batch."""
        events = []
        for subscriber in subscribers:
            self.seq += 1
            events.append(parse_event({"subscriber": subscriber, "type": kind,
                                       "properties": properties}, self.seq,
                                      default_at=self.clock.now()))
        self.engine.ingest(events)

    def subscribe_browser(self, subscriber: str, push: PushService, name: str) -> None:
        browser = push.browser(name)
        with self.database.transaction() as connection:
            push_subscriptions.add(connection, subscriber, push.endpoint(name), browser.p256dh,
                                   browser.auth_secret, self.clock.now())

    def advance(self, **units: float) -> None:
        self.clock.advance_to(self.clock.now() + timedelta(**units))
        self.engine.tick()

    def dispatch(self) -> DispatchStats:
        return asyncio.run(self._drain())

    async def _drain(self) -> DispatchStats:
        try:
            return await self.dispatcher.drain()
        finally:
            await self.dispatcher.close()

    def dispatches(self, subscriber: str) -> list[dict[str, object]]:
        return self._rows(DISPATCHES, subscriber)

    def deliveries(self, subscriber: str) -> list[dict[str, object]]:
        return self._rows(DELIVERIES, subscriber)

    def _rows(self, table: Table, subscriber: str) -> list[dict[str, object]]:
        with self.database.transaction() as connection:
            key = queries.subscriber_key(connection, subscriber)
            rows = connection.execute(select(table).where(
                table.c.subscriber_id == key).order_by(table.c.id)).mappings().all()
        return [dict(row) for row in rows]


@pytest.fixture
def shop_factory(tmp_path: Path, ca_file: str, database_url: str):
    databases: list[Database] = []

    def build(flow: str | None = None, smtp: SmtpServer | None = None,
              push_timeout: float = 10.0, start: datetime = T0,
              late_limit: timedelta | None = None) -> Shop:
        if flow is None:
            paths = [str(Path(__file__).resolve().parents[2] / "workflows" / "jewelry.flow")]
        else:
            (tmp_path / "w.flow").write_text(flow, encoding="utf-8")
            paths = [str(tmp_path / "w.flow")]
        catalog = load_paths(paths).catalog
        assert catalog is not None
        database = open_database(database_url)
        databases.append(database)
        clock = VirtualClock(start)
        vapid = VapidKey.generate()
        links = Links(Signer(SECRET), "https://nurture.example")
        push = WebPushSender(vapid, "mailto:ops@shop.example",
                             PushEndpointPolicy.from_hosts(["127.0.0.1"]), SystemClock().now,
                             ca_file=ca_file, timeout=push_timeout)
        email = SmtpSender(f"smtp://127.0.0.1:{smtp.port}?starttls=no",
                           "Shop <news@shop.example>") if smtp else None
        dispatcher = Dispatcher(database, links, clock=clock, push=push, email=email,
                                webhook=WebhookSender(SECRET, policy=LOOPBACK_HOOKS))
        engine = Engine(catalog, database, clock=clock, late_limit=late_limit)
        return Shop(engine, dispatcher, database, clock, vapid)

    yield build
    for database in databases:
        database.dispose()


def warnings_at_start(settings: Any, caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the dispatcher an operator runs (`from_settings`) warns of as it starts."""
    import logging

    from engine.dispatcher import from_settings

    database = open_database(settings.db)
    try:
        with caplog.at_level(logging.WARNING, logger="nurture.dispatcher"):
            from_settings(settings, database)
    finally:
        database.dispose()
    return [r.getMessage() for r in caplog.records if r.name == "nurture.dispatcher"]
