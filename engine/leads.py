"""Who the leads are: a workflow's subscribers ranked by one of its scores.

The funnel report counts people; a sales team calls them. "Who are the hottest leads in
`selection`?" is answered here: the subscribers enrolled in a workflow (or some of its
stages), highest score first, each with their stage, since when, the workflow's scores, their
tags and the attributes asked for (an e-mail address, a company), as text, as JSON lines for
a spreadsheet or a CRM, and over the API a page at a time.

Attributes are shown only when asked for by name: a list of leads is the kind of thing that
gets pasted into a chat, and most attributes are nobody's business there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from dsl import model as m
from dsl.diagnostics import did_you_mean
from engine.funnel import table
from engine.records import json_number, json_value, tidy
from engine.store import leads as store
from engine.store import states
from engine.waiting import UnknownStage


class UnknownScore(ValueError):
    """A score to rank by that the workflow does not declare."""


@dataclass(frozen=True)
class Ranking:
    """What is asked: the workflow, its stages (none: all), and the score ranking them."""

    workflow: m.Workflow
    stages: tuple[str, ...]
    by: str | None
    """None when the workflow declares no score: the latest to enter their stage first."""
    attributes: tuple[str, ...] = ()
    since: datetime | None = None
    """Only those who entered their stage then or later (the new leads of a day)."""


@dataclass(frozen=True)
class Lead:
    subscriber: str
    stage: str
    stage_entered_at: datetime
    scores: dict[str, Decimal]
    """The workflow's scores in the order declared (0 for one never earned)."""
    tags: tuple[str, ...]
    attributes: dict[str, Any]
    """Those asked for that the subscriber has."""


def ranking(connection: Any, workflow: m.Workflow, stages: Sequence[str] = (),
            by: str | None = None, attributes: Sequence[str] = (),
            since: datetime | None = None) -> Ranking:
    """The ranking asked for, checked: `by` defaults to the first score the workflow
    declares; a stage must be declared or have someone in it (an edit may have removed it)."""
    declared = [score.name for score in workflow.scores]
    if by is not None and by not in declared:
        raise UnknownScore(f"workflow {workflow.name!r} has no score {by!r}"
                           f"{did_you_mean(by, declared)}" if declared else
                           f"workflow {workflow.name!r} declares no score to rank by")
    known = [stage.name for stage in workflow.stages]
    undeclared = [stage for stage in stages if stage not in known]
    if undeclared:  # (finding the stages in use reads every enrolment of the workflow)
        in_use = states.stages_in_use(connection, workflow.name)
        for stage in undeclared:
            if stage not in in_use:
                raise UnknownStage(f"workflow {workflow.name!r} has no stage {stage!r}"
                                   f"{did_you_mean(stage, known + in_use)}")
    return Ranking(workflow, tuple(dict.fromkeys(stages)),
                   by if by is not None else (declared[0] if declared else None),
                   tuple(dict.fromkeys(attributes)), since)


def count(connection: Any, asked: Ranking) -> int:
    return store.count(connection, asked.workflow.name, asked.stages, asked.since)


def leads(connection: Any, asked: Ranking, limit: int | None,
          offset: int = 0) -> Iterator[Lead]:
    """The leads in rank order, `limit` of them after the first `offset` (None: all, read
    a page at a time)."""
    names = [score.name for score in asked.workflow.scores]
    for row in store.ranked(connection, asked.workflow.name, asked.stages, asked.by, limit,
                            offset, asked.since):
        yield Lead(row.external_id, row.stage, row.stage_entered_at,
                   {name: row.scores.get(name, Decimal(0)) for name in names},
                   tuple(sorted(row.tags)),
                   {name: row.attributes[name] for name in asked.attributes
                    if name in row.attributes})


# ---------------------------------------------------------------- shown


def heading(asked: Ranking, total: int, shown: int) -> str:
    where = (f"in {', '.join(asked.stages)}" if asked.stages else "in it")
    if asked.since is not None:
        where += f" who entered their stage since {asked.since:%Y-%m-%d %H:%M:%S} UTC"
    if total == 0:
        return f"workflow {asked.workflow.name}: nobody {where}"
    people = f"{total:,} {where}"
    order = (f"highest {asked.by} first" if asked.by is not None
             else "the latest to enter their stage first")
    if shown >= total:
        return f"workflow {asked.workflow.name}: {people}; all of them, {order}"
    return f"workflow {asked.workflow.name}: {people}; the first {shown:,}, {order}"


def lead_lines(asked: Ranking, found: Sequence[Lead]) -> list[str]:
    """The leads as a table (empty when there are none)."""
    if not found:
        return []
    scores = [score.name for score in asked.workflow.scores]
    header = ["subscriber", "stage", "in the stage since", *scores, "tags", *asked.attributes]
    rows = [[lead.subscriber, lead.stage, f"{lead.stage_entered_at:%Y-%m-%d %H:%M:%S} UTC",
             *(str(tidy(lead.scores[name])) for name in scores), ", ".join(lead.tags) or "-",
             *(_shown(lead.attributes.get(name)) for name in asked.attributes)]
            for lead in found]
    numbers = range(3, 3 + len(scores))
    return table(header, rows, right=numbers)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json_value(value)


def lead_json(asked: Ranking, lead: Lead) -> dict[str, Any]:
    return {"subscriber": lead.subscriber, "workflow": asked.workflow.name,
            "stage": lead.stage,
            "stage_entered_at": f"{lead.stage_entered_at:%Y-%m-%dT%H:%M:%SZ}",
            "scores": {name: json_number(value) for name, value in lead.scores.items()},
            "tags": list(lead.tags), "attributes": lead.attributes}


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (`=HYPERLINK(…)` in a first name)."""


def csv_header(asked: Ranking) -> list[str]:
    return ["subscriber", "stage", "stage_entered_at",
            *(score.name for score in asked.workflow.scores), "tags", *asked.attributes]


def csv_row(asked: Ranking, lead: Lead) -> list[str]:
    """A lead as a spreadsheet row. Text that subscribers gave (ids, attributes, tags) is
    defused: a cell beginning as a formula begins with `'` instead, which spreadsheets show
    as text (OWASP's advice on CSV injection); numbers nurture wrote are left as they are."""
    return [_text_cell(lead.subscriber), lead.stage,
            f"{lead.stage_entered_at:%Y-%m-%dT%H:%M:%SZ}",
            *(str(json_number(lead.scores[score.name])) for score in asked.workflow.scores),
            _text_cell(", ".join(lead.tags)),
            *(_text_cell(_csv_value(lead.attributes.get(name))) for name in asked.attributes)]


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json_value(value)


def _text_cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text
