"""Claims are fenced: a batch in hand keeps its lease, and a claim that lost its rows to
another dispatcher neither sends them nor writes their outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from engine.clock import SystemClock
from engine.store import outbox
from engine.store.outbox import Recorded
from tests.channels.fixtures import ANY_HOUR
from tests.channels.peers import PushService


def _queued_pushes(shop_factory, push: PushService, count: int):
    shop = shop_factory(
        ANY_HOUR, start=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
    for index in range(count):
        shop.subscribe_browser(f"s{index:02d}", push, f"s{index:02d}")
        shop.event(f"s{index:02d}", "subscribed", channels=["push"])
    shop.advance(minutes=10)  # the welcome pushes are due (in real time too)
    shop.dispatcher.clock = SystemClock()
    assert shop.dispatcher.push is not None
    shop.dispatcher.push.concurrency = 1  # one at a time: the batch takes a while
    return shop


def _rows(shop) -> list[tuple[str, str | None]]:
    with shop.database.transaction() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(
            "SELECT status, claimed_by FROM dispatches ORDER BY id")]


def test_only_the_claim_holding_a_row_renews_it_or_writes_its_outcome(
        shop_factory, push_service: PushService) -> None:
    shop = shop_factory()
    shop.subscribe_browser("anna", push_service, "laptop")
    shop.event("anna", "subscribed", channels=["push"])
    shop.advance(minutes=10)
    now = shop.clock.now()
    with shop.database.transaction() as connection:
        first = outbox.claim(connection, now, now + timedelta(minutes=2), 10, ["push"], "a")
    assert len(first) == 1
    later = now + timedelta(minutes=2)  # the lease of "a" has ended: "b" takes the row over
    with shop.database.transaction() as connection:
        second = outbox.claim(connection, later, later + timedelta(minutes=2), 10, ["push"], "b")
    assert [item.id for item in second] == [first[0].id]
    row = first[0].id
    with shop.database.transaction() as connection:
        outbox.record(connection, shop.dispatcher.writer,
                      [Recorded(row, "failed", None, 400, "late answer", later)], "a")
        assert outbox.renew(connection, [row], "a", later + timedelta(hours=1)) == set()
        outbox.release(connection, [row], "a", later)
    assert _rows(shop) == [("sending", "b")]  # untouched by "a"
    with shop.database.transaction() as connection:
        assert outbox.renew(connection, [row], "b", later + timedelta(minutes=3)) == {row}
        outbox.record(connection, shop.dispatcher.writer,
                      [Recorded(row, "delivered", None, 201, None, later)], "b")
    assert _rows(shop) == [("delivered", None)]


def test_a_batch_that_outlasts_its_lease_is_renewed_and_not_taken_over(
        shop_factory) -> None:
    push = PushService(tls=None)
    push.delay = 0.2
    try:
        shop = _queued_pushes(shop_factory, push, 16)
        # The batch needs about 3.2 s. Renewals come every 0.5 s, so a renewal may be up to
        # 1 s late (this loop also runs the rival's queries; the suite runs in parallel)
        # before a row is lost: with a 0.6 s lease, a late one let the rival in.
        shop.dispatcher.lease = timedelta(seconds=1.5)
        rival_got: list[int] = []

        async def rival(done: asyncio.Event) -> None:
            while not done.is_set():
                await asyncio.sleep(0.05)
                now = datetime.now(UTC)
                with shop.database.transaction() as connection:
                    rival_got.extend(item.id for item in outbox.claim(
                        connection, now, now + timedelta(minutes=1), 100, ["push"], "rival"))

        async def both() -> int:
            done = asyncio.Event()
            watching = asyncio.create_task(rival(done))
            try:
                return (await shop.dispatcher.dispatch_once()).claimed
            finally:
                done.set()
                await watching
                await shop.dispatcher.close()

        assert asyncio.run(both()) == 16
        assert rival_got == []
        assert _rows(shop) == [("delivered", None)] * 16
        assert sorted(r.browser for r in push.received) == [f"s{i:02d}" for i in range(16)]
    finally:
        push.stop()


def test_rows_taken_over_are_neither_sent_nor_recorded_by_the_claim_that_lost_them(
        shop_factory) -> None:
    push = PushService(tls=None)
    push.delay = 0.2
    try:
        shop = _queued_pushes(shop_factory, push, 10)
        shop.dispatcher.lease = timedelta(seconds=0.6)  # renewed every 0.2 s

        async def steal() -> None:
            await asyncio.sleep(0.3)  # as if the lease had ended and another claim took over
            with shop.database.transaction() as connection:
                connection.exec_driver_sql(
                    "UPDATE dispatches SET claimed_by = 'thief' WHERE status = 'sending'")

        async def both() -> None:
            stealing = asyncio.create_task(steal())
            try:
                await shop.dispatcher.dispatch_once()
            finally:
                await stealing
                await shop.dispatcher.close()

        asyncio.run(both())
        sent = len(push.received)
        assert 1 <= sent <= 5  # the sends started before the next renewal saw the loss
        statuses = _rows(shop)
        assert statuses.count(("sending", "thief")) == 10 - statuses.count(("delivered", None))
        assert statuses.count(("delivered", None)) <= 1  # only a group written before the theft
    finally:
        push.stop()
