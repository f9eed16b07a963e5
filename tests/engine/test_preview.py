"""`nurture preview`: a message rendered for one subscriber, as a send would render it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = str(ROOT / "workflows")
FLOW = """\
workflow w {
  score fit { when role == "cto" +10 }
  stage a {
    on enter: send push hi with code = "A1"
    on enter: send email hi
  }
}
message hi push { title "Hi {{ subscriber.first_name }}, {{ code }} ({{ scores.fit }})" }
message hi email { subject "Hi" text "Hi {{ subscriber.nickname }}" }
message hi push lang "de" { title "Hallo {{ subscriber.first_name }}" }
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["preview", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_variant_for_the_subscribers_locale_with_their_attributes() -> None:
    code, out, _ = run(WORKFLOWS, "--message", "welcome", "--attribute", "first_name=Anna",
                       "--attribute", "locale=pl-PL")
    assert code == 0
    assert out.splitlines() == [
        "message welcome push lang pl (sent by workflow 'jewelry', stage 'awareness')",
        "title: Cześć Anna!",
        "body: Dziękujemy za subskrypcję. Zobacz nasze bestsellery.",
        "url: https://shop.example/pl/bestsellery",
        "ttl: 2419200",
        "urgency: normal"]


def test_scores_tags_and_with_values(tmp_path: Path) -> None:
    (tmp_path / "w.flow").write_text(FLOW, encoding="utf-8")
    code, out, _ = run(str(tmp_path / "w.flow"), "--message", "hi", "--channel", "push",
                       "--attribute", "first_name=Ann", "--score", "fit=10", "--json")
    assert (code, json.loads(out)) == (0, {"title": "Hi Ann, A1 (10)", "ttl": 2419200,
                                           "urgency": "normal"})
    code, out, _ = run(str(tmp_path / "w.flow"), "--message", "hi", "--channel", "push",
                       "--attribute", "first_name=Ann", "--with", "code=B2", "--json")
    assert json.loads(out)["title"] == "Hi Ann, B2 (0)"
    code, out, _ = run(str(tmp_path / "w.flow"), "--message", "hi", "--channel", "push",
                       "--attribute", "first_name=Jörg", "--attribute", "locale=de-CH", "--json")
    assert json.loads(out)["title"] == "Hallo Jörg"


def test_what_keeps_a_message_from_showing_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "w.flow").write_text(FLOW, encoding="utf-8")
    flow = str(tmp_path / "w.flow")
    cases = [
        (["--message", "hii"], "nurture: no message 'hii'; did you mean 'hi'?"),
        (["--message", "hi"], "nurture: message 'hi' is there for email and push: choose one "
                              "with --channel"),
        (["--message", "hi", "--channel", "webhook"],
         "nurture: message 'hi' has no webhook variant (it has email, push)"),
        (["--message", "hi", "--channel", "email"],
         "nurture: message 'hi' (email) does not render for this subscriber: text: "
         "subscriber.nickname is undefined; a default avoids this: {{ subscriber.nickname | "
         "default('…') }} (a send would be skipped as render_error)"),
        (["--message", "hi", "--channel", "push", "--attribute", "first_name=A",
          "--score", "fitt=1"], "nurture: no score 'fitt' in workflow 'w'; did you mean 'fit'?"),
    ]
    for args, said in cases:
        code, out, err = run(flow, *args)
        assert (code, out, err.strip()) == (1, "", said), args


def test_a_stored_subscriber_as_the_database_has_them(tmp_path: Path) -> None:
    """`--subscriber ann --db …`: her attributes, scores and tags; flags change them."""
    from dsl.loader import load_paths
    from engine.clock import VirtualClock
    from engine.events import parse_event
    from engine.processor import Engine
    from engine.store.database import open_database

    url = f"sqlite:///{tmp_path / 'n.db'}"
    catalog = load_paths([WORKFLOWS]).catalog
    assert catalog is not None
    database = open_database(url)
    clock = VirtualClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    Engine(catalog, database, clock=clock).ingest([parse_event(raw, seq) for seq, raw in (
        (1, {"subscriber": "ann", "type": "subscribed", "at": "2026-03-02T09:00:00Z",
             "properties": {"channels": ["email"], "email": "ann@example.com",
                            "attributes": {"first_name": "Ann"}}}),
        (2, {"subscriber": "ann", "type": "page_view", "at": "2026-03-02T09:00:00Z",
             "properties": {"url": "/diamonds"}}))])
    database.dispose()
    code, out, _ = run(WORKFLOWS, "--message", "newsletter", "--subscriber", "ann", "--db", url,
                       "--json")
    assert code == 0
    html = json.loads(out)["html"]
    assert "<p>Hello Ann,</p>" in html and "You liked our diamonds" in html  # her tag
    code, out, _ = run(WORKFLOWS, "--message", "sales_alert", "--subscriber", "ann", "--db",
                       url, "--json")
    assert json.loads(json.loads(out)["body"]) == {"lead": "ann", "score": 30}
    code, out, _ = run(WORKFLOWS, "--message", "sales_alert", "--subscriber", "ann", "--db",
                       url, "--score", "engagement=80", "--json")
    assert json.loads(json.loads(out)["body"])["score"] == 80
    code, _, err = run(WORKFLOWS, "--message", "newsletter", "--subscriber", "an", "--db", url)
    assert (code, err.strip()) == (
        2, "nurture: no subscriber 'an' in the database; did you mean 'ann'?")
