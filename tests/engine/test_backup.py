"""`nurture backup` and `nurture restore`: a copy of the live SQLite database as of one commit,
taken while a writer is busy, with the keys beside it; put back through SQLite, over a
database whose write-ahead log still holds frames, only when asked."""

from __future__ import annotations

import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.events import parse_event
from engine.store import queries
from engine.store.database import open_database
from tests.databases import PG, SKIP_PG

RUNNER = CliRunner()


def _ingest(url: str, *subscribers: str) -> None:
    """Events of these subscribers, through the engine (no workflow needed to store them)."""
    from dsl.model import Catalog
    from engine.processor import Engine

    database = open_database(url)
    try:
        engine = Engine(Catalog(), database)
        engine.ingest([parse_event({"subscriber": who, "type": "page_view"}, seq,
                                   default_at=engine.clock.now())
                       for seq, who in enumerate(subscribers, 1)])
    finally:
        database.dispose()


def _subscribers(url: str) -> list[str]:
    database = open_database(url, existing=True)
    try:
        with database.reading() as connection:
            return sorted(who for who in ("ann", "bob", "cy", "dee")
                          if queries.subscriber_key(connection, who) is not None)
    finally:
        database.dispose()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A service's folder: its database and keys (`nurture keys`), the environment its own."""
    monkeypatch.chdir(tmp_path)
    for variable in ("NURTURE_DB", "NURTURE_API_KEY", "NURTURE_SECRET",
                     "NURTURE_VAPID_PRIVATE_KEY", "NURTURE_SECRET_PREVIOUS",
                     "NURTURE_ERASURE_SECRETS"):
        monkeypatch.delenv(variable, raising=False)
    result = RUNNER.invoke(main, ["keys"])
    assert result.exit_code == 0, result.output
    _ingest("sqlite:///nurture.db", "ann", "bob")
    return tmp_path


def test_a_backup_holds_the_last_commit_and_the_keys_while_a_writer_is_busy(
        site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    busy = sqlite3.connect(site / "nurture.db", isolation_level=None, timeout=30)
    busy.execute("BEGIN IMMEDIATE")  # a write in progress: not committed, not in the copy
    busy.execute("UPDATE subscribers SET external_id = 'zed' WHERE external_id = 'ann'")
    monkeypatch.setenv("NURTURE_API_KEY", "an-api-key-from-the-environment")
    try:
        result = RUNNER.invoke(main, ["backup", "saved"])
    finally:
        busy.rollback()
        busy.close()
    assert result.exit_code == 0, result.output
    assert "checked: 2 subscriber(s), 2 event(s)" in result.output
    assert "not in the backup: NURTURE_API_KEY" in result.output
    saved = site / "saved"
    assert _subscribers(f"sqlite:///{saved / 'nurture.db'}") == ["ann", "bob"]
    for name in ("vapid.pem", "secret"):
        assert (saved / "keys" / name).read_bytes() == (site / ".nurture" / name).read_bytes()
    for path in (saved, saved / "keys", saved / "nurture.db", saved / "keys" / "secret"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path  # the owner's only
    # A second backup into the same folder is refused: a backup never overwrites.
    again = RUNNER.invoke(main, ["backup", "saved"])
    assert again.exit_code == 2 and "not empty" in again.output
    # A mistyped database is said so, and leaves no folder behind.
    wrong = RUNNER.invoke(main, ["backup", "other", "--db", "sqlite:///nurture-typo.db"])
    assert wrong.exit_code == 1 and "nurture-typo.db: no such file" in wrong.output
    assert not (site / "other").exists()


def test_restore_goes_through_sqlite_over_a_log_with_frames_and_only_when_asked(
        site: Path) -> None:
    assert RUNNER.invoke(main, ["backup", "saved"]).exit_code == 0
    _ingest("sqlite:///nurture.db", "cy")
    refused = RUNNER.invoke(main, ["restore", "saved"])
    assert refused.exit_code == 2
    assert "holds 3 subscriber(s): add --replace" in refused.output
    assert _subscribers("sqlite:///nurture.db") == ["ann", "bob", "cy"]  # untouched

    # A process that wrote and died: its frames are still in nurture.db-wal. Copying the
    # backup's file over nurture.db would have SQLite replay them onto it.
    subprocess.run([sys.executable, "-c", (
        "import os, sqlite3\n"
        "c = sqlite3.connect('nurture.db', isolation_level=None)\n"
        "c.execute('PRAGMA wal_autocheckpoint=0')\n"
        "c.execute(\"UPDATE subscribers SET external_id = 'dee' WHERE external_id = 'bob'\")\n"
        "os._exit(0)\n")], check=True, cwd=site)
    assert (site / "nurture.db-wal").stat().st_size > 0
    (site / ".nurture" / "secret").write_text("c29tZXRoaW5nIGVsc2U=", encoding="ascii")
    result = RUNNER.invoke(main, ["restore", "saved", "--replace"])
    assert result.exit_code == 0, result.output
    assert "restored from saved/nurture.db (2 subscriber(s), 2 event(s))" in result.output
    assert _subscribers("sqlite:///nurture.db") == ["ann", "bob"]
    assert (site / ".nurture" / "secret").read_bytes() == (
        site / "saved" / "keys" / "secret").read_bytes()
    with sqlite3.connect(site / "nurture.db") as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_restore_refuses_while_a_nurture_process_runs_on_the_database(site: Path) -> None:
    """A running `nurture serve` would go on from the states it holds in memory, on data that
    is no longer there: restore says which process to stop, even with --replace."""
    import re

    from tests.service.conftest import FLOW, wait_for

    assert RUNNER.invoke(main, ["backup", "saved"]).exit_code == 0
    (site / "workflows").mkdir()
    (site / "workflows" / "shop.flow").write_text(FLOW, encoding="utf-8")
    log_file = site / "serve.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("nurture")), "serve", "--port", "0",
             "--workflows", "workflows"], cwd=site, stderr=log, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: re.search(r"demo page http://localhost:\d+/", log_file.read_text()),
                 30, "the banner")
        refused = RUNNER.invoke(main, ["restore", "saved", "--replace"])
        assert refused.exit_code == 2, refused.output
        assert f"a nurture process (pid {process.pid}) runs on nurture.db: stop it first" in \
            refused.output
    finally:
        process.terminate()
        assert process.wait(30) in (0, -signal.SIGTERM)  # (uvicorn re-raises the signal)
    result = RUNNER.invoke(main, ["restore", "saved", "--replace"])
    assert result.exit_code == 0, result.output


def test_restore_on_a_new_machine_and_a_damaged_copy(site: Path, tmp_path_factory) -> None:
    assert RUNNER.invoke(main, ["backup", "saved"]).exit_code == 0
    elsewhere = tmp_path_factory.mktemp("new-machine")
    result = RUNNER.invoke(main, ["restore", str(site / "saved"),
                                  "--db", f"sqlite:///{elsewhere / 'data' / 'n.db'}"])
    assert result.exit_code == 0, result.output
    assert _subscribers(f"sqlite:///{elsewhere / 'data' / 'n.db'}") == ["ann", "bob"]

    damaged = site / "damaged"
    damaged.mkdir()
    (damaged / "nurture.db").write_bytes(b"not a database at all" * 100)
    result = RUNNER.invoke(main, ["restore", "damaged", "--replace"])
    assert result.exit_code == 1
    assert "damaged/nurture.db: not a nurture database" in result.output
    assert _subscribers("sqlite:///nurture.db") == ["ann", "bob"]

    # The live database is the damaged one: the restore is what it is for.
    (site / "nurture.db").write_bytes(b"garbage" * 1000)
    refused = RUNNER.invoke(main, ["restore", "saved"])
    assert refused.exit_code == 2 and "cannot be read as a database" in refused.output
    result = RUNNER.invoke(main, ["restore", "saved", "--replace"])
    assert result.exit_code == 0, result.output
    assert _subscribers("sqlite:///nurture.db") == ["ann", "bob"]
    assert (site / "nurture.db.damaged").read_bytes() == b"garbage" * 1000


@pytest.mark.parametrize("name", ["backups #1", "what?", "100%41 sure"])
def test_folder_names_are_file_names_not_uri_syntax(site: Path, name: str) -> None:
    """SQLite reads `#`, `?` and `%` in a `file:` URI as syntax: the copy must still be read
    from (and checked at) the path given, and nothing made beside it."""
    def beside() -> list[str]:  # the live database's log files come and go: not counted
        return sorted(p.name for p in site.iterdir() if not p.name.startswith("nurture.db-"))

    before = beside()
    saved = site / name / "copy"
    result = RUNNER.invoke(main, ["backup", str(saved)])
    assert result.exit_code == 0, result.output
    assert "checked: 2 subscriber(s), 2 event(s)" in result.output
    assert beside() == sorted([*before, name])
    # In a database URL they are URL syntax, as everywhere: a path there is percent-encoded.
    elsewhere = site / name / "restored.db"
    url = f"sqlite:///{quote(str(elsewhere))}"
    result = RUNNER.invoke(main, ["restore", str(saved), "--db", url])
    assert result.exit_code == 0, result.output
    assert elsewhere.is_file()
    assert _subscribers(url) == ["ann", "bob"]
    # The live database in such a folder is read where it is too.
    again = RUNNER.invoke(main, ["backup", str(site / name / "again"), "--db", url])
    assert again.exit_code == 0, again.output
    assert "checked: 2 subscriber(s), 2 event(s)" in again.output


def test_on_postgresql_the_database_is_pg_dumps_and_the_keys_are_ours(
        site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not PG:
        pytest.skip(SKIP_PG)
    monkeypatch.setenv("NURTURE_DB", PG)
    result = RUNNER.invoke(main, ["backup", "saved"])
    assert result.exit_code == 2 and "pg_dump" in result.output and "--keys-only" in result.output
    assert not (site / "saved").exists()
    result = RUNNER.invoke(main, ["backup", "--keys-only", "saved"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (site / "saved").iterdir()) == ["keys"]
    assert sorted(p.name for p in (site / "saved" / "keys").iterdir()) == ["secret", "vapid.pem"]
    result = RUNNER.invoke(main, ["restore", "saved"])
    assert result.exit_code == 2 and "pg_restore" in result.output
