"""A workflow's subscribers ranked by one of its scores, read in the database (`nurture
leads`, `GET /v1/workflows/{name}/leads`): the list a sales team follows up.

The ranking is one scan of the workflow's active enrolments joined with the ranking score
(an index search each), sorted in the database; only the rows asked for come back, then
their scores and tags are read for those alone. Totals are stored as exact decimals (text
on SQLite), so the order compares them as floating-point numbers, which equal scores keep;
the values shown are the exact ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Float, and_, func, select
from sqlalchemy import cast as cast_as

from engine.store.states import ENROLMENTS, SCORES, SUBSCRIBERS, tags_of, workflow_totals


@dataclass(frozen=True, slots=True)
class RankedRow:
    subscriber_id: int
    external_id: str
    attributes: dict[str, Any]
    stage: str
    stage_entered_at: datetime
    scores: dict[str, Decimal]
    """Every stored score of the workflow, by name (a score never earned has no row)."""
    tags: frozenset[str]


def count(connection: Connection, workflow: str, stages: Sequence[str],
          since: datetime | None = None) -> int:
    """How many are enrolled in the workflow now (in these stages, when any are given;
    having entered their stage at or after `since`, when given)."""
    query = (select(func.count()).select_from(ENROLMENTS)
             .where(*_enrolled(workflow, stages, since)))
    return int(connection.execute(query).scalar_one())


def ranked(connection: Connection, workflow: str, stages: Sequence[str], by: str | None,
           limit: int | None, offset: int = 0, since: datetime | None = None,
           page: int = 1000) -> Iterator[RankedRow]:
    """The workflow's active enrolments (in these stages, when any are given; that entered
    their stage at or after `since`, when given), highest `by` score first (a subscriber
    without one has 0), then by id; with no score, the latest to enter their stage first.
    `limit` None: everyone, read `page` rows at a time."""
    order: list[Any]
    query = (select(SUBSCRIBERS.c.id, SUBSCRIBERS.c.external_id, SUBSCRIBERS.c.attributes,
                    ENROLMENTS.c.stage, ENROLMENTS.c.stage_entered_at)
             .join(SUBSCRIBERS, SUBSCRIBERS.c.id == ENROLMENTS.c.subscriber_id)
             .where(*_enrolled(workflow, stages, since)))
    if by is not None:
        query = query.outerjoin(SCORES, and_(SCORES.c.subscriber_id == ENROLMENTS.c.subscriber_id,
                                             SCORES.c.workflow == workflow,
                                             SCORES.c.score == by))
        order = [func.coalesce(cast_as(SCORES.c.total, Float), 0).desc()]
    else:
        order = [ENROLMENTS.c.stage_entered_at.desc()]
    query = query.order_by(*order, SUBSCRIBERS.c.external_id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    result = connection.execution_options(yield_per=page).execute(query)
    for rows in result.partitions():
        yield from _completed(connection, workflow, rows)


def _enrolled(workflow: str, stages: Sequence[str], since: datetime | None) -> list[Any]:
    conditions = [ENROLMENTS.c.workflow == workflow, ENROLMENTS.c.ended_at.is_(None)]
    if stages:
        conditions.append(ENROLMENTS.c.stage.in_(list(stages)))
    if since is not None:
        conditions.append(ENROLMENTS.c.stage_entered_at >= since)
    return conditions


def _completed(connection: Connection, workflow: str,
               rows: Sequence[Any]) -> Iterator[RankedRow]:
    """The page's rows with their scores and tags (two reads for the page)."""
    ids = [row.id for row in rows]
    scores = workflow_totals(connection, workflow, ids)
    tags = tags_of(connection, ids)
    for row in rows:
        yield RankedRow(row.id, row.external_id, row.attributes, row.stage,
                        row.stage_entered_at, scores.get(row.id, {}),
                        frozenset(tags.get(row.id, ())))
