"""The engine against a second, naive reading of the SPEC, on random workflows and events.

The property test of `test_persistence.py` compares the engine with itself (one pass against
many); it cannot see a rule that both passes get wrong. Here a few lines of plain Python,
written from the SPEC's sentences and nothing else, recompute what `nurture simulate --json`
must print, and hypothesis looks for workflows and events where the two disagree:

- scores (SPEC §1.4, §1.5a "Score records", "Rolling windows"): every matching rule in written
  order, `max M per PERIOD` over (t - W, t] (on a negative rule, the points it takes away:
  the README's reading), decay `points x (1 - P/100)^floor(age / D)`, one
  record per score per decay instant, events before the due work of their instant, and the
  README's additions: a contribution that decays below 0.01 point goes to zero that step, and
  a step whose losses cancel out makes no record;
- drips under quiet hours and caps (SPEC §1.5, §1.5a "When a send goes out"): `after D` and
  `every D, N times` (due at entry + k·D) sharing the caps, each going at the earliest instant
  at or after its due time that is outside quiet hours (in the subscriber's zone) and fits
  every cap, in the order due; an exit cancels those still waiting;
- caps across workflows (SPEC §1.3 `limit`): two workflows drip push and e-mail to one
  subscriber, each under its own caps, quiet hours and zone (or the subscriber's); a cap
  counts the sends of both, and holds back only its own workflow's;
- stages (SPEC §1.5, §1.5a "Entering a stage", "Re-entry"): `on enter`, `after D unless E`,
  `every`, and `go to` when / on / after / when idle, tried in written order with chaining
  (each stage once per evaluation), timers cancelled on leaving, exit and re-entry, and the
  README's readings: the event that moves someone is not seen again by the new stage, and a
  timed move holds at its instant only when its own timer comes up;
- consent (SPEC §2, §1.5a "Why a send is skipped"): pushes and e-mails while subscriptions,
  withdrawals and attributes come and go, sent or skipped as `no_consent`, `no_address` or
  `render_error`, in that order of checks.

When the two disagreed, the engine was wrong once (a timed move taken early by an event at its
instant) and the oracle's reading three times (a negative rule's `max` caps what it takes
away; a timed move's timer tries the stage's transitions in written order, as every
evaluation does; a decay step whose losses cancel makes no record).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.loader import load_text
from engine.events import Event, parse_event
from engine.simulate import simulate

ORACLE_EXAMPLES = int(os.environ.get("NURTURE_ORACLE_EXAMPLES", "150"))
"""Examples per test in `make test` (a mutated max-window boundary was caught with 3 of 4
seeds at 150, 1 of 3 at 100); `NURTURE_ORACLE_EXAMPLES=2000` for a long search."""
EXAMPLES = settings(max_examples=ORACLE_EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
MORE_EXAMPLES = settings(EXAMPLES, max_examples=ORACLE_EXAMPLES * 8 // 3)
"""For the stage test: its space (moves, steps, timers and events together) is the widest."""
START = datetime(2026, 3, 23, 9, tzinfo=UTC)  # the week before Europe's clocks go forward
HORIZON = timedelta(days=10)
PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
UNITS = {"hours": timedelta(hours=1), "days": timedelta(days=1)}


def run_simulation(flow: str, raw_events: list[dict[str, object]],
                   until: datetime = START + HORIZON) -> list[dict[str, object]]:
    """What `nurture simulate --json` prints for these events, parsed."""
    loaded = load_text(flow, "w.flow")
    assert loaded.catalog is not None, [str(d) for d in loaded.diagnostics]
    events: list[Event] = [parse_event(raw, seq) for seq, raw in enumerate(raw_events)]
    lines: list[str] = []
    simulate(loaded.catalog, events, START, until, lines.append,
             lambda record: record.to_json())
    return [json.loads(line, parse_float=Decimal) for line in lines]


def instant(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ scores


@dataclass(frozen=True)
class Rule:
    event: str
    above: int | None  # `where v > above`
    points: int
    cap: tuple[int, str] | None  # `max M per PERIOD`

    def text(self) -> str:
        where = f" where v > {self.above}" if self.above is not None else ""
        cap = f" max {self.cap[0]} per {self.cap[1]}" if self.cap else ""
        return f"on {self.event}{where} {self.points:+d}{cap}"

    def matches(self, kind: str, v: int) -> bool:
        return kind == self.event and (self.above is None or v > self.above)


@dataclass
class Contribution:
    at: datetime
    points: Decimal
    value: Decimal
    live: bool = True


@dataclass
class ScoreOracle:
    rules: list[Rule]
    decay: tuple[int, int, str] | None  # (percent, count, unit)
    contributions: list[Contribution] = field(default_factory=list)
    added: list[list[tuple[datetime, int]]] = field(default_factory=list)

    def total(self) -> Decimal:
        return sum((c.value for c in self.contributions), Decimal(0))

    def earn(self, at: datetime, kind: str, v: int, line_of: list[int],
             out: list[tuple[str, Decimal, Decimal, int]]) -> None:
        if not self.added:
            self.added = [[] for _ in self.rules]
        for index, rule in enumerate(self.rules):
            if not rule.matches(kind, v):
                continue
            points = rule.points
            if rule.cap is not None:  # on a negative rule, the points it may take away
                window = PERIODS[rule.cap[1]]
                used = sum(abs(p) for t, p in self.added[index] if at - window < t <= at)
                left = min(abs(points), rule.cap[0] - used)
                if left <= 0:
                    continue  # nothing left: no record
                points = left if points > 0 else -left
            self.added[index].append((at, points))
            self.contributions.append(Contribution(at, Decimal(points), Decimal(points)))
            out.append((instant(at), Decimal(points), self.total(), line_of[index]))

    def period(self) -> timedelta | None:
        return None if self.decay is None else self.decay[1] * UNITS[self.decay[2]]

    def boundaries(self, until: datetime) -> set[datetime]:
        period = self.period()
        if period is None:
            return set()
        found = set()
        for c in self.contributions:
            moment = c.at + period
            while moment <= until:
                found.add(moment)
                moment += period
        return found

    def decay_at(self, at: datetime) -> Decimal | None:
        """The step at `at`: the sum of the losses, or None when nothing decays then."""
        period = self.period()
        assert period is not None and self.decay is not None
        factor = 1 - Decimal(self.decay[0]) / 100
        loss, stepped = Decimal(0), False
        for c in self.contributions:
            age = at - c.at
            if not c.live or age <= timedelta(0) or age % period:
                continue
            stepped = True
            value = c.points * factor ** (age // period)
            if abs(value) < Decimal("0.01"):
                value, c.live = Decimal(0), False
            loss += value - c.value
            c.value = value
        return loss if stepped else None


rules = st.builds(
    Rule,
    event=st.sampled_from(["a", "b"]),
    above=st.none() | st.integers(0, 5),
    points=st.integers(-20, 40).filter(bool),
    cap=st.none() | st.tuples(st.integers(1, 60), st.sampled_from(list(PERIODS))),
)
decays = st.none() | st.tuples(st.sampled_from([10, 25, 50]), st.integers(1, 3),
                               st.sampled_from(list(UNITS)))
# Events come after gaps of whole windows and periods, so that two are often exactly one
# cap window or decay period apart, or on a decay instant: where the SPEC's boundaries decide.
GAPS = [0, 30, 60, 60, 360, 720, 1440, 1440, 2880, 10080]
behaviour = st.lists(st.tuples(st.sampled_from(GAPS), st.sampled_from(["a", "b", "c"]),
                               st.integers(0, 9)), max_size=25).map(
    lambda gaps: [(sum(g for g, _, _ in gaps[:i + 1]), kind, v)
                  for i, (_, kind, v) in enumerate(gaps)])


@EXAMPLES
@given(rule_list=st.lists(rules, min_size=1, max_size=4), decay=decays, acts=behaviour)
def test_score_records_are_the_specs_arithmetic(rule_list: list[Rule],
                                                decay: tuple[int, int, str] | None,
                                                acts: list[tuple[int, str, int]]) -> None:
    decay_line = f"    decay {decay[0]}% every {decay[1]} {decay[2]}\n" if decay else ""
    flow = ("workflow w {\n  score s {\n"
            + "".join(f"    {rule.text()}\n" for rule in rule_list)
            + decay_line + "  }\n  stage only { }\n}\n")
    line_of = [3 + i for i in range(len(rule_list))]
    decay_rule = 3 + len(rule_list)
    raw: list[dict[str, object]] = [{"subscriber": "ann", "type": "subscribed",
                                     "at": instant(START), "properties": {"channels": []}}]
    raw += [{"subscriber": "ann", "type": kind, "at": instant(START + timedelta(minutes=m)),
             "properties": {"v": v}} for m, kind, v in acts]

    oracle = ScoreOracle(rule_list, decay)
    expected: list[tuple[str, Decimal, Decimal, int]] = []
    until = START + HORIZON
    ordered = sorted(((START + timedelta(minutes=m), i, kind, v)
                      for i, (m, kind, v) in enumerate(acts)
                      if timedelta(minutes=m) <= HORIZON),  # later ones are not simulated
                     key=lambda e: (e[0], e[1]))
    moments = sorted({e[0] for e in ordered})
    done = 0
    # Walk instant by instant: events of the instant first, then its decay step. Decay
    # instants come from contributions earned so far, so the walk finds them as it goes.
    now = START
    while True:
        upcoming = [t for t in moments if t >= now]
        steps = [t for t in oracle.boundaries(until) if t >= now]
        candidates = upcoming + steps
        if not candidates:
            break
        now = min(candidates)
        while done < len(ordered) and ordered[done][0] == now:
            _, _, kind, v = ordered[done]
            oracle.earn(now, kind, v, line_of, expected)
            done += 1
        if decay is not None:
            loss = oracle.decay_at(now)
            if loss:  # losses that cancel out change nothing: no record (the README's choice)
                expected.append((instant(now), loss, oracle.total(), decay_rule))
        now += timedelta(seconds=1)

    printed = [r for r in run_simulation(flow, raw) if r["kind"] == "score"]
    got = [(r["at"], Decimal(str(r["delta"])), Decimal(str(r["total"])),
            int(str(r["rule"]).rsplit(":", 1)[1])) for r in printed]
    assert [(at, line) for at, _, _, line in got] == \
        [(at, line) for at, _, _, line in expected], f"{flow}{acts}"

    tolerance = Decimal("1e-20")
    for (at, delta, total, _), (_, want_delta, want_total, _) in zip(got, expected,
                                                                     strict=True):
        assert abs(delta - want_delta) <= tolerance, (at, delta, want_delta, flow)
        assert abs(total - want_total) <= tolerance, (at, total, want_total, flow)


# ------------------------------------------------------------------ drips


def quiet(at: datetime, zone: ZoneInfo, begin: time, end: time) -> bool:
    local = at.astimezone(zone).time()
    return local >= begin or local < end  # windows here all cross midnight


def quiet_end(at: datetime, zone: ZoneInfo, end: time) -> datetime:
    """The first instant after `at` at the window's end, local time (end hours here are
    06:00 to 09:00, which exist once on every day of every zone used)."""
    local = at.astimezone(zone)
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def earliest(moment: datetime, sent: list[datetime], caps: list[tuple[int, timedelta]],
             zone: ZoneInfo, hours: tuple[time, time] | None) -> datetime:
    """The first instant from `moment` outside the quiet `hours` (begin, end) at which every
    cap (count, window) counts fewer than `count` of `sent` in (t - window, t]."""
    while True:
        if hours is not None and quiet(moment, zone, *hours):
            moment = quiet_end(moment, zone, hours[1])
            continue
        later = moment
        for count, window in caps:
            inside = sorted(t for t in sent if moment - window < t <= moment)
            if len(inside) >= count:
                later = max(later, inside[len(inside) - count] + window)
        if later == moment:
            return moment
        moment = later


def drip_oracle(steps: list[tuple[int, int | None]], caps: list[tuple[int, timedelta]],
                zone: ZoneInfo, begin: time, end: time) -> list[tuple[datetime, str]]:
    """(instant, message) of each send. `steps`: (hours, times) of `every H hours, N times`,
    or (hours, None) of `after H hours`, sending push `m{index}`."""
    due: list[tuple[datetime, datetime, int]] = []  # (due, planned at, step)
    for index, (hours, times) in enumerate(steps):
        for k in range(1, (times or 1) + 1):
            nominal = START + k * timedelta(hours=hours)
            # an occurrence is planned when the one before it comes due (the first at entry)
            due.append((nominal, nominal - timedelta(hours=hours), index))
    sent: list[tuple[datetime, str]] = []
    for nominal, _, index in sorted(due):  # postponed ones go in the order they were due
        if nominal > START + HORIZON:
            break
        moment = earliest(max([nominal] + [t for t, _ in sent[-1:]]), [t for t, _ in sent],
                          caps, zone, (begin, end))
        if moment > START + HORIZON:
            break
        sent.append((moment, f"m{index}"))
    return sent


@EXAMPLES
@given(steps=st.lists(st.tuples(st.integers(1, 30), st.none() | st.integers(1, 40)),
                      min_size=1, max_size=3),
       caps=st.lists(st.tuples(st.integers(1, 4), st.sampled_from(list(PERIODS))),
                     min_size=1, max_size=3, unique_by=lambda c: c[1]),
       zone=st.sampled_from(["UTC", "Europe/Warsaw", "America/New_York", "Asia/Kolkata"]),
       begin=st.integers(20, 23), end=st.integers(6, 9),
       leaves=st.none() | st.integers(1, 10 * 48).map(lambda n: timedelta(minutes=30 * n)))
def test_capped_drips_go_out_as_the_spec_says(steps: list[tuple[int, int | None]],
                                              caps: list[tuple[int, str]], zone: str,
                                              begin: int, end: int,
                                              leaves: timedelta | None) -> None:
    """`leaves`: an exit event then, which cancels what is still waiting (SPEC §1.3, §1.5a:
    a postponed send stays tied to its step), also a send due at that very instant (events
    come first)."""
    limit = ", ".join(f"{count} per {period}" for count, period in caps)
    lines = "".join(f"    every {hours} hours, {times} times: send push m{i}\n" if times
                    else f"    after {hours} hours: send push m{i}\n"
                    for i, (hours, times) in enumerate(steps))
    flow = (f'workflow w {{\n  exit on leave\n  timezone "{zone}"\n'
            f"  quiet hours {begin:02d}:00 to {end:02d}:00\n"
            f"  limit push to {limit}\n  stage drip {{\n{lines}  }}\n}}\n"
            + "".join(f'message m{i} push {{ title "Hi" }}\n' for i in range(len(steps))))
    raw: list[dict[str, object]] = [{"subscriber": "ann", "type": "subscribed",
                                     "at": instant(START), "properties": {"channels": ["push"]}}]
    if leaves is not None:
        raw.append({"subscriber": "ann", "type": "leave", "at": instant(START + leaves)})
    got = [(r["at"], r["message"]) for r in run_simulation(flow, raw) if r["kind"] == "send"]
    want = drip_oracle(steps, [(count, PERIODS[period]) for count, period in caps],
                       ZoneInfo(zone), time(begin), time(end))
    if leaves is not None:
        want = [(t, message) for t, message in want if t < START + leaves]
    assert got == [(instant(t), message) for t, message in want], flow


@dataclass(frozen=True)
class PacedWorkflow:
    """One of two workflows sending to the same subscriber: `steps` are (hours, times or
    None for `after`, channel); its own caps per channel, quiet hours and zone."""

    steps: list[tuple[int, int | None, str]]
    caps: dict[str, list[tuple[int, str]]]
    hours: tuple[int, int] | None
    zone: str

    def text(self, name: str) -> str:
        limits = "".join(f"  limit {channel} to "
                         + ", ".join(f"{count} per {period}" for count, period in caps) + "\n"
                         for channel, caps in self.caps.items() if caps)
        quiet_line = (f"  quiet hours {self.hours[0]:02d}:00 to {self.hours[1]:02d}:00\n"
                      if self.hours else "")
        lines = "".join(f"    every {h} hours, {n} times: send {c} {name}{i}\n" if n
                        else f"    after {h} hours: send {c} {name}{i}\n"
                        for i, (h, n, c) in enumerate(self.steps))
        messages = "".join(f'message {name}{i} push {{ title "Hi" }}\n' if c == "push"
                           else f'message {name}{i} email {{ subject "Hi" text "." }}\n'
                           for i, (_, _, c) in enumerate(self.steps))
        return (f'workflow {name} {{\n  timezone "{self.zone}"\n{quiet_line}{limits}'
                f"  stage drip {{\n{lines}  }}\n}}\n{messages}")


def shared_caps_oracle(workflows: dict[str, PacedWorkflow],
                       own_zone: str | None) -> list[tuple[datetime, str]]:
    """(instant, message) of every send, in time order.

    SPEC §1.3: a cap counts every message the subscriber received on that channel, from any
    workflow, but holds back only its own workflow's sends; quiet hours are each workflow's,
    in the subscriber's zone if they have one. SPEC §1.5a: each send goes at the earliest
    instant at or after its due time that fits; at one instant, sends go in the order they
    were due (then planned; at entry workflow a's steps are planned before b's). Time moves
    forward: the send that can go first goes, and the others are looked at again with it.
    """
    end = START + HORIZON
    pending: list[tuple[datetime, datetime, int, int, str, PacedWorkflow]] = []
    for rank, (name, workflow) in enumerate(workflows.items()):
        for index, (hours, times, _) in enumerate(workflow.steps):
            for k in range(1, (times or 1) + 1):
                nominal = START + k * timedelta(hours=hours)
                if nominal <= end:
                    pending.append((nominal, nominal - timedelta(hours=hours), rank, index,
                                    f"{name}{index}", workflow))
    pending.sort(key=lambda p: p[:4])
    sent: dict[str, list[datetime]] = {"push": [], "email": []}
    out: list[tuple[datetime, str]] = []
    now = START
    while pending:
        best: tuple[tuple[datetime, datetime, datetime, int, int], int] | None = None
        for place, (nominal, planned, rank, index, _, workflow) in enumerate(pending):
            if best is not None and nominal > best[0][0]:
                break  # nothing due later can go sooner
            channel = workflow.steps[index][2]
            hours = (time(workflow.hours[0]), time(workflow.hours[1])) if workflow.hours else None
            at = earliest(max(nominal, now), sent[channel],
                          [(count, PERIODS[period]) for count, period in workflow.caps[channel]],
                          ZoneInfo(own_zone or workflow.zone), hours)
            key = (at, nominal, planned, rank, index)
            if best is None or key < best[0]:
                best = (key, place)
        assert best is not None
        now = best[0][0]
        if now > end:
            break
        _, _, _, index, message, workflow = pending.pop(best[1])
        sent[workflow.steps[index][2]].append(now)
        out.append((now, message))
    return out


ZONES = ["UTC", "Europe/Warsaw", "America/New_York", "Asia/Kolkata"]
CAPS = st.lists(st.tuples(st.integers(1, 3), st.sampled_from(list(PERIODS))),
                max_size=2, unique_by=lambda c: c[1])
paced_workflows = st.builds(
    PacedWorkflow,
    steps=st.lists(st.tuples(st.integers(1, 30), st.none() | st.integers(1, 20),
                             st.sampled_from(["push", "email"])), min_size=1, max_size=3),
    caps=st.fixed_dictionaries({"push": CAPS, "email": CAPS}),
    hours=st.none() | st.tuples(st.integers(20, 23), st.integers(6, 9)),
    zone=st.sampled_from(ZONES))


@EXAMPLES
@given(a=paced_workflows, b=paced_workflows, own_zone=st.none() | st.sampled_from(ZONES))
def test_caps_count_every_workflows_sends(a: PacedWorkflow, b: PacedWorkflow,
                                          own_zone: str | None) -> None:
    """Two workflows drip push and e-mail to one subscriber, each under its own caps and
    quiet hours: a cap of one counts the other's sends too, and a workflow without one sends
    whatever the other has sent."""
    flow = a.text("a") + b.text("b")
    attributes = {"timezone": own_zone} if own_zone else {}
    raw: list[dict[str, object]] = [{
        "subscriber": "ann", "type": "subscribed", "at": instant(START),
        "properties": {"channels": ["push", "email"], "email": "ann@example.com",
                       "attributes": attributes}}]
    got = [(r["at"], r["message"]) for r in run_simulation(flow, raw) if r["kind"] == "send"]
    want = shared_caps_oracle({"a": a, "b": b}, own_zone)
    assert got == [(instant(t), message) for t, message in want], flow


# ------------------------------------------------------------------ stages


@dataclass(frozen=True)
class Move:
    """A transition: `when s >= N`, `when s < N`, `on E`, `after H`, `idle H`."""
    kind: str
    target: int
    value: int | str

    def text(self) -> str:
        to = f"go to s{self.target}"
        match self.kind:
            case "at_least":
                return f"{to} when s >= {self.value}"
            case "below":
                return f"{to} when s < {self.value}"
            case "on":
                return f"{to} on {self.value}"
            case "after":
                return f"{to} after {self.value} hours"
            case _:
                return f"{to} when idle for {self.value} hours"


@dataclass(frozen=True)
class Step:
    """`on enter`, `after H [unless E]` or `every H, N times`, sending webhook `message`."""
    kind: str
    hours: int
    unless: str | None
    times: int
    message: str

    def text(self) -> str:
        send = f"send webhook {self.message}"
        match self.kind:
            case "enter":
                return f"on enter: {send}"
            case "after":
                unless = f" unless {self.unless}" if self.unless else ""
                return f"after {self.hours} hours{unless}: {send}"
            case _:
                return f"every {self.hours} hours, {self.times} times: {send}"


@dataclass
class Timer:
    due: datetime
    order: int
    step: Step | None
    move: Move | None
    occurrence: int = 1


class JourneyOracle:
    """One subscriber through stages s0..sN, read from SPEC §1.5 and §1.5a."""

    def __init__(self, stages: list[tuple[list[Step], list[Move]]], points: dict[str, int]):
        self.stages = stages
        self.points = points
        self.score = 0
        self.out: list[tuple[str, str, str]] = []
        self.planned = 0
        self.timers: list[Timer] = []
        self.stage = -1
        self.entered_at = START
        self.entered_after = 0  # events processed before the entry
        self.last_event: datetime | None = None
        self.seen: list[tuple[int, str]] = []  # (position, type) of events in this stage

    def _plan(self, due: datetime, step: Step | None, move: Move | None,
              occurrence: int = 1) -> None:
        self.planned += 1
        self.timers.append(Timer(due, self.planned, step, move, occurrence))

    def enter(self, stage: int, at: datetime, position: int, visited: set[int]) -> None:
        self.stage, self.entered_at, self.entered_after = stage, at, position
        self.timers, self.seen = [], []
        visited.add(stage)
        self.out.append((instant(at), "enter", f"s{stage}"))
        steps, moves = self.stages[stage]
        for step in steps:
            if step.kind == "enter":
                self.out.append((instant(at), "send", step.message))
        for step in steps:
            if step.kind != "enter":
                self._plan(at + timedelta(hours=step.hours), step, None)
        for move in moves:
            if move.kind in ("after", "idle"):
                self._plan(at + timedelta(hours=int(move.value)), None, move)
        self.try_moves(at, position, None, visited)

    def holds(self, move: Move, event: str | None, at: datetime, timer: bool) -> bool:
        """A timed move holds at its instant only in its own timer's evaluation: events and
        due work planned before it come first at that instant (SPEC §1.5a)."""
        match move.kind:
            case "at_least":
                return self.score >= int(move.value)
            case "below":
                return self.score < int(move.value)
            case "on":
                return event == move.value
            case "after":
                deadline = self.entered_at + timedelta(hours=int(move.value))
            case _:
                deadline = self.idle_since() + timedelta(hours=int(move.value))
        return at > deadline or (timer and at == deadline)

    def try_moves(self, at: datetime, position: int, event: str | None,
                  visited: set[int], timer: bool = False) -> None:
        """Transitions in written order, the first that holds wins (SPEC §1.5)."""
        for move in self.stages[self.stage][1]:
            if self.holds(move, event, at, timer):
                if move.target not in visited:
                    self.enter(move.target, at, position, visited)
                return

    def event(self, at: datetime, kind: str, position: int) -> None:
        """Scored, then enrol (`subscribed`) or exit (`x`), then the stage's transitions."""
        self.score += self.points.get(kind, 0)  # enrolled or not (SPEC §1.4)
        self.last_event = at
        self.seen.append((position, kind))
        if self.stage < 0:
            if kind == "subscribed":  # (re-)entry, at the start stage (SPEC §1.5a)
                self.enter(0, at, position + 1, set())
        elif kind == "x":  # exit: pending steps and timers go with the enrolment
            self.out.append((instant(at), "exit", "x"))
            self.stage, self.timers = -1, []
        else:
            self.try_moves(at, position + 1, kind, {self.stage})

    def idle_since(self) -> datetime:
        return max(self.entered_at, self.last_event or self.entered_at)

    def idle_due(self, timer: Timer) -> datetime:
        assert timer.move is not None
        return self.idle_since() + timedelta(hours=int(timer.move.value))

    def next_due(self) -> Timer | None:
        def due(timer: Timer) -> datetime:
            return self.idle_due(timer) if timer.move and timer.move.kind == "idle" else timer.due
        return min(self.timers, key=lambda t: (due(t), t.order), default=None)

    def run_due(self, timer: Timer, at: datetime, position: int) -> None:
        self.timers.remove(timer)
        if timer.step is not None:
            step = timer.step
            cancelled = step.unless is not None and any(
                p >= self.entered_after and kind == step.unless for p, kind in self.seen)
            if not cancelled:
                self.out.append((instant(at), "send", step.message))
            if step.kind == "every" and timer.occurrence < step.times:
                self._plan(self.entered_at + (timer.occurrence + 1) * timedelta(
                    hours=step.hours), step, None, timer.occurrence + 1)
        self.try_moves(at, position, None, {self.stage}, timer=timer.move is not None)


messages = iter(range(1_000_000))
steps_strategy = st.builds(
    Step, kind=st.sampled_from(["enter", "after", "every"]), hours=st.integers(1, 6),
    unless=st.none() | st.sampled_from(["a", "b", "c"]), times=st.integers(1, 4),
    message=st.just(""))


@st.composite
def journeys_strategy(draw: st.DrawFn) -> tuple[list[tuple[list[Step], list[Move]]],
                                                list[tuple[int, str]]]:
    count = draw(st.integers(2, 4))
    stages = []
    for index in range(count):
        steps = [Step(s.kind, s.hours, s.unless if s.kind == "after" else None, s.times,
                      f"m{index}_{n}")
                 for n, s in enumerate(draw(st.lists(steps_strategy, max_size=3)))]
        moves = draw(st.lists(st.builds(
            Move, kind=st.sampled_from(["at_least", "below", "on", "after", "idle"]),
            target=st.integers(0, count - 1).filter(lambda t, i=index: t != i),
            value=st.integers(-10, 40)), max_size=3))
        moves = [Move(m.kind, m.target,
                      ["a", "b", "c"][abs(int(m.value)) % 3] if m.kind == "on"
                      else 1 + abs(int(m.value)) % 8 if m.kind in ("after", "idle")
                      else m.value) for m in moves]
        stages.append((steps, moves))
    gaps = draw(st.lists(st.tuples(st.sampled_from([0, 30, 60, 60, 120, 180, 300]),
                                   st.sampled_from(["a", "b", "c", "a", "b", "c", "x",
                                                    "subscribed"])), max_size=20))
    acts = [(sum(g for g, _ in gaps[:i + 1]), kind) for i, (_, kind) in enumerate(gaps)]
    return stages, acts


@MORE_EXAMPLES
@given(journey=journeys_strategy(),
       points=st.tuples(st.integers(-10, 30), st.integers(-10, 30)))
def test_stage_moves_and_timed_steps_are_the_specs(
        journey: tuple[list[tuple[list[Step], list[Move]]], list[tuple[int, str]]],
        points: tuple[int, int]) -> None:
    stages, acts = journey
    flow = (f"workflow w {{\n  exit on x\n"
            f"  score s {{ on a {points[0]:+d}  on b {points[1]:+d} }}\n"
            + "".join(f"  stage s{i} {{\n"
                      + "".join(f"    {step.text()}\n" for step in steps)
                      + "".join(f"    {move.text()}\n" for move in moves) + "  }\n"
                      for i, (steps, moves) in enumerate(stages)) + "}\n"
            + "".join(f'message {step.message} webhook {{ url "https://crm.example/h" }}\n'
                      for steps, _ in stages for step in steps))
    horizon = START + timedelta(days=2)
    raw: list[dict[str, object]] = [{"subscriber": "ann", "type": "subscribed",
                                     "at": instant(START), "properties": {"channels": []}}]
    raw += [{"subscriber": "ann", "type": kind, "at": instant(START + timedelta(minutes=m)),
             "properties": {"channels": []} if kind == "subscribed" else {}}
            for m, kind in acts if timedelta(minutes=m) <= timedelta(days=2)]

    oracle = JourneyOracle(stages, {"a": points[0], "b": points[1]})
    oracle.event(START, "subscribed", 0)
    queue = [(START + timedelta(minutes=m), kind) for m, kind in acts
             if timedelta(minutes=m) <= timedelta(days=2)]
    position = 1
    while True:
        timer = oracle.next_due()
        due = None if timer is None else (
            oracle.idle_due(timer) if timer.move and timer.move.kind == "idle" else timer.due)
        if queue and (due is None or queue[0][0] <= due):
            at, kind = queue.pop(0)
            oracle.event(at, kind, position)
            position += 1
        elif timer is not None and due is not None and due <= horizon:
            oracle.run_due(timer, due, position)
        else:
            break

    got = [(r["at"], r["kind"], r.get("stage") or r.get("message") or r.get("reason"))
           for r in run_simulation(flow, raw, horizon)
           if r["kind"] in ("enter", "send", "exit")]
    assert got == oracle.out, flow + "\n" + "\n".join(f"{r}" for r in raw)


# ------------------------------------------------------------------ consent


CONSENT_EVENTS = st.sampled_from([
    ("subscribed", {"channels": ["push"]}),
    ("subscribed", {"channels": ["email"], "email": "ann@example.com"}),
    ("subscribed", {"channels": ["push", "email"]}),
    ("subscribed", {"channels": []}),
    ("unsubscribed", {}),
    ("unsubscribed", {"channels": ["push"]}),
    ("unsubscribed", {"channels": ["email"]}),
    ("attributes", {"email": "ann@example.org"}),
    ("attributes", {"first_name": "Ann"}),
])


@EXAMPLES
@given(changes=st.lists(st.tuples(st.integers(1, 40), CONSENT_EVENTS), max_size=12),
       push_hours=st.integers(1, 9), email_hours=st.integers(1, 9),
       greet=st.booleans())
def test_sends_and_skip_reasons_follow_consent_address_and_rendering(
        changes: list[tuple[int, tuple[str, dict[str, object]]]], push_hours: int,
        email_hours: int, greet: bool) -> None:
    """SPEC §2 and §1.5a "Why a send is skipped": consent, then address, then rendering."""
    name = "{{ subscriber.first_name }}" if greet else "you"  # no default: may not render
    flow = ("workflow w {\n  stage s {\n"
            f"    every {push_hours} hours: send push p\n"
            f"    every {email_hours} hours: send email e\n  }}\n}}\n"
            f'message p push {{ title "Hi {name}" }}\n'
            'message e email { subject "News" text "Hi" }\n')
    raw: list[dict[str, object]] = [{"subscriber": "ann", "type": "subscribed",
                                     "at": instant(START), "properties": {"channels": []}}]
    at = START
    timed: list[tuple[datetime, str, dict[str, object]]] = []
    for hours_later, (kind, properties) in changes:
        at += timedelta(hours=hours_later, minutes=30)  # never on a send's instant
        timed.append((at, kind, properties))
        raw.append({"subscriber": "ann", "type": kind, "at": instant(at),
                    "properties": properties})
    until = START + timedelta(days=2)

    consent = {"push": False, "email": False}
    attributes: dict[str, object] = {}
    expected: list[tuple[str, str, str, str]] = []
    # (due, planned at, written): at one instant due work runs in the order it was planned
    due = sorted([(START + k * timedelta(hours=hours), START + (k - 1) * timedelta(hours=hours),
                   index, channel)
                  for index, (hours, channel) in enumerate([(push_hours, "push"),
                                                            (email_hours, "email")])
                  for k in range(1, 48 // hours + 1)])
    pending = list(timed)
    for moment, _, _, channel in due:
        while pending and pending[0][0] <= moment:
            _, kind, properties = pending.pop(0)
            if kind == "subscribed":
                for granted in properties["channels"]:  # type: ignore[attr-defined]
                    consent[granted] = True
                if "email" in properties:
                    attributes["email"] = properties["email"]
            elif kind == "unsubscribed":
                for withdrawn in properties.get("channels", ["push", "email"]):  # type: ignore[attr-defined]
                    consent[withdrawn] = False
            else:
                attributes.update(properties)
        message = "p" if channel == "push" else "e"
        if not consent[channel]:
            outcome = "no_consent"
        elif channel == "email" and "email" not in attributes:
            outcome = "no_address"
        elif channel == "push" and greet and "first_name" not in attributes:
            outcome = "render_error"
        else:
            outcome = "sent"
        expected.append((instant(moment), channel, message, outcome))

    got = [(r["at"], r["channel"], r["message"],
            "sent" if r["kind"] == "send" else r["reason"])
           for r in run_simulation(flow, raw, until) if r["kind"] in ("send", "skip")]
    assert got == expected, f"{flow}{raw}"
