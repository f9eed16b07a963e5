"""A dispatcher killed with SIGKILL in the middle of a batch loses nothing, and what it had
recorded as delivered is not sent again (only sends in flight at the kill may repeat)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from channels.tokens import Signer
from engine.store import outbox, push_subscriptions
from tests.channels.conftest import SECRET
from tests.channels.fixtures import ANY_HOUR
from tests.channels.peers import PushService
from tests.databases import url_of

SUBSCRIBERS = 600


def run_dispatcher(database_url: str, push: PushService, pem: str, *args: str
                   ) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "NURTURE_VAPID_PRIVATE_KEY": pem,
                   "NURTURE_SECRET": SECRET.decode(),
                   "NURTURE_PUSH_ALLOW_HOSTS": f"127.0.0.1:{push.port}",
                   "NURTURE_VAPID_SUBJECT": "mailto:ops@shop.example"}
    nurture = str(Path(sys.executable).with_name("nurture"))
    return subprocess.Popen([nurture, "dispatch", "--db", database_url, "--lease", "2", *args],
                            env=environment, stderr=subprocess.DEVNULL)


def receipts(push: PushService) -> Counter[str]:
    return Counter(Signer(SECRET).verify("push", p["token"]) for p in push.payloads())


def test_a_killed_dispatcher_resumes_without_loss_or_second_sends(shop_factory,
                                                                  tmp_path: Path) -> None:
    push = PushService(tls=None)  # plain http: the test allows its host explicitly
    push.delay = 0.05
    try:
        shop = shop_factory(
            ANY_HOUR, start=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
        everyone = [f"s{index:03d}" for index in range(SUBSCRIBERS)]
        with shop.database.transaction() as connection:
            for who in everyone:
                browser = push.browser(who)
                push_subscriptions.add(connection, who, push.endpoint(who), browser.p256dh,
                                       browser.auth_secret, shop.clock.now())
        shop.event_of_each(everyone, "subscribed", channels=["push"])
        shop.advance(minutes=10)  # every welcome push is decided: 600 dispatches queued
        url = url_of(shop.database)
        pem = shop.vapid.pem().decode()

        first = run_dispatcher(url, push, pem)
        deadline = time.time() + 60
        while len(push.received) < 150 and time.time() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        with shop.database.transaction() as connection:
            recorded = set(connection.exec_driver_sql(
                "SELECT subscriber_id || '.' || delivery_seq FROM dispatches "
                "WHERE status = 'delivered'").scalars().all())
            statuses = outbox.by_status(connection)
        assert 0 < len(recorded) < SUBSCRIBERS, statuses
        assert statuses.get("sending", 0) > 0  # it died holding a leased batch

        time.sleep(2.5)  # the dead dispatcher's lease ends
        restarted_at = time.time()
        second = run_dispatcher(url, push, pem, "--once")
        assert second.wait(60) == 0
        with shop.database.transaction() as connection:
            assert outbox.by_status(connection) == {"delivered": SUBSCRIBERS}

        final = receipts(push)
        assert len(final) == SUBSCRIBERS  # nothing lost
        assert all(final[key] == 1 for key in recorded)  # nothing recorded was sent again
        # Before the restart only the killed dispatcher sent: what reached the service then
        # but was not recorded as delivered was in flight when it died.
        sent_by_first = {Signer(SECRET).verify("push", p.payload["token"])
                         for p in push.received if p.at < restarted_at}
        repeated = {key for key, count in final.items() if count > 1}
        assert repeated <= sent_by_first - recorded
        assert len(repeated) <= 64 + 16  # the sender's concurrency and one group of outcomes
        assert push.problems == []
    finally:
        push.stop()


def test_leases_and_attempts_after_a_crash(shop_factory, push_service: PushService) -> None:
    """In process: a claim that is never answered comes back when its lease ends."""
    shop = shop_factory()
    shop.subscribe_browser("anna", push_service, "laptop")
    shop.event("anna", "subscribed", channels=["push"])
    shop.advance(minutes=10)
    with shop.database.transaction() as connection:
        claimed = outbox.claim(connection, shop.clock.now(), shop.clock.now() +
                               timedelta(minutes=2), 100, ["push"], "dead-dispatcher")
    assert len(claimed) == 1  # ...and then this "dispatcher" dies
    assert shop.dispatch().claimed == 0  # leased: nobody else takes it
    shop.clock.advance_to(shop.clock.now() + timedelta(minutes=2))
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert shop.dispatches("anna")[0]["attempts"] == 2
    assert json.loads(json.dumps(push_service.payloads("laptop")[0]["title"])) == "Hi there!"
