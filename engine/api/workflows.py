"""Workflows as the marketer watches them: the funnel report, what each stage's subscribers
wait for, whether the rules meet real traffic, and who the leads are (`nurture funnel`,
`nurture waiting`, `nurture rules` and `nurture leads` over HTTP)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from dsl import model as m
from dsl.diagnostics import did_you_mean
from engine.api.auth import Authorised
from engine.api.errors import field_error
from engine.api.params import since_parameter
from engine.encoding import plain
from engine.funnel import as_json
from engine.leads import UnknownScore, count, lead_json, leads, ranking
from engine.rules_report import read_rules, rules_json
from engine.runtime import Runtime
from engine.store import funnel as store
from engine.waiting import UnknownStage, read_waiting, waiting_json

router = APIRouter()


@router.get("/v1/workflows/{workflow}/funnel",
            summary="How a workflow is doing: who is in each stage now, who entered each "
                    "stage, enrolled and exited, and what became of each message (sent, "
                    "delivered, pending, not delivered, skipped and why; opened or shown, "
                    "and clicked)",
            responses={404: {"description": "No such workflow loaded, and nobody was ever "
                                            "enrolled in one of that name"}})
def funnel(workflow: Annotated[str, Path(min_length=1, max_length=100)], runtime: Authorised,
           since: Annotated[str | None, Query(
               max_length=64,
               description="Count what happened since then: a time (`2026-03-02`, "
                           "`2026-03-02T09:00:00Z`) or a span back from now (`7 days`, "
                           "`12 hours`). Default: all time. Who is in a stage now is always "
                           "counted.")] = None) -> JSONResponse:
    start = since_parameter(since, runtime.clock.now())
    with runtime.database.reading() as connection:
        counts = store.funnel(connection, workflow, start)
        stored = store.workflows(connection) if counts.empty else []
    declared = next((w for w in runtime.catalog.workflows if w.name == workflow), None)
    if declared is None and counts.empty:
        known = {w.name for w in runtime.catalog.workflows} | set(stored)
        raise field_error(404, "workflow", f"no workflow {workflow!r}"
                                           f"{did_you_mean(workflow, known)}")
    return JSONResponse(plain(as_json(counts, declared)))


@router.get("/v1/workflows/{workflow}/waiting",
            summary="What the subscribers of each stage wait for: for each comparison of each "
                    "`go to … when`, how many meet it and how many would move if it alone "
                    "held; how the scores and attributes it reads are spread; which event "
                    "or when the other transitions move them. Reads every state of the "
                    "stages asked for: meant for a person asking, not for polling",
            responses={404: {"description": "No such workflow loaded, or no such stage"}})
def waiting(workflow: Annotated[str, Path(min_length=1, max_length=100)], runtime: Authorised,
            stage: Annotated[list[str] | None, Query(
                description="Only these stages (repeatable). Default: every stage."
            )] = None) -> JSONResponse:
    plan = runtime.engine.plan
    if workflow not in plan.by_name:
        raise field_error(404, "workflow", f"no workflow {workflow!r}"
                                           f"{did_you_mean(workflow, plan.by_name)}")
    with runtime.database.reading() as connection:
        try:
            report = read_waiting(connection, plan, workflow, stage or ())
        except UnknownStage as problem:
            raise field_error(404, "stage", str(problem)) from None
    return JSONResponse(plain(waiting_json(report)))


@router.get("/v1/workflows/{workflow}/rules",
            summary="Whether a workflow's rules meet real traffic: each event type it names "
                    "with how many such events arrived (and the received type probably "
                    "meant, for one that never did), each score rule with how often it "
                    "changed a score, for how many subscribers, by how many points, and each "
                    "tag rule with how many it tagged",
            responses={404: {"description": "No such workflow loaded"}})
def rules(workflow: Annotated[str, Path(min_length=1, max_length=100)], runtime: Authorised,
          since: Annotated[str | None, Query(
              max_length=64,
              description="Count from then on: a time (`2026-03-02`, `2026-03-02T09:00:00Z`) "
                          "or a span back from now (`7 days`). Default: all time.")] = None
          ) -> JSONResponse:
    start = since_parameter(since, runtime.clock.now())
    declared = _loaded(runtime, workflow)
    with runtime.database.reading() as connection:
        report = read_rules(connection, declared, start)
    return JSONResponse(plain(rules_json(report)))


@router.get("/v1/workflows/{workflow}/leads",
            summary="A workflow's subscribers, highest score first, a page at a time: each "
                    "with their stage and since when, the workflow's scores, their tags and "
                    "the attributes asked for",
            responses={404: {"description": "No such workflow loaded, or no such stage"},
                       422: {"description": "No such score to rank by"}})
def ranked_leads(
        workflow: Annotated[str, Path(min_length=1, max_length=100)], runtime: Authorised,
        stage: Annotated[list[str] | None, Query(
            description="Only those in these stages (repeatable). Default: every stage.")
        ] = None,
        by: Annotated[str | None, Query(
            max_length=100, description="The score to rank by. Default: the first the "
                                        "workflow declares (with none: the latest to enter "
                                        "their stage first).")] = None,
        attribute: Annotated[list[str] | None, Query(
            description="Attributes to include (repeatable): `email`, `company`... Default: "
                        "none.")] = None,
        since: Annotated[str | None, Query(
            max_length=64,
            description="Only those who entered their stage since then: a time "
                        "(`2026-03-02`, `2026-03-02T09:00:00Z`) or a span back from now "
                        "(`1 day`).")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0) -> JSONResponse:
    start = since_parameter(since, runtime.clock.now())
    declared = _loaded(runtime, workflow)
    with runtime.database.reading() as connection:
        try:
            asked = ranking(connection, declared, stage or (), by, attribute or (),
                            start)
        except UnknownStage as problem:
            raise field_error(404, "stage", str(problem)) from None
        except UnknownScore as problem:
            raise field_error(422, "by", str(problem)) from None
        total = count(connection, asked)
        page = [lead_json(asked, lead) for lead in leads(connection, asked, limit, offset)]
    return JSONResponse(plain({"workflow": workflow, "stages": list(asked.stages),
                               "by": asked.by, "since": start, "total": total,
                               "offset": offset, "leads": page}))


def _loaded(runtime: Runtime, workflow: str) -> m.Workflow:
    """The workflow the files declare by that name, else a 404 naming the one meant."""
    loaded = {w.name: w for w in runtime.catalog.workflows}
    if workflow not in loaded:
        raise field_error(404, "workflow", f"no workflow {workflow!r}"
                                           f"{did_you_mean(workflow, loaded)}")
    return loaded[workflow]
