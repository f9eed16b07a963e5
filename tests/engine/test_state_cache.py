"""States kept between batches are used only while they are what the database holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dsl.loader import load_text
from engine.clock import VirtualClock
from engine.events import parse_event
from engine.processor import Engine
from engine.store import push_subscriptions, queries
from engine.store import states as store
from engine.store.database import Database, open_database

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
FLOW = """\
workflow w {
  score s { on click +1 }
  stage a {
    on enter: send push hi
    go to b when s >= 3
  }
  stage b { on enter: send push hi }
}
message hi push { title "Hi" }
"""


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = open_database(database_url)
    yield db
    db.dispose()


def engine(database: Database, **options: Any) -> Engine:
    catalog = load_text(FLOW, "w.flow").catalog
    assert catalog is not None
    return Engine(catalog, database, clock=VirtualClock(T0), **options)


def click(target: Engine, seq: int) -> None:
    target.ingest([parse_event({"subscriber": "ann", "type": "click"}, seq, default_at=T0)])


def score(database: Database) -> object:
    with database.transaction() as connection:
        key = queries.subscriber_key(connection, "ann")
        assert key is not None
        return queries.scores(connection, key)[("w", "s")]


def test_a_change_by_another_writer_is_never_overwritten(database: Database) -> None:
    first, second = engine(database), engine(database)
    first.ingest([parse_event({"subscriber": "ann", "type": "subscribed",
                               "properties": {"channels": ["push"]}}, 0, default_at=T0)])
    click(first, 1)
    click(first, 2)  # `first` now keeps ann's state (score 2)
    assert len(first.cache) == 1
    click(second, 3)  # another process: score 3, ann moves to b
    click(first, 4)   # must read ann again, not reuse its copy
    assert score(database) == 4
    assert first.cache.misses >= 1
    with database.transaction() as connection:
        key = queries.subscriber_key(connection, "ann")
        assert key is not None
        assert queries.stages(connection, key) == {"w": "b"}
        visits = queries.enrolments(connection, key)[0]["stages"]
        assert [visit["stage"] for visit in visits] == ["a", "b"]


def test_a_new_push_subscription_makes_the_kept_state_stale(database: Database) -> None:
    live = engine(database, push_needs_subscription=True)
    live.ingest([parse_event({"subscriber": "ann", "type": "subscribed",
                              "properties": {"channels": ["push"]}}, 1, default_at=T0)])
    with database.transaction() as connection:
        push_subscriptions.add(connection, "ann", "https://push.example/1", "k", "a", T0)
    for seq in (2, 3, 4):
        click(live, seq)  # moves to b, whose `hi` must now find the subscription
    with database.transaction() as connection:
        key = queries.subscriber_key(connection, "ann")
        assert key is not None
        assert [(d.stage, d.status, d.reason) for d in queries.deliveries(connection, key)] == [
            ("a", "skipped", "no_address"), ("b", "sent", None)]


def test_a_failed_batch_keeps_nothing(database: Database,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    target = engine(database)
    click(target, 1)
    real_save = store.save

    def failing_save(*args: Any, **kwargs: Any) -> None:
        real_save(*args, **kwargs)
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(store, "save", failing_save)
    with pytest.raises(RuntimeError):
        click(target, 2)
    monkeypatch.setattr(store, "save", real_save)
    assert len(target.cache) == 0  # the state the failed batch changed is gone
    click(target, 3)
    assert score(database) == 2  # 1 and 3: the failed click was rolled back
