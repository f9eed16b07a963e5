"""What a running service is made of: settings, the database, keys, and the current engine.

The HTTP API and the scheduler's jobs share one `Runtime`. Workflows are reloaded as a whole:
the new files are loaded and checked, and only if they check clean is a new engine built and
swapped in (a broken edit is reported and the last good version keeps running).
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta
from pathlib import Path

from channels.endpoints import PushEndpointPolicy
from channels.tokens import Signer
from dsl import model as m
from dsl.loader import LoadResult, load_paths
from dsl.validate import misspelt_event
from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.events import Event
from engine.group_commit import GroupCommit
from engine.kept_keys import refuse_lost_keys
from engine.metrics import Metrics
from engine.outage import Outage
from engine.processor import Engine, IngestResult
from engine.store import queries
from engine.store.database import Database, DatabaseUnavailable

log = logging.getLogger("nurture.runtime")
QUARANTINE = timedelta(hours=1)
"""How long the service puts off the due work of a subscriber whose processing fails."""
MAX_TYPES_SEEN = 10_000
"""Event types remembered by `misspelt_type`: a site's own vocabulary fits."""


class Runtime:
    def __init__(self, settings: Settings, database: Database, catalog: m.Catalog,
                 clock: Clock | None = None) -> None:
        self.settings = settings
        self.database = database
        self.clock: Clock = clock or SystemClock()
        refuse_lost_keys(settings, database)
        try:
            settings.keep_for_erasures()
        except OSError as problem:  # a read-only keys folder: the service still starts
            log.warning("could not copy the earlier signing secrets into %s (%s): retiring one "
                        "of them would forget the erasures made under it",
                        settings.erasure_secrets_file, problem)
        self.signer = Signer(settings.signing_secret(create=True), settings.earlier_secrets(),
                             settings.retired_secrets())
        self.vapid = settings.vapid_key(create=True)
        self.api_keys = settings.api_keys(create=True)
        self.api_key = self.api_keys[0]
        self.policy = PushEndpointPolicy.from_hosts(settings.push_allow_hosts)
        self.metrics = Metrics(self.backlog, self.clock.now)
        self.outage = Outage(self.metrics.database_failures)
        self._lock = threading.Lock()
        self._engine = self._build(catalog)
        self._types_seen: tuple[m.Catalog, dict[str, str | None]] = (catalog, {})
        """Event types looked at for a near miss (and the type each nearly spells), and the
        workflows they were compared with."""
        self.warn_of_stranded(catalog)
        self.files_seen = self._files_signature()
        self.groups = GroupCommit(lambda events: self.engine.ingest(events))
        """API requests that wait for the writer are written together (group commit)."""

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def catalog(self) -> m.Catalog:
        return self._engine.plan.catalog

    def _build(self, catalog: m.Catalog) -> Engine:
        return Engine(catalog, self.database, clock=self.clock, quarantine=QUARANTINE,
                      fingerprint=self.erased_ids, late_limit=self.settings.late_limit,
                      cache_size=self.settings.state_cache)

    def erased_id(self, subscriber: str) -> str:
        """What erasure keeps of a subscriber id (see `store.subscribers.erase`)."""
        return self.signer.fingerprint("erased", subscriber)

    def erased_ids(self, subscriber: str) -> tuple[str, ...]:
        """What erasure kept of a subscriber id under the current secret or an earlier one."""
        return self.signer.fingerprints("erased", subscriber)

    def ingest(self, events: list[Event]) -> IngestResult:
        result = self.groups.submit(events)
        if result.accepted:
            self.outage.worked()
        self.metrics.events.inc(result.accepted)
        self.metrics.duplicates.inc(len(result.duplicates))
        return result

    def misspelt_type(self, name: str) -> str | None:
        """The event type that `name` nearly spells, when no workflow names it (`purchse` for
        `purchase`), else None; the operator is told in the log the first time a type is
        looked at while these workflows run. (The events are taken as they are: a site may
        send events of any name.)"""
        catalog, meant_by_type = self._types_seen
        if catalog is not self.catalog:  # reloaded: names the workflows use may have changed
            catalog, meant_by_type = self._types_seen = (self.catalog, {})
        if name in meant_by_type:
            return meant_by_type[name]
        meant = misspelt_event(name, catalog)
        if len(meant_by_type) < MAX_TYPES_SEEN:
            meant_by_type[name] = meant
            if meant is not None:
                log.warning("events of type '%s' arrive, and no workflow names that type; did "
                            "you mean '%s'? (said once until the workflows are reloaded)",
                            name, meant, extra={"event_type": name, "meant": meant})
        return meant

    def reload(self) -> LoadResult:
        """Load the workflow files again; swap them in only if they check clean."""
        with self._lock:
            # Taken before reading, so that an edit made while loading is seen next time;
            # recorded only once the outcome is logged and in force, so that whoever waits
            # for `files_changed()` to settle finds both.
            signature = self._files_signature()
            result = load_paths([self.settings.workflows])
            if result.catalog is None:
                for problem in result.errors:
                    log.error("workflow reload refused: %s", problem,
                              extra={"diagnostic": str(problem)})
                log.error("workflow reload refused: the last good workflows keep running")
            else:
                self._engine = self._build(result.catalog)
                log.info("workflows reloaded", extra={"files": len(result.files),
                                                      "workflows": len(result.catalog.workflows)})
                try:
                    self.warn_of_stranded(result.catalog)
                except DatabaseUnavailable as problem:
                    # The new workflows are in force; failing here would only reload them
                    # again at every look at the files while the database is down.
                    log.warning("workflows reloaded, but who is left in a removed stage could "
                                "not be looked up: %s", problem)
            self.files_seen = signature
            return result

    def warn_of_stranded(self, catalog: m.Catalog) -> None:
        """Say when subscribers are in a stage that the workflows no longer declare (an edit
        removed or renamed it): nothing runs for them there, and only an operator can tell
        whether that was meant."""
        stages = {w.name: {s.name for s in w.stages} for w in catalog.workflows}
        with self.database.reading() as connection:
            found = queries.stranded(connection, stages)
        gone: dict[str, int] = {}
        for workflow, stage, count in found:
            if workflow not in stages:
                gone[workflow] = gone.get(workflow, 0) + count
                continue
            log.warning("%d subscriber(s) are in stage '%s' of workflow '%s', which the "
                        "workflows no longer declare: nothing runs for them until they exit "
                        "or the stage is back (`nurture move %s %s STAGE` moves them)",
                        count, stage, workflow, workflow, stage,
                        extra={"workflow": workflow, "stage": stage, "subscribers": count})
        for workflow, count in gone.items():
            log.warning("%d subscriber(s) are enrolled in workflow '%s', which is not loaded: "
                        "nothing of it runs for them until it is back", count, workflow,
                        extra={"workflow": workflow, "subscribers": count})

    def files_changed(self) -> bool:
        return self._files_signature() != self.files_seen

    def _files_signature(self) -> tuple[tuple[str, int, int], ...]:
        """Every workflow file and template (not tests or caches), with mtime and size."""
        root = Path(self.settings.workflows)
        paths = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
            and "__pycache__" not in p.parts and not p.name.startswith("."))
        signature = []
        for path in paths:
            try:
                stat = os.stat(path)
            except OSError:
                continue
            signature.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(signature)

    def backlog(self) -> queries.Backlog:
        with self.database.reading() as connection:
            return queries.backlog(connection, self.clock.now())
