"""What real traffic made of a workflow's rules, counted in the database (`nurture rules`).

Two counts, each one `GROUP BY` over a table (a scan: meant for a person asking): the events
received by type, and the score ledger by rule. Points are summed exactly: the ledger keeps
decimals as text on SQLite, whose `SUM` would add them as floating point, so the sums are
made here from the count of each distinct change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, distinct, func, select

from engine.store.states import EVENTS, LEDGER, TAGS


@dataclass(slots=True)
class RuleCount:
    """The ledger's entries of one rule, as recorded (`FILE:LINE` as the engine loaded it)."""

    rule: str
    score: str
    kind: str
    """`event`, `fit` or `decay`."""
    changes: int = 0
    subscribers: int = 0
    points: Decimal = Decimal(0)
    deltas: set[Decimal] = field(default_factory=set)
    """The distinct changes it made (an event rule without `max` makes one: its points)."""


def events_by_type(connection: Connection, since: datetime | None) -> dict[str, int]:
    """How many events of each type arrived (by the events' own time, from `since`)."""
    query = select(EVENTS.c.type, func.count()).group_by(EVENTS.c.type)
    if since is not None:
        query = query.where(EVENTS.c.at >= since)
    rows: Any = connection.execute(query)
    return {kind: count for kind, count in rows}


def ledger_by_rule(connection: Connection, workflow: str,
                   since: datetime | None) -> list[RuleCount]:
    """Every rule of the workflow that changed a score (from `since`): how often, for how
    many subscribers, and by how many points in all."""
    ledger = LEDGER.c
    where: list[Any] = [ledger.workflow == workflow]
    if since is not None:
        where.append(ledger.at >= since)
    counts: dict[tuple[str, str, str], RuleCount] = {}
    which = (ledger.rule, ledger.score, ledger.kind)
    changed: Any = connection.execute(select(*which, ledger.delta, func.count()).where(*where)
                                      .group_by(*which, ledger.delta))
    for rule, score, kind, delta, changes in changed:
        line = counts.setdefault((rule, score, kind), RuleCount(rule, score, kind))
        line.changes += changes
        line.points += Decimal(delta) * changes
        line.deltas.add(Decimal(delta))
    reached: Any = connection.execute(
        select(*which, func.count(distinct(ledger.subscriber_id))).where(*where)
        .group_by(*which))
    for rule, score, kind, subscribers in reached:
        counts[rule, score, kind].subscribers = subscribers
    return sorted(counts.values(), key=_place)


def _place(line: RuleCount) -> tuple[str, str, int, str]:
    """By score, then by file and line (`w.flow:9` before `w.flow:10`)."""
    path, _, number = line.rule.rpartition(":")
    return (line.score, path, int(number) if number.isdigit() else 0, line.kind)


def tagged(connection: Connection, workflow: str, since: datetime | None) -> dict[str, int]:
    """Subscribers each tag was given to by the workflow's rules (from `since`): a subscriber
    keeps a tag once, given by the first rule that gave it."""
    query = (select(TAGS.c.tag, func.count()).where(TAGS.c.workflow == workflow)
             .group_by(TAGS.c.tag))
    if since is not None:
        query = query.where(TAGS.c.added_at >= since)
    rows: Any = connection.execute(query)
    return {tag: count for tag, count in rows}
