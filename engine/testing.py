"""Test your own workflows in frozen time: the `nurture` pytest fixture.

Installed with nurture and registered through the `pytest11` entry point (`engine.pytest_plugin`,
which imports this module when a test first asks for the fixture), so a team's tests can use it
without any set-up::

    def test_a_diamond_lover_gets_the_discount(nurture):
        shop = nurture.load("workflows/jewelry.flow", start="2026-03-02T09:00:00Z")
        shop.event("ann", "subscribed", channels=["push"])
        shop.event("ann", "page_view", url="/diamonds/rings")
        shop.advance(minutes=10)
        assert shop.stage("ann") == "interest"
        assert [s.get("message") for s in shop.sent("ann")] == ["welcome"]

Time is frozen with freezegun at `start` and moves only with `advance`/`advance_to`, which run
the engine's `tick` — the same engine, on a fresh SQLite database per test, with a recording
channel. Push needs consent only, as in the simulator (`live_push=True` also demands a
browser subscription, added with `add_push_subscription`).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from channels.recording import RecordingChannel
from dsl import model as m
from dsl.diagnostics import closest, did_you_mean
from dsl.loader import load_paths
from dsl.validate import misspelt_event
from engine.events import Event, parse_event, parse_instant
from engine.leads import Lead, leads, ranking
from engine.processor import Engine, IngestResult, TickResult
from engine.records import KINDS, Record, tidy
from engine.state import SubscriberState
from engine.status import SubscriberStatus, subscriber_status
from engine.store import push_subscriptions, queries, states
from engine.store.database import Database, open_database
from engine.store.queries import LedgerLine
from engine.waiting import WorkflowWaiting, read_waiting


class WorkflowLoadError(AssertionError):
    """The workflow files do not load; the message lists the problems as `nurture check` does."""


class FlowTest:
    """One test's run of the engine over some workflow files, in frozen time."""

    def __init__(self, paths: tuple[str, ...], start: datetime | None, folder: Path,
                 live_push: bool, database: str | None = None) -> None:
        from freezegun import freeze_time

        self.paths = paths
        self.live_push = live_push
        self.catalog = _loaded(paths)
        _import_date_subclasses()
        teams = _teams_clock()
        self._freezer: Any = None
        if teams is not None:
            # The test froze time itself (`@freeze_time`): the run moves that clock rather
            # than nest one of its own, which would outlive the decorator's (freezegun's
            # freezes must stop in the reverse order they started), and the code the test
            # drives sees the engine's time.
            self._frozen = teams
            if start is not None:
                teams.move_to(start)
        else:
            # pytest's own timing reads the real clock, so that `--durations` stays true
            self._freezer = freeze_time(start or DEFAULT_START, ignore=["_pytest.timing"])
            self._frozen = self._freezer.start()
            _OURS.add(id(self._frozen))
        self.database: Database = open_database(
            database or f"sqlite:///{folder / 'nurture-test.db'}", durable=False)
        self.records: list[Record] = []
        self._calls: list[int] = []
        """For each record, the number of the engine call that made it (see `timeline`)."""
        self._call = 0
        self.channel = RecordingChannel()
        self.engine = self._engine()
        self._seq = 0
        self._named: set[str] = set()
        """Subscribers the test's events were about: asking about another is a typo."""

    def _engine(self) -> Engine:
        return _CountedEngine(self._next_call, self.catalog, self.database,
                              on_record=self._keep,
                              channels={"push": self.channel, "email": self.channel,
                                        "webhook": self.channel},
                              push_needs_subscription=self.live_push, outbox=False)

    def _next_call(self) -> None:
        self._call += 1

    def _keep(self, record: Record) -> None:
        self.records.append(record)
        self._calls.append(self._call)

    def reload(self, *paths: str | Path) -> None:
        """Load the workflow files again (these, or the same ones), as the service does when
        a file changes: subscribers in flight go on under the edited workflows."""
        if paths:
            self.paths = tuple(str(p) for p in paths)
        self.catalog = _loaded(self.paths)
        self.engine = self._engine()

    def close(self) -> None:
        self.database.dispose()
        if self._freezer is not None:
            _OURS.discard(id(self._frozen))
            self._freezer.stop()

    # ------------------------------------------------------------ driving

    @property
    def now(self) -> datetime:
        return datetime.now(UTC)

    def event(self, subscriber: str, type: str, at: str | datetime | None = None,
              id: str | None = None, **properties: Any) -> IngestResult:
        """Send one event (at the current frozen time unless `at` is given)."""
        raw: dict[str, Any] = {"subscriber": subscriber, "type": type, "properties": properties}
        if at is not None:
            raw["at"] = at if isinstance(at, str) else at.isoformat()
        if id is not None:
            raw["id"] = id
        return self.events([raw])

    def events(self, raw_events: list[dict[str, Any]]) -> IngestResult:
        """Send several events, given as the JSON objects of SPEC §2."""
        parsed = []
        for raw in raw_events:
            self._seq += 1
            parsed.append(parse_event(raw, self._seq, default_at=self.now))
        for event in parsed:
            self._check_event_type(event.type)
        self._named.update(event.subscriber for event in parsed)
        return self.engine.ingest(parsed)

    def _check_event_type(self, name: str) -> None:
        """An event type that no loaded workflow names, spelt nearly like one that is named
        (or like one of nurture's own), is a typo in the test: sent as it is it changes
        nothing, and a test that expects nothing to happen would pass for the wrong reason.
        Other names go through: a site sends events of any name, and any event ends idleness."""
        meant = misspelt_event(name, self.catalog)
        if meant is not None:
            raise ValueError(f"no loaded workflow names event '{name}'; did you mean "
                             f"'{meant}'? (sent as it is, it would change nothing)")

    def advance(self, delta: timedelta | None = None, **units: float) -> None:
        """Move frozen time forward (`advance(days=2)`) and do all work due by then.

        Events sent at the current instant are processed at once, but work due exactly now
        waits for `advance()` (even `advance()` with no argument): more events of this instant
        may follow, and events come before the due work of their instant (SPEC §1.5a).
        """
        wrong = [unit for unit in units if unit not in UNITS]
        if wrong:
            raise ValueError(f"advance() takes {', '.join(f'{u}=' for u in UNITS)}, not "
                             f"'{wrong[0]}='{did_you_mean(wrong[0], UNITS)}")
        step = (delta or timedelta()) + timedelta(**units)
        self.advance_to(self.now + step)

    def advance_to(self, instant: str | datetime) -> None:
        target = parse_instant(instant, "instant") if isinstance(instant, str) else instant
        if target < self.now:
            raise ValueError(f"time cannot go back from {self.now} to {target}")
        self._frozen.move_to(target)
        self.engine.tick()

    def add_push_subscription(self, subscriber: str, endpoint: str,
                              p256dh: str = "test-key", auth: str = "test-auth") -> None:
        with self.database.transaction() as connection:
            push_subscriptions.add(connection, subscriber, endpoint, p256dh, auth, self.now)

    # ------------------------------------------------------------ what happened

    def timeline(self, subscriber: str | None = None, kind: str | None = None,
                 workflow: str | None = None) -> list[Record]:
        """Records in time order, optionally only one subscriber's, kind's or workflow's.

        At one instant, what one call of the engine did is in the simulator's order (events
        first, SPEC §1.5a), and what a later call did comes after it: a run is live, so an
        event sent after `advance()` did the work due at its instant comes after that work.
        """
        if subscriber is not None:
            self._check_subscriber(subscriber)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"no record is of kind '{kind}'{did_you_mean(kind, KINDS)} "
                             f"(kinds: {', '.join(KINDS)})")
        if workflow is not None:
            self._workflow(workflow, stored={r.workflow for r in self.records})
        made = sorted(((r.at, call, *r.key), index)
                      for index, (r, call) in enumerate(zip(self.records, self._calls,
                                                            strict=True))
                      if (subscriber is None or r.subscriber == subscriber)
                      and (kind is None or r.kind == kind)
                      and (workflow is None or r.workflow == workflow))
        return [self.records[index] for _, index in made]

    def sent(self, subscriber: str | None = None, channel: str | None = None) -> list[Record]:
        if channel is not None and channel not in m.CHANNELS:
            raise ValueError(f"no channel '{channel}'{did_you_mean(channel, m.CHANNELS)} "
                             f"(channels: {', '.join(m.CHANNELS)})")
        return [r for r in self.timeline(subscriber, "send")
                if channel is None or r.get("channel") == channel]

    def skipped(self, subscriber: str | None = None) -> list[Record]:
        return self.timeline(subscriber, "skip")

    def stage(self, subscriber: str, workflow: str | None = None) -> str | None:
        """The subscriber's current stage, None when not enrolled."""
        with self.database.transaction() as connection:
            key = queries.subscriber_key(connection, subscriber)
            self._check_subscriber(subscriber, stored=key is not None)
            stages = queries.stages(connection, key) if key is not None else {}
        name = self._workflow(workflow, stored=stages)
        return stages.get(name)

    def score(self, subscriber: str, name: str, workflow: str | None = None) -> int | Decimal:
        """A score's total (0 for a subscriber it never counted). A score that no loaded
        workflow declares and nothing stored has is a mistake in the test, not a 0."""
        with self.database.transaction() as connection:
            key = queries.subscriber_key(connection, subscriber)
            self._check_subscriber(subscriber, stored=key is not None)
            totals = queries.scores(connection, key) if key is not None else {}
        owner = self._workflow(workflow, stored={w for w, _ in totals})
        self._check_score(owner, name, stored=totals)
        return tidy(totals.get((owner, name), Decimal(0)))

    def tags(self, subscriber: str) -> set[str]:
        with self.database.transaction() as connection:
            key = queries.subscriber_key(connection, subscriber)
            self._check_subscriber(subscriber, stored=key is not None)
            return queries.tags(connection, key) if key is not None else set()

    def attributes(self, subscriber: str) -> dict[str, Any]:
        """The subscriber's attributes as stored (those events gave, and `bounced_email`)."""
        with self.database.transaction() as connection:
            key = queries.subscriber_key(connection, subscriber)
            self._check_subscriber(subscriber, stored=key is not None)
            return queries.attributes(connection, key) if key is not None else {}

    def status(self, subscriber: str) -> SubscriberStatus:
        """Where the subscriber stands and what is planned next, as `nurture status` shows
        it: each workflow's stage, scores, transitions (whether each holds, and why) and the
        work planned with when (`.enrolments[0].planned[0].at`)."""
        with self.database.reading() as connection:
            found = states.peek(connection, [subscriber], self.engine.plan)
        self._check_subscriber(subscriber, stored=subscriber in found)
        state = found.get(subscriber) or SubscriberState(subscriber, None, {}, self.now)
        return subscriber_status(self.engine.plan, state, self.live_push)

    def waiting(self, workflow: str | None = None, stage: str | None = None
                ) -> WorkflowWaiting:
        """What the workflow's subscribers wait for in each stage, as `nurture waiting`
        counts it (`.stages[1].transitions[0].comparisons[0].would_move`); `stage` narrows
        it to one stage, which the workflow must have (else `UnknownStage`, a ValueError)."""
        name = self._workflow(workflow)
        with self.database.reading() as connection:
            return read_waiting(connection, self.engine.plan, name,
                                () if stage is None else (stage,))

    def leads(self, workflow: str | None = None, stage: str | None = None,
              by: str | None = None, limit: int | None = None,
              since: str | datetime | None = None) -> list[Lead]:
        """The subscribers of the workflow (or of one stage; who entered their stage at or
        after `since`, when given), highest `by` score first (the first score declared when
        not given), as `nurture leads` lists them (`.subscriber`, `.stage`,
        `.scores["engagement"]`, `.tags`)."""
        catalog = {w.name: w for w in self.catalog.workflows}
        name = self._workflow(workflow)
        start = parse_instant(since, "since") if isinstance(since, str) else since
        with self.database.reading() as connection:
            asked = ranking(connection, catalog[name], () if stage is None else (stage,), by,
                            since=start)
            return list(leads(connection, asked, limit))

    def ledger(self, subscriber: str, name: str | None = None,
               workflow: str | None = None) -> list[LedgerLine]:
        """Every change of the subscriber's scores, with its rule and event."""
        with self.database.transaction() as connection:
            key = queries.subscriber_key(connection, subscriber)
            self._check_subscriber(subscriber, stored=key is not None)
            lines = queries.ledger(connection, key) if key is not None else []
        wanted = self._workflow(workflow, {line.workflow for line in lines}) \
            if workflow or len(self.catalog.workflows) == 1 else None
        if name is not None and wanted is not None:
            self._check_score(wanted, name, {(line.workflow, line.score) for line in lines})
        return [line for line in lines if (name is None or line.score == name)
                and (wanted is None or line.workflow == wanted)]

    def _check_subscriber(self, subscriber: str, stored: bool = False) -> None:
        """A subscriber that no event of the test was about (nothing stored or recorded
        either), spelt nearly like one that events were about, is a typo in the test: the 0,
        None or empty list it would get could make an assertion pass. One far from all is
        answered (a score starts at 0 before anyone has been seen)."""
        if stored or subscriber in self._named or any(r.subscriber == subscriber
                                                      for r in self.records):
            return
        meant = closest(subscriber, self._named | {r.subscriber for r in self.records})
        if meant is not None:
            raise ValueError(f"no event of this test was about subscriber '{subscriber}'; "
                             f"did you mean '{meant}'?")

    def _workflow(self, name: str | None, stored: Collection[str] = ()) -> str:
        """The workflow a question is about: the one named, which must be loaded (or still
        in the subscriber's stored data, after an edit removed it), or the only one."""
        names = [w.name for w in self.catalog.workflows]
        if name is None:
            if len(names) != 1:
                raise ValueError(f"several workflows are loaded ({', '.join(names)}): name "
                                 "one")
            return names[0]
        if name not in names and name not in stored:
            raise ValueError(f"no workflow '{name}' is loaded{did_you_mean(name, names)} "
                             f"(loaded: {', '.join(names)})")
        return name

    def _check_score(self, workflow: str, name: str,
                     stored: Collection[tuple[str, str]]) -> None:
        """A score the workflow does not declare, and the subscriber's stored data does not
        hold either (an edit may have removed it), is a typo in the test."""
        if (workflow, name) in stored:
            return
        declared = next(([s.name for s in w.scores] for w in self.catalog.workflows
                         if w.name == workflow), None)
        if declared is not None and name not in declared:
            raise ValueError(f"workflow '{workflow}' has no score '{name}'"
                             f"{did_you_mean(name, declared)} (its scores: "
                             f"{', '.join(declared) or 'none'})")


UNITS = ("weeks", "days", "hours", "minutes", "seconds")
"""What `advance()` takes (`timedelta`'s own names)."""

DATE_SUBCLASSING_MODULES = ("pydantic.v1",)
"""Modules that subclass `datetime.date` as they are imported."""

DEFAULT_START = datetime(2026, 1, 5, 9, tzinfo=UTC)
"""Where a run's time starts when `load` is given no `start` and the test has not frozen time
itself."""

_OURS: set[int] = set()
"""The clocks (freezegun's factories) that runs of this process froze, by `id`."""


def _teams_clock() -> Any:
    """The clock of a `freeze_time` that the test itself started (a decorator, a `with`),
    or None. (freezegun keeps its active clocks in `freezegun.api.freeze_factories`, a stack;
    the runs' own are told apart by `_OURS`.)"""
    from freezegun import api

    stack = getattr(api, "freeze_factories", None)
    if not stack or id(stack[-1]) in _OURS:
        return None
    return stack[-1]


class _CountedEngine(Engine):
    """The engine, telling the run each time a call that may make records begins: at one
    instant, the run's timeline puts what a later call made after what an earlier one made,
    which the records' own keys (the simulator's order within one pass) cannot tell."""

    def __init__(self, on_call: Callable[[], None], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_call = on_call

    def ingest(self, events: Iterable[Event]) -> IngestResult:
        self._on_call()
        return super().ingest(events)

    def tick(self, stop: Callable[[], bool] | None = None) -> TickResult:
        self._on_call()
        return super().tick(stop)

    def move(self, workflow: str, source: str, target: str) -> int:
        self._on_call()
        return super().move(workflow, source, target)


def _import_date_subclasses() -> None:
    """Import, before time is frozen, the modules that subclass `date` when imported.

    Under freezegun `date` is a fake class with its own metaclass, and a module that defines
    `class X(date, metaclass=...)` while time is frozen fails with "metaclass conflict".
    FastAPI imports `pydantic.v1` the first time it builds a route, so a team whose own test
    builds its FastAPI app inside this fixture failed, but only when nothing had imported
    `pydantic.v1` before. Imported now, the real `date` is subclassed and the module stays
    loaded.
    """
    for name in DATE_SUBCLASSING_MODULES:
        # ImportError: not installed in the team's environment, nothing to protect;
        # TypeError: time is frozen already (a `@freeze_time` of the team's own), too late
        # here, so the fixture does this at its set-up, before the test's body runs
        with contextlib.suppress(ImportError, TypeError):
            importlib.import_module(name)


def _loaded(paths: tuple[str, ...]) -> m.Catalog:
    result = load_paths(paths)
    if result.catalog is None:
        raise WorkflowLoadError("\n".join(str(d) for d in result.diagnostics))
    return result.catalog


class NurtureFixture:
    """What the `nurture` fixture gives a test: `load(...)` starts a run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.runs: list[FlowTest] = []

    def load(self, *paths: str | Path, start: str | datetime | None = None,
             live_push: bool = False, database: str | None = None) -> FlowTest:
        """A run of these workflow files; `database` is an empty database's URL (default: a
        new SQLite file of the test's own). Time starts at `start`; without it, where a
        `freeze_time` of the test's own stands, else at 2026-01-05 09:00 UTC."""
        instant = parse_instant(start, "start") if isinstance(start, str) else start
        folder = self.folder / f"run-{len(self.runs)}"
        folder.mkdir()
        run = FlowTest(tuple(str(p) for p in paths), instant, folder, live_push, database)
        self.runs.append(run)
        return run


def fixture_runs(tmp_path: Path) -> Iterator[NurtureFixture]:
    """The `nurture` fixture's body (`engine.pytest_plugin` registers it): a `NurtureFixture`
    for the test, its runs closed after it."""
    _import_date_subclasses()  # before a `@freeze_time` on the test freezes time
    fixture = NurtureFixture(tmp_path)
    yield fixture
    for run in reversed(fixture.runs):
        run.close()
