"""Semantic checks over everything loaded together (SPEC §1.8).

The parser has already refused what one statement alone gets wrong; here are the problems that
need the whole picture: names that refer to nothing, duplicates across files, time zones,
stages nobody can reach, and templates rendered with sample data for each send that uses them.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from dsl import model as m
from dsl.addresses import address_problem, links_nowhere
from dsl.conditions import describe, references, tags_read
from dsl.diagnostics import Diagnostic, closest, did_you_mean, error, warning
from dsl.errors import RenderError, TemplateError
from dsl.score_ranges import ScoreRange, never_holding, score_range
from dsl.templates import (
    CHANNEL_NAMES,
    Compiled,
    compile_template,
    escaping_for,
    names_for,
    render,
    sample_variables,
)
from dsl.zones import zone_problem


@dataclass(frozen=True, slots=True)
class Lost:
    """Names declared in text that did not parse (a block with a syntax error): `with` keys
    and scores. A template that uses one is not reported as using an unknown name: the
    writer would be sent after an error that fixing the syntax error makes go away. A name
    that no text declares is still reported at once."""

    params: frozenset[str] = frozenset()
    scores: frozenset[str] = frozenset()

    @classmethod
    def in_text(cls, text: str) -> Lost:
        params = {key for tail in _WITH.findall(text) for key in _KEY.findall(tail)}
        return cls(frozenset(params), frozenset(_SCORE.findall(text)))


_WITH = re.compile(r"\bwith\b([^\n#]*)")
_KEY = re.compile(r"\b([a-z_][a-z0-9_]*)\s*=(?!=)")
_SCORE = re.compile(r"\bscore\s+([a-z_][a-z0-9_]*)")


def validate(catalog: m.Catalog, complete: bool = True, lost: Lost = Lost()) -> list[Diagnostic]:
    """All semantic problems of a catalog.

    `complete` is False when some file of the set did not parse: then a name that refers to
    nothing may live in that file, so references to messages are not reported; `lost` holds
    the names that the text which did not parse declares.
    """
    problems: list[Diagnostic] = []
    problems += _duplicate_workflows(catalog)
    problems += _duplicate_messages(catalog)
    for workflow in catalog.workflows:
        problems += _check_workflow(workflow, catalog, complete)
    problems += _check_templates(catalog, lost)
    if complete:
        problems += check_send_params(catalog)
        problems += _tags_never_added(catalog)
    problems += _misspelt_events(catalog)
    problems += _check_variants(catalog)
    problems += _check_push_sizes(catalog)
    return problems


# ---------------------------------------------------------------- event names


def _misspelt_events(catalog: m.Catalog) -> Iterator[Diagnostic]:
    """`entry on subscribe` would enrol nobody: an event name that nearly spells one nurture
    knows (and is not it) is most likely a typo. So is one written only once that nearly
    spells another the workflows name (`go to sale on purchse` beside `on purchase +25`).
    Warnings, since a site may send events of any name."""
    named = [(event, span) for workflow in catalog.workflows
             for event, span in events_named(workflow)]
    uses = Counter(event for event, _ in named)
    for event, span in named:
        if event in m.BUILT_IN_EVENTS:
            continue
        match = difflib.get_close_matches(event, m.BUILT_IN_EVENTS, n=1, cutoff=0.85)
        if match:
            yield warning(span, f"event '{event}' is none of nurture's own events; did "
                                f"you mean '{match[0]}'?")
            continue
        if uses[event] != 1:
            continue
        others = [other for other in uses if other != event]
        match = difflib.get_close_matches(event, others, n=1, cutoff=0.85)
        if not match:
            continue
        other = match[0]
        if uses[other] > 1:
            yield warning(span, f"event '{event}' is named only here, and '{other}' "
                                f"{uses[other]} times elsewhere; did you mean '{other}'?")
        else:  # each named once: which is the typo cannot be told; said once, at the later
            there = next(place for name, place in named if name == other)
            if (there.path, there.line, there.column) < (span.path, span.line, span.column):
                yield warning(span, f"events '{event}' and '{other}' (at {there}) are each "
                                    "named once and nearly the same: if one is a typo, it "
                                    "never happens")


def misspelt_event(name: str, catalog: m.Catalog) -> str | None:
    """The event type that `name`, sent by a test or written in a file of events, nearly
    spells when no loaded workflow names it: `purchse` for `purchase`, `unsubscribe` for
    `unsubscribed`. None when it is named, or far from every name (a site's own event)."""
    known = {*m.BUILT_IN_EVENTS,
             *(event for workflow in catalog.workflows for event, _ in events_named(workflow))}
    if name in known:
        return None
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
    return match[0] if match else None


def events_named(workflow: m.Workflow) -> Iterator[tuple[str, m.Span]]:
    """Every event type a workflow names, with where it is written."""
    for trigger in (*workflow.entries, *workflow.exits):
        yield trigger.event, trigger.event_span or trigger.span
    for rule in workflow.tags:
        yield rule.event, rule.event_span or rule.span
    for score in workflow.scores:
        yield from ((rule.event, rule.event_span or rule.span) for rule in score.event_rules)
    for stage in workflow.stages:
        for step in stage.steps:
            if isinstance(step, m.After) and step.unless is not None:
                yield step.unless, step.unless_span or step.span
        for transition in stage.transitions:
            if isinstance(transition, m.GoOn):
                yield transition.event, transition.event_span or transition.span


# ---------------------------------------------------------------- tags


def _tags_never_added(catalog: m.Catalog) -> Iterator[Diagnostic]:
    """`has tag "T"` where no tag rule of any workflow loaded adds T: a misspelt tag would
    silently never hold. A warning, not an error: subscribers may hold T from a tag rule
    that an earlier version of the files had."""
    added = {rule.tag for workflow in catalog.workflows for rule in workflow.tags}
    for workflow in catalog.workflows:
        for condition in _conditions(workflow):
            for read in tags_read(condition):
                if read.tag not in added:
                    yield warning(read.span, f"no tag rule adds tag '{read.tag}'"
                                             f"{did_you_mean(read.tag, added)}")


def _conditions(workflow: m.Workflow) -> Iterator[m.Condition]:
    """Every condition a workflow writes: `where` filters, fit rules, `go to … when`."""
    wheres = [trigger.where for trigger in (*workflow.entries, *workflow.exits)]
    wheres += [rule.where for rule in workflow.tags]
    for score in workflow.scores:
        wheres += [rule.where for rule in score.event_rules]
        yield from (rule.condition for rule in score.fit_rules)
    for stage in workflow.stages:
        for transition in stage.transitions:
            if isinstance(transition, m.GoWhen):
                yield transition.condition
            elif isinstance(transition, m.GoOn):
                wheres.append(transition.where)
    yield from (where for where in wheres if where is not None)


# ---------------------------------------------------------------- duplicates


def _duplicate_workflows(catalog: m.Catalog) -> Iterator[Diagnostic]:
    seen: dict[str, m.Span] = {}
    for workflow in catalog.workflows:
        first = seen.setdefault(workflow.name, workflow.span)
        if first is not workflow.span:
            yield error(workflow.span, f"duplicate workflow '{workflow.name}' (first defined at "
                                       f"{first})")


def _duplicate_messages(catalog: m.Catalog) -> Iterator[Diagnostic]:
    seen: dict[tuple[str, str, str | None], m.Span] = {}
    for message in catalog.messages:
        key = (message.name, message.channel, (message.lang or "").lower() or None)
        first = seen.setdefault(key, message.span)
        if first is not message.span:
            variant = f" lang \"{message.lang}\"" if message.lang else ""
            yield error(message.span, f"duplicate message '{message.name}' {message.channel}"
                                      f"{variant} (first defined at {first})")


# ---------------------------------------------------------------- workflows


def _check_workflow(workflow: m.Workflow, catalog: m.Catalog,
                    complete: bool) -> Iterator[Diagnostic]:
    yield from _check_timezone(workflow)
    stage_names = [stage.name for stage in workflow.stages]
    ranges = {score.name: score_range(score) for score in workflow.scores}
    if workflow.stages and workflow.start not in stage_names:
        yield _unknown("stage", workflow.start, workflow.start_span, stage_names)
    for stage in workflow.stages:
        for transition in stage.transitions:
            if transition.target not in stage_names:
                yield _unknown("stage", transition.target, transition.target_span, stage_names)
            elif transition.target == stage.name:
                yield _to_its_own_stage(transition, stage)
            if isinstance(transition, m.GoWhen):
                yield from _check_score_names(transition.condition, workflow, catalog)
                yield from _out_of_reach(transition, ranges)
        for step in stage.steps if complete else ():
            yield from _check_send(step.action, catalog)
    for score in workflow.scores:
        for rule in score.fit_rules:
            yield from _scores_in_fit_rule(rule, workflow, catalog)
    yield from _unreachable(workflow)
    yield from _redundant_caps(workflow)
    yield from _drips_faster_than_caps(workflow)
    yield from _quiet_by_day(workflow)


def _quiet_by_day(workflow: m.Workflow) -> Iterator[Diagnostic]:
    """`quiet hours 08:00 to 21:00` keeps everything for the night: a window written the wrong
    way round (meant: 21:00 to 08:00). Quiet over noon and for more than half the day is
    taken for that; a lunch break (`12:00 to 13:00`) or a long night are not."""
    quiet = workflow.quiet_hours
    if quiet is None:
        return
    start = quiet.start.hour * 60 + quiet.start.minute
    end = quiet.end.hour * 60 + quiet.end.minute
    length = (end - start) % (24 * 60)
    over_noon = (12 * 60 - start) % (24 * 60) < length
    if over_noon and length > 12 * 60:
        written, flipped = (f"{quiet.start:%H:%M} to {quiet.end:%H:%M}",
                            f"{quiet.end:%H:%M} to {quiet.start:%H:%M}")
        yield warning(quiet.span, f"quiet hours {written} let messages go out only from "
                                  f"{flipped}, at night; did you mean 'quiet hours {flipped}'?")


def _out_of_reach(transition: m.GoWhen,
                  ranges: dict[str, ScoreRange]) -> Iterator[Diagnostic]:
    """A threshold that its score can never reach: the transition moves nobody."""
    for comparison, why in never_holding(transition.condition, ranges):
        yield warning(comparison.span, f"'{describe(comparison)}' never holds: {why}; so "
                                       f"'go to {transition.target}' never moves anyone")


def _to_its_own_stage(transition: m.Transition, stage: m.Stage) -> Diagnostic:
    """A stage is entered at most once per evaluation (SPEC §1.5), and the subscriber is in
    it already: such a transition never moves anyone. Worse, it is the first that holds, so
    the transitions after it are not tried while it does (for `after` and `idle`: forever
    once its time has come). A marketer who wrote it meant something else (a restart of the
    stage's drip, say)."""
    return warning(transition.target_span,
                   f"'go to {stage.name}' inside stage '{stage.name}' never moves anyone (a "
                   "stage is entered at most once per evaluation), and while it holds the "
                   "transitions written after it are not tried")


def _check_timezone(workflow: m.Workflow) -> Iterator[Diagnostic]:
    problem = zone_problem(workflow.timezone)
    if problem is not None:
        yield error(workflow.timezone_span, problem)


def _unknown(kind: str, name: str, span: m.Span, known: list[str]) -> Diagnostic:
    return error(span, f"unknown {kind} '{name}'{did_you_mean(name, known)}")


def _check_score_names(condition: m.Condition, workflow: m.Workflow,
                       catalog: m.Catalog) -> Iterator[Diagnostic]:
    """A misspelt score in `when`, or another workflow's, would silently read an attribute
    and never hold."""
    scores = [score.name for score in workflow.scores]
    for reference in references(condition):
        if reference.scope != "plain" or reference.name in scores:
            continue
        elsewhere = _other_workflows_score(reference, workflow, catalog)
        if elsewhere is not None:
            yield elsewhere
            continue
        match = closest(reference.name, scores)
        if match:
            yield error(reference.span, f"unknown score '{reference.name}'; did you mean "
                                        f"'{match}'? (write subscriber.{reference.name} for "
                                        "an attribute of that name)")


def _other_workflows_score(reference: m.Reference, workflow: m.Workflow,
                           catalog: m.Catalog) -> Diagnostic | None:
    """A plain name that is no score of this workflow but is one of another: scores are
    each workflow's own, so here it reads an attribute."""
    owners = [other.name for other in catalog.workflows if other is not workflow
              and any(score.name == reference.name for score in other.scores)]
    if not owners:
        return None
    return error(reference.span,
                 f"'{reference.name}' is a score of workflow '{owners[0]}', not of "
                 f"'{workflow.name}': a workflow's conditions read its own scores (declare "
                 f"the score here too, or write subscriber.{reference.name} for an attribute "
                 "of that name)")


def _scores_in_fit_rule(rule: m.FitRule, workflow: m.Workflow,
                        catalog: m.Catalog) -> Iterator[Diagnostic]:
    """A fit rule reads subscriber attributes and is tried again only when they change
    (SPEC §1.4). A plain name that is also a score, of this workflow or another (`when
    engagement >= 20 +1` to flag hot leads), reads an attribute of that name, which is likely
    missing, so the rule would silently never hold; it is refused, with the two ways to say
    what is meant."""
    owners = {score.name: other for other in (*reversed(catalog.workflows), workflow)
              for score in other.scores}  # its own workflow's first, then the first declared
    for reference in references(rule.condition):
        owner = owners.get(reference.name) if reference.scope == "plain" else None
        if owner is None:
            continue
        act = (f"use 'go to STAGE when {reference.name} …' in a stage" if owner is workflow
               else f"use 'go to STAGE when {reference.name} …' in workflow '{owner.name}'")
        yield error(reference.span,
                    f"'{reference.name}' is a score, but a fit rule reads subscriber "
                    f"attributes and is not tried again when scores change; to act on the "
                    f"score, {act} (write subscriber.{reference.name} for an attribute of "
                    "that name)")


def _check_send(send: m.Send, catalog: m.Catalog) -> Iterator[Diagnostic]:
    if catalog.variants(send.message, send.channel):
        return
    others = sorted({msg.channel for msg in catalog.messages if msg.name == send.message})
    if others:
        yield error(send.message_span, f"message '{send.message}' has no {send.channel} "
                                       f"variant (it is declared for {' and '.join(others)})")
        return
    names = [msg.name for msg in catalog.messages if msg.channel == send.channel] or \
        [msg.name for msg in catalog.messages]
    yield _unknown("message", send.message, send.message_span, names)


def _unreachable(workflow: m.Workflow) -> Iterator[Diagnostic]:
    edges = {stage.name: [t.target for t in stage.transitions] for stage in workflow.stages}
    reached = set()
    frontier = [workflow.start]
    while frontier:
        name = frontier.pop()
        if name in reached or name not in edges:
            continue
        reached.add(name)
        frontier.extend(edges[name])
    if workflow.start not in edges:
        return
    for stage in workflow.stages:
        if stage.name not in reached:
            yield warning(stage.span, f"stage '{stage.name}' is unreachable: no transition "
                                      f"from '{workflow.start}' leads to it")


def _redundant_caps(workflow: m.Workflow) -> Iterator[Diagnostic]:
    for limit in workflow.limits:
        for cap in limit.caps:
            for other in (c for c in limit.caps if c.count > 0):
                if other.window > cap.window and other.count <= cap.count:
                    yield warning(cap.span, f"'{cap}' never applies: '{other}' on {limit.channel}"
                                            " is stricter")
                    break


def _drips_faster_than_caps(workflow: m.Workflow) -> Iterator[Diagnostic]:
    """An endless `every` that sends more often than a cap of its channel lets through:
    the sends the cap holds back wait in line (SPEC §1.5a), and the line grows for as long
    as a subscriber stays in the stage. Legal, and almost never what was meant."""
    caps = {limit.channel: limit.caps for limit in workflow.limits}
    for stage in workflow.stages:
        for step in stage.steps:
            if not isinstance(step, m.Every) or step.times is not None:
                continue
            channel = step.action.channel
            for cap in caps.get(channel, ()):
                if cap.count > 0 and step.interval.delta * int(cap.count) < cap.window:
                    yield warning(step.span, f"'every {step.interval}' sends {channel} more "
                                             f"often than 'limit {channel} to {cap}' lets "
                                             f"through: the sends held "
                                             f"back queue up for as long as a subscriber "
                                             f"stays in stage '{stage.name}' (give it a "
                                             f"count, or a longer interval)")
                    break


# ---------------------------------------------------------------- messages and templates


def _check_variants(catalog: m.Catalog) -> Iterator[Diagnostic]:
    groups: dict[tuple[str, str], list[m.Message]] = defaultdict(list)
    for message in catalog.messages:
        groups[(message.name, message.channel)].append(message)
    for variants in groups.values():
        if all(v.lang for v in variants):
            first = variants[0]
            yield warning(first.span, f"message '{first.name}' {first.channel} has only "
                                      "language variants: a subscriber with another locale "
                                      "gets nothing; add a variant without 'lang'")


SMALLEST_TAG_AND_TOKEN = {"tag": "t" * 24, "token": "t" * 48}
"""What every push payload carries besides the message (a topic hash, a click token)."""


def _check_push_sizes(catalog: m.Catalog) -> Iterator[Diagnostic]:
    """A push whose fixed text alone exceeds what a push can carry can never be sent."""
    for message in catalog.messages:
        content = message.content
        if not isinstance(content, m.PushContent):
            continue
        fixed = {name: _fixed_text(getattr(content, name))
                 for name in ("title", "body", "url", "icon")}
        size = len(json.dumps({**fixed, **SMALLEST_TAG_AND_TOKEN}, ensure_ascii=False,
                              separators=(",", ":")).encode())
        if size > m.PUSH_PLAINTEXT_LIMIT:
            yield error(message.span, f"push message '{message.name}' can never be sent: its "
                                      f"fixed text alone makes a {size}-byte payload, more than "
                                      f"the {m.PUSH_PLAINTEXT_LIMIT} bytes a push can carry")


def _fixed_text(template: m.Template | None) -> str | None:
    """The text that every rendering contains (a lower bound: none if there are blocks)."""
    if template is None:
        return None
    if "{%" in template.source:
        return ""
    return re.sub(r"\{\{.*?\}\}|\{#.*?#\}", "", template.source, flags=re.DOTALL)


def _senders(catalog: m.Catalog) -> dict[tuple[str, str], list[tuple[m.Workflow, m.Stage,
                                                                      m.Send]]]:
    found: dict[tuple[str, str], list[tuple[m.Workflow, m.Stage, m.Send]]] = defaultdict(list)
    for workflow in catalog.workflows:
        for stage, send in workflow.sends():
            found[(send.message, send.channel)].append((workflow, stage, send))
    return found


def _check_templates(catalog: m.Catalog, lost: Lost = Lost()) -> Iterator[Diagnostic]:
    senders = _senders(catalog)
    all_scores = frozenset(s.name for w in catalog.workflows for s in w.scores)
    for message in catalog.messages:
        uses = senders.get((message.name, message.channel), [])
        for field, template in message.templates():
            yield from _check_template(message, field, template, uses, all_scores, lost)


def _template_span(template: m.Template, line: int) -> m.Span:
    if template.file is not None:
        return m.Span(template.file, line, 1)
    return template.span


def _check_template(message: m.Message, field: str, template: m.Template,
                    uses: list[tuple[m.Workflow, m.Stage, m.Send]],
                    all_scores: frozenset[str], lost: Lost = Lost()) -> Iterator[Diagnostic]:
    yield from _check_links(message, field, template)
    if template.is_static:
        if message.channel == "webhook" and field == "body":
            yield from _check_json(template, template.source)
        yield from _check_address(message, field, template, template.source)
        return
    try:
        compiled = compile_template(template.source, escaping_for(message.channel, field))
    except TemplateError as problem:
        where = _template_span(template, problem.line)
        yield error(where, f"template of field '{field}' in message '{message.name}' does not "
                           f"compile: {problem.message}")
        return
    given = {key for _, _, send in uses for key, _ in send.params}
    missing = compiled.names - names_for(message.channel)
    scores = frozenset(s.name for w, _, _ in uses for s in w.scores) if uses else all_scores
    held_back = (missing - given) & lost.params or {
        attribute for variable, attribute, _ in compiled.attributes
        if variable == "scores" and attribute not in scores} & lost.scores
    problems = list(_unknown_names(message, field, template, missing - lost.params, given))
    problems += _unknown_scores(message, template, compiled, scores | lost.scores)
    yield from problems
    if problems or held_back:
        return  # (rendering with sample data would fail on what is held back)
    yield from _unguarded_reads(message, field, template, compiled)
    contexts: list[tuple[str, str, dict[str, m.Value], m.Send | None]] = [
        (w.name, st.name, dict(send.params), send) for w, st, send in uses
    ] or [("sample_workflow", "sample_stage", {}, None)]
    for workflow_name, stage_name, params, send in contexts:
        if send is not None and not missing <= set(params):
            continue  # reported at the send by _unknown_names
        variables = sample_variables(scores, stage_name, workflow_name, params,
                                     message.channel)
        try:
            rendered = render(compiled, variables)
        except RenderError as problem:
            yield error(template.span, f"field '{field}' of message '{message.name}' does not "
                                       f"render: {problem.message}")
            return
        if message.channel == "webhook" and field == "body":
            yield from _check_json(template, rendered)
        if not template.source.lstrip().startswith("{"):  # the address's start is written out
            wrong = list(_check_address(message, field, template, rendered))
            if wrong:
                yield from wrong  # (once, not for every send of the message)
                return


def _check_links(message: m.Message, field: str,
                 template: m.Template) -> Iterator[Diagnostic]:
    """Links of an e-mail's HTML, as written, without `https://`: broken in every mail
    client, and not click-tracked. A warning: an HTML part may hold things the checker does
    not foresee."""
    if message.channel != "email" or field != "html":
        return
    for target, line, problem in links_nowhere(template.source):
        shown = target if len(target) <= 80 else target[:77] + "..."
        yield warning(_template_span(template, line), f"link '{shown}' in the html of message "
                                     f"'{message.name}' {problem}")


def _check_address(message: m.Message, field: str, template: m.Template,
                   text: str) -> Iterator[Diagnostic]:
    problem = address_problem(message.channel, field, text, written=template.source)
    if problem is not None:
        yield error(template.span, f"field '{field}' of message '{message.name}': {problem}")


ALWAYS_THERE = {"push": {"id"}, "email": {"id", "email"}, "webhook": {"id"}}
"""Attributes every subscriber a message goes to has: the id, and for e-mail the address
(a send without one is skipped as `no_address` before rendering)."""


def _unguarded_reads(message: m.Message, field: str, template: m.Template,
                     compiled: Compiled) -> Iterator[Diagnostic]:
    """A `subscriber.X` read without a default: legal (SPEC §1.5a: the send is skipped as
    `render_error` for a subscriber without X), and worth a warning, since `check` renders
    with a sample subscriber who has everything and would not show it."""
    for name, line in sorted(compiled.unguarded):
        if name in ALWAYS_THERE[message.channel]:
            continue
        read = f"subscriber.{name}"
        yield warning(_template_span(template, line) if template.file else template.span,
                      f"field '{field}' of message '{message.name}' reads {read} without a "
                      f"default: a subscriber without it gets no message (render_error); "
                      f"{{{{ {read} | default('…') }}}} avoids that")


def _unknown_names(message: m.Message, field: str, template: m.Template,
                   missing: frozenset[str], given: set[str]) -> Iterator[Diagnostic]:
    for name in sorted(missing - given):
        known = names_for(message.channel) | given
        elsewhere = sorted(channel for channel, names in CHANNEL_NAMES.items() if name in names)
        if elsewhere:
            yield error(template.span, f"'{name}' in field '{field}' of message "
                                       f"'{message.name}' is there in {' and '.join(elsewhere)} "
                                       f"messages only, not in {message.channel} ones")
            continue
        yield error(template.span, f"unknown name '{name}' in field '{field}' of message "
                                   f"'{message.name}'{did_you_mean(name, known)} (a template "
                                   f"can use {', '.join(sorted(known))})")


def _unknown_scores(message: m.Message, template: m.Template, compiled: Compiled,
                    scores: frozenset[str]) -> Iterator[Diagnostic]:
    for variable, attribute, line in sorted(compiled.attributes):
        if variable == "scores" and attribute not in scores:
            yield error(_template_span(template, line) if template.file else template.span,
                        f"unknown score '{attribute}' in message '{message.name}'"
                        f"{did_you_mean(attribute, scores)}")


def _check_json(template: m.Template, text: str) -> Iterator[Diagnostic]:
    try:
        json.loads(text)
    except ValueError as problem:
        yield error(template.span, f"webhook body is not JSON after rendering: {problem}")


def check_send_params(catalog: m.Catalog) -> Iterator[Diagnostic]:
    """A send that omits a `with` value that its message's templates (any variant) need.

    Names that no send gives at all are reported once at the template instead.
    """
    given: dict[tuple[str, str], set[str]] = defaultdict(set)
    for workflow in catalog.workflows:
        for _, send in workflow.sends():
            given[(send.message, send.channel)] |= {key for key, _ in send.params}
    for workflow in catalog.workflows:
        for _, send in workflow.sends():
            needed = _template_names(catalog.variants(send.message, send.channel))
            lacking = needed & given[(send.message, send.channel)]
            for name in sorted(lacking - {key for key, _ in send.params}):
                yield error(send.span, f"message '{send.message}' uses '{name}', which this "
                                       f"send does not give; add: with {name} = …")


def _template_names(variants: tuple[m.Message, ...]) -> set[str]:
    """The non-standard top-level names the templates of these variants read."""
    names: set[str] = set()
    for message in variants:
        for field, template in message.templates():
            if template.is_static:
                continue
            try:
                names |= compile_template(template.source,
                                          escaping_for(message.channel, field)).names
            except TemplateError:
                continue
            names -= names_for(message.channel)
    return names
