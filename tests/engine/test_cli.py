"""`nurture check` and `nurture graph` as users run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsl.loader import load_text
from engine.cli import main
from engine.events import parse_event

ROOT = Path(__file__).resolve().parents[2]

SMALL = """
workflow trial {
  entry on signup
  stage welcome {
    on enter: send email hello
    go to active when usage >= 3
    go to lapsed when idle for 14 days
  }
  stage active { }
  stage lapsed {
    go to active on login
  }
}
message hello email {
  subject "Welcome"
  text "Hi"
}
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_the_example_workflows_folder() -> None:
    code, out, err = run("check", str(ROOT / "workflows"))
    assert (code, out) == (0, "")
    assert "0 error(s), 0 warning(s)" in err


def test_check_reports_every_file_and_exits_1(write_flow: Callable[..., str]) -> None:
    write_flow("flows/a.flow", "workflow a {\n  stage s {\n    go to t after 1 dy\n  }\n}\n")
    write_flow("flows/deeper/b.flow", 'workflow b {\n  timezone "Nowhere/City"\n'
                                      "  stage s { }\n}\n")
    write_flow("flows/notes.txt", "not a workflow")
    code, out, err = run("check", "flows")
    assert code == 1
    assert out.splitlines() == [
        "flows/a.flow:3:21: error: unexpected 'dy'; expected a duration unit such as 'days'; "
        "did you mean 'days'?",
        "flows/deeper/b.flow:2:12: error: unknown time zone 'Nowhere/City' (an IANA name such "
        "as 'Europe/Warsaw')",
    ]
    assert "2 file(s) checked: 2 error(s), 0 warning(s)" in err
    assert "Traceback" not in out + err


def test_warnings_alone_exit_0(write_flow: Callable[..., str]) -> None:
    write_flow("w.flow", "workflow w {\n  stage a { }\n  stage b { }\n}\n")
    code, out, _ = run("check", "w.flow")
    assert code == 0
    assert out == "w.flow:3:3: warning: stage 'b' is unreachable: no transition from 'a' " \
                  "leads to it\n"


def test_missing_path_is_reported(write_flow: Callable[..., str]) -> None:
    write_flow("w.flow", SMALL)
    code, out, _ = run("check", "w.flow", "nope.flow", "empty")
    assert code == 1
    assert out.splitlines() == ["empty:1:1: error: no such file or folder",
                                "nope.flow:1:1: error: no such file or folder"]


def test_a_template_or_events_file_named_for_a_workflow_says_what_it_is(
        write_flow: Callable[..., str]) -> None:
    # `nurture check templates/news.html`, `nurture simulate w.flow events.jsonl` (no --events)
    write_flow("w.flow", SMALL)
    write_flow("news.html", "<p>{{ subscriber.first_name }}</p>")
    write_flow("events.jsonl", '{"subscriber": "ann", "type": "subscribed"}')
    code, out, _ = run("check", "w.flow", "news.html")
    assert (code, out) == (1, (
        "news.html:1:1: error: not a workflow file (.flow): a message's template file is "
        "checked with the workflow file that names it, e.g. `nurture check workflows/`\n"))
    code, out, _ = run("simulate", "w.flow", "events.jsonl", "--events", "events.jsonl")
    assert (code, out) == (1, (
        "events.jsonl:1:1: error: not a workflow file (.flow): events are simulated with "
        "`nurture simulate WORKFLOWS --events FILE.jsonl`\n"))


@pytest.mark.parametrize(("content", "where", "message"), [
    # Windows-1250, as a Polish shop's editor may save "zażółć" in a comment
    (b"workflow w {\n  stage a { } # za\xbf\xf3\xb3\xe6\n}\n", "2:19",
     "not UTF-8 text (byte 0xbf): save the file as UTF-8"),
    # the column counts characters, as an editor does: "# ł" before the byte is 3
    (b"# \xc5\x82\xff\nworkflow w { stage a { } }\n", "1:4",
     "not UTF-8 text (byte 0xff): save the file as UTF-8"),
    ("workflow w { stage a { } }\n".encode("utf-16"), "1:1",
     "UTF-16 text, not UTF-8: save the file as UTF-8"),
], ids=["windows-1250", "columns-are-characters", "utf-16"])
def test_a_file_not_in_utf8_is_reported_where_an_editor_shows_it(
        tmp_path: Path, content: bytes, where: str, message: str) -> None:
    (tmp_path / "bad.flow").write_bytes(content)
    code, out, _ = run("check", str(tmp_path / "bad.flow"))
    assert code == 1
    assert out.splitlines()[0] == f"{tmp_path / 'bad.flow'}:{where}: error: {message}"


def test_graph_mermaid(write_flow: Callable[..., str]) -> None:
    write_flow("t.flow", SMALL)
    code, out, _ = run("graph", "t.flow")
    assert code == 0
    assert out == (
        "flowchart LR\n"
        '  trial__entry(("entry"))\n'
        '  trial__welcome(["welcome"])\n'
        '  trial__active["active"]\n'
        '  trial__lapsed["lapsed"]\n'
        '  trial__entry -->|"on signup"| trial__welcome\n'
        '  trial__welcome -->|"1. when usage >= 3"| trial__active\n'
        '  trial__welcome -->|"2. idle for 14 days"| trial__lapsed\n'
        '  trial__lapsed -->|"on login"| trial__active\n'
    )


def test_graph_mermaid_node_ids_are_never_mermaid_keywords(
        write_flow: Callable[..., str]) -> None:
    """`end` alone closes a subgraph in Mermaid; `graph`, `style`, `click`… are keywords."""
    write_flow("t.flow", "workflow end { stage graph { go to end after 1 day } stage end { } }\n"
                         "workflow style { stage click { } }\n")
    _, out, _ = run("graph", "t.flow")
    assert out == (
        "flowchart LR\n"
        '  subgraph cluster_end ["end"]\n'
        '    end__entry(("entry"))\n'
        '    end__graph(["graph"])\n'
        '    end__end["end"]\n'
        '    end__entry -->|"on subscribed"| end__graph\n'
        '    end__graph -->|"after 1 day"| end__end\n'
        "  end\n"
        '  subgraph cluster_style ["style"]\n'
        '    style__entry(("entry"))\n'
        '    style__click(["click"])\n'
        '    style__entry -->|"on subscribed"| style__click\n'
        "  end\n"
    )


def test_graph_dot(write_flow: Callable[..., str]) -> None:
    write_flow("t.flow", SMALL)
    code, out, _ = run("graph", "t.flow", "--format", "dot")
    assert code == 0
    assert out == (
        "digraph nurture {\n"
        "  rankdir=LR;\n"
        "  node [shape=box, style=rounded];\n"
        '  subgraph "cluster_trial" {\n'
        '    label="trial";\n'
        '    "trial.entry" [shape=circle, label="entry"];\n'
        '    "trial.welcome" [label="welcome", penwidth=2];\n'
        '    "trial.active" [label="active"];\n'
        '    "trial.lapsed" [label="lapsed"];\n'
        '    "trial.entry" -> "trial.welcome" [label="on signup"];\n'
        '    "trial.welcome" -> "trial.active" [label="1. when usage >= 3"];\n'
        '    "trial.welcome" -> "trial.lapsed" [label="2. idle for 14 days"];\n'
        '    "trial.lapsed" -> "trial.active" [label="on login"];\n'
        "  }\n"
        "}\n"
    )


def test_graph_of_a_broken_file_shows_its_errors(write_flow: Callable[..., str]) -> None:
    write_flow("t.flow", "workflow w { stage a { go to b after 1 day } }")
    code, out, _ = run("graph", "t.flow")
    assert (code, out) == (1, "t.flow:1:30: error: unknown stage 'b'\n")


def test_graph_quotes_labels_for_mermaid(write_flow: Callable[..., str]) -> None:
    write_flow("t.flow", 'workflow w { stage a { go to b on visit where url contains "/x" } '
                         "stage b { } }")
    _, out, _ = run("graph", "t.flow")
    assert '  w__a -->|"on visit where url contains #quot;/x#quot;"| w__b\n' in out


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "x.flow"
    broken.write_text("workflow {", encoding="utf-8")
    script = Path(sys.executable).parent / "nurture"
    completed = subprocess.run([str(script), "check", str(broken)], capture_output=True,
                               text=True, check=False)
    assert completed.returncode == 1
    assert completed.stdout == f"{broken}:1:10: error: unexpected '{{'; expected a name\n"
    assert "Traceback" not in completed.stderr


def test_the_banner_keeps_secrets_out_of_the_log(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    """`serve` and `worker` print a banner that service managers keep as their log: the
    database password and the generated API key do not appear in it."""
    from types import SimpleNamespace

    from engine.cli import _banner
    from engine.config import Settings

    settings = Settings(db="postgresql+psycopg://nurture:s3cr%40t@db.internal:5432/nurture",
                        workflows="workflows", secret_file=tmp_path / ".nurture" / "secret")
    key = "Hp52TOfXq1w2e3r4t5y6u7i8o9p0asdf"
    runtime = SimpleNamespace(settings=settings, api_key=key,
                              catalog=SimpleNamespace(workflows=[object()]))
    _banner(runtime, "http://localhost:8000")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "nurture: 1 workflow(s) from workflows, database "
        "postgresql+psycopg://nurture:***@db.internal:5432/nurture",
        "nurture: demo page http://localhost:8000/  API http://localhost:8000/v1  "
        "schema http://localhost:8000/openapi.json",
        f"nurture: API key Hp52TOfX… (in {tmp_path / '.nurture' / 'api-key'})",
    ]
    _banner(runtime, None)  # a worker's: no API, so no key to name
    assert capsys.readouterr().err.splitlines() == lines[:1]


@pytest.mark.parametrize("url, reason", [
    ("nonsense", "the database URL is not one nurture can read; it looks like "
                 "sqlite:///nurture.db or postgresql+psycopg://user@host/database"),
    ("mysql://nurture@localhost/db", "cannot open the database mysql://nurture@localhost/db: "
     "no driver for it (No module named 'MySQLdb'); nurture works with sqlite:/// and "
     "postgresql+psycopg://"),
    ("sqlite:///{tmp}/not-a-database.db", "cannot open the database "
     "sqlite:///{tmp}/not-a-database.db: file is not a database"),
    ("sqlite:///{tmp}/not-a-database.db/inside.db", "cannot open the database "
     "sqlite:///{tmp}/not-a-database.db/inside.db: [Errno 17] File exists: "
     "'{tmp}/not-a-database.db'"),
    ("postgresql+psycopg://nurture:s3cret@127.0.0.1:{port}/test", "cannot open the database "
     "postgresql+psycopg://nurture:***@127.0.0.1:{port}/test: connection failed: connection to "
     'server at "127.0.0.1", port {port} failed: Connection refused'),
])
def test_a_database_that_cannot_be_opened_is_one_line_and_exit_2(
        url: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's setting, not a bug: no traceback, the password not shown."""
    import socket

    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-database.db").write_text("these are notes, not a database\n")
    with socket.socket() as closed:  # bound, not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        values = {"tmp": str(tmp_path), "port": closed.getsockname()[1]}
        code, out, err = run("dispatch", "--once", "--db", url.format(**values))
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"nurture: {reason.format(**values)}"]


def test_the_service_socket_has_nagle_off_on_its_connections() -> None:
    """`serve` binds its socket itself; asyncio sets TCP_NODELAY on accepted connections only
    if that socket names IPPROTO_TCP. Without it, HTTP ingestion ran ~20% slower."""
    import asyncio
    import socket

    from engine.cli import _listen

    listener = _listen("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[int] = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted = transport.get_extra_info("socket")
                answer.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await loop.create_server(Probe, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            return await asyncio.wait_for(answer, 10)
        finally:
            writer.close()
            server.close()

    try:
        assert asyncio.run(accepted_nodelay()) == 1
    finally:
        listener.close()


def test_keys_that_the_data_depends_on_are_not_replaced_silently(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database in use and a missing keys folder mean lost keys (a new machine, a container
    without its volume): a new secret would break every link already sent, a new VAPID key
    every browser's subscription. What would create them stops and says so; `nurture keys`
    creates them on purpose."""
    from engine.config import ConfigError, load_settings
    from engine.processor import Engine
    from engine.runtime import Runtime
    from engine.store import push_subscriptions
    from engine.store.database import open_database

    monkeypatch.chdir(tmp_path)
    for name in ("NURTURE_SECRET", "NURTURE_VAPID_PRIVATE_KEY", "NURTURE_DB"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    monkeypatch.setenv("NURTURE_DB", url)
    assert run("keys")[0] == 0
    database = open_database(url)
    catalog = load_text('workflow w { stage a { on enter: send webhook crm } }\n'
                        'message crm webhook { url "https://crm.example/hook" }\n',
                        "w.flow").catalog
    assert catalog is not None
    now = datetime.now(UTC)
    Engine(catalog, database).ingest([parse_event(
        {"subscriber": "ann", "type": "subscribed", "properties": {"channels": ["push"]}}, 1,
        default_at=now)])
    with database.transaction() as connection:
        push_subscriptions.add(connection, "ann", "https://push.example/1", "k", "a", now)
    secret, vapid = Path(".nurture/secret"), Path(".nurture/vapid.pem")
    kept = secret.read_bytes()
    secret.unlink()
    code, _, err = run("dispatch", "--once")
    assert code == 2 and not secret.exists()
    assert err.startswith("nurture: the signing secret (.nurture/secret) is missing, but this "
                          "database holds messages sent with links it signed: restore the file")
    secret.write_bytes(kept)
    vapid.unlink()
    with pytest.raises(ConfigError, match=r"^the VAPID key \(.nurture/vapid.pem\) is missing, "
                                          "but this database holds browsers' push "
                                          "subscriptions made for it"):
        Runtime(load_settings(), database, catalog)  # what `serve` and `worker` build
    assert not vapid.exists()
    assert run("keys")[0] == 0  # on purpose
    Runtime(load_settings(), database, catalog)
    database.dispose()


def test_move_carries_the_subscribers_of_a_renamed_stage_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.processor import Engine
    from engine.store import queries
    from engine.store.database import open_database

    monkeypatch.chdir(tmp_path)
    for name in ("NURTURE_DB", "NURTURE_WORKFLOWS"):
        monkeypatch.delenv(name, raising=False)
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    flow = "workflow w { stage a { } stage b { } }\n"
    (workflows / "w.flow").write_text(flow, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    database = open_database(url)
    catalog = load_text(flow, "w.flow").catalog
    assert catalog is not None
    Engine(catalog, database).ingest([parse_event(
        {"subscriber": who, "type": "subscribed", "properties": {"channels": ["push"]}}, n,
        default_at=datetime.now(UTC)) for n, who in enumerate(("ann", "bob"))])
    (workflows / "w.flow").write_text(flow.replace("stage a", "stage first"), encoding="utf-8")
    options = ("--db", url, "--workflows", str(workflows))
    typo = tmp_path / "shp.db"
    code, _, err = run("move", "w", "a", "first", "--db", f"sqlite:///{typo}", *options[2:])
    assert (code, err) == (2, f"nurture: cannot open the database sqlite:///{typo}: there is "
                              "no such file\n")
    assert not typo.exists()  # no empty database left behind, nobody "moved"
    code, _, err = run("move", "w", "a", "nowhere", *options)
    assert (code, err) == (2, "nurture: workflow 'w' has no stage 'nowhere'\n")
    code, _, err = run("move", "w", "a", "frist", *options)
    assert (code, err) == (2, "nurture: workflow 'w' has no stage 'frist'; did you mean "
                              "'first'?\n")
    code, _, err = run("move", "ww", "a", "first", *options)
    assert (code, err) == (2, "nurture: no workflow 'ww' is loaded; did you mean 'w'?\n")
    # a typo in FROM would move nobody and say "moved 0": it is refused, with the stage meant
    code, _, err = run("move", "w", "firts", "b", *options)
    assert (code, err) == (2, "nurture: nobody is in stage 'firts' of workflow 'w', which "
                              "declares no such stage; did you mean 'first'?\n")
    code, _, err = run("move", "w", "a", "first", *options)
    assert (code, err) == (0, "moved 2 subscriber(s) of workflow 'w' from stage 'a' to 'first'\n")
    with database.transaction() as connection:
        stages = [queries.stages(connection, queries.subscriber_key(connection, who) or 0)
                  for who in ("ann", "bob")]
    assert stages == [{"w": "first"}, {"w": "first"}]
    code, _, err = run("move", "w", "a", "first", *options)  # again: done before, not an error
    assert (code, err) == (0, "moved 0 subscriber(s) of workflow 'w' from stage 'a' to 'first'\n")
    database.dispose()


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz's `dot` is not installed (.ci/run installs it)")
@pytest.mark.parametrize("name", ["jewelry", "b2b_lead_scoring", "after_sale"])
def test_graphviz_draws_the_dot_output_of_every_example(name: str, tmp_path: Path) -> None:
    code, out, _ = run("graph", str(ROOT / "workflows" / f"{name}.flow"), "--format", "dot")
    assert code == 0
    drawn = subprocess.run(["dot", "-Tsvg"], input=out, capture_output=True, text=True,
                           check=False)
    assert drawn.returncode == 0 and drawn.stderr == "", drawn.stderr
    assert "<svg" in drawn.stdout and ">entry</text>" in drawn.stdout


def test_check_loads_only_what_checking_needs() -> None:
    """`nurture check` is run on every save in some editors: it does without the database,
    the settings and the channels' SMTP and VAPID code (before, the settings were imported
    and cost it an eighth of its time)."""
    script = ("import sys\nfrom engine.cli import main\n"
              "try:\n    main(['check', 'workflows'])\nexcept SystemExit as done:\n"
              "    assert done.code == 0, done.code\n"
              "print(' '.join(sorted(name for name in ('sqlalchemy', 'engine.config', "
              "'smtplib', 'cryptography', 'aiohttp', 'apscheduler') if name in sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.splitlines()[-1] == ""


def test_a_misspelt_variable_is_a_warning_and_an_unreadable_dotenv_line_an_error(
        tmp_path: Path) -> None:
    nurture = str(Path(sys.executable).with_name("nurture"))
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("NURTURE_")}
    environment["NURTURE_TICK_SECOND"] = "5"
    done = subprocess.run([nurture, "keys"], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (
        "NURTURE_TICK_SECOND is not a setting of nurture, and is ignored; did you mean "
        "NURTURE_TICK_SECONDS?")
    (tmp_path / ".env").write_text('NURTURE_TICK_SECONDS=5\nNURTURE_API_KEY="abc def\n',
                                   encoding="utf-8")
    done = subprocess.run([nurture, "keys"], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "nurture: .env:2: this line cannot be read (it sets NURTURE_API_KEY): write NAME=value, "
        "and put a value that holds spaces, quotes, # or several lines (a PEM key) in double "
        "quotes\n")


BROKEN = ('workflow w {\n  stage a { on enter: sned push m }\n}\n'
          'message m push { title "Hi" }\n'
          'workflow v { stage s { } stage t { } }\n')


def test_check_annotates_a_pull_request_on_github(tmp_path: Path) -> None:
    # a path with the characters the runner's properties must have escaped
    flow = tmp_path / "shop, 100%: spring.flow"
    flow.write_text(BROKEN, encoding="utf-8")
    code, out, err = run("check", str(flow), "--format", "github")
    escaped = str(flow).replace("%", "%25").replace(":", "%3A").replace(",", "%2C")
    assert (code, out.splitlines()) == (1, [
        f"::error file={escaped},line=2,col=23,title=nurture check::unexpected 'sned'; "
        "expected 'send'; did you mean 'send'?",
        f"::warning file={escaped},line=5,col=26,title=nurture check::stage 't' is "
        "unreachable: no transition from 's' leads to it"])
    assert "1 error(s), 1 warning(s)" in err
    code, out, _ = run("check", str(ROOT / "workflows"), "--format", "github")
    assert (code, out) == (0, "")


def test_check_reports_json_for_tools(tmp_path: Path) -> None:
    flow = tmp_path / "w.flow"
    flow.write_text(BROKEN, encoding="utf-8")
    code, out, _ = run("check", str(flow), "--format", "json")
    assert code == 1
    assert json.loads(out) == {
        "files": [str(flow)], "errors": 1, "warnings": 1, "workflows": None,
        "message_variants": None, "diagnostics": [
            {"path": str(flow), "line": 2, "column": 23, "severity": "error",
             "message": "unexpected 'sned'; expected 'send'; did you mean 'send'?"},
            {"path": str(flow), "line": 5, "column": 26, "severity": "warning",
             "message": "stage 't' is unreachable: no transition from 's' leads to it"}]}
    code, out, _ = run("check", str(ROOT / "workflows"), "--format", "json")
    report = json.loads(out)
    assert (code, report["errors"], report["workflows"], report["diagnostics"]) == (0, 0, 3, [])


def test_check_an_editors_unsaved_buffer_with_the_rest_of_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The buffer replaces the file on disk (which is fine) and is checked with the folder's
    other files (which declare its message): its own error, at its own line, and no other."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.flow").write_text(
        "workflow a {\n  stage s { on enter: send push hello }\n}\n", encoding="utf-8")
    (tmp_path / "w" / "msgs.flow").write_text('message hello push { title "Hi" }\n',
                                              encoding="utf-8")

    def check(buffer: bytes, name: str, *more: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, ["check", "w", "--stdin-filename", name, *more],
                                    input=buffer)
        return result.exit_code, result.stdout, result.stderr

    edited = b"workflow a {\n  stage s { on enter: send push helo }\n}\n"
    assert check(edited, "w/a.flow")[:2] == (
        1, "w/a.flow:2:33: error: unknown message 'helo'; did you mean 'hello'?\n")
    # named as the editor names it (here absolute): the same file, not a third one
    code, out, err = check(edited.replace(b"helo", b"hello"), str(tmp_path / "w" / "a.flow"))
    assert (code, out) == (0, "") and "2 file(s) checked" in err
    # a new file, not on disk yet
    code, out, _ = check(b"workflow b {\n  stage s { on enter: send push hello }\n}\n",
                         "w/new.flow", "--format", "json")
    assert code == 0 and json.loads(out)["files"] == ["w/a.flow", "w/msgs.flow", "w/new.flow"]
    assert check(b"# caf\xe9\n", "w/a.flow")[:2] == (
        1, "w/a.flow:1:6: error: not UTF-8 text (byte 0xe9): save the file as UTF-8\n")
    code, out, _ = check(b"# caf\xe9\n", "w/a.flow", "--format", "json")
    assert code == 1 and json.loads(out)["diagnostics"] == [{
        "path": "w/a.flow", "line": 1, "column": 6, "severity": "error",
        "message": "not UTF-8 text (byte 0xe9): save the file as UTF-8"}]
