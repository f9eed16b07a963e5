"""`nurture find EMAIL`: the subscribers with an address, for a person's request about their
data (they know their address, not the site's id for them)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner

from channels.tokens import Signer
from engine.cli import main
from engine.clock import VirtualClock
from engine.events import parse_event
from engine.processor import Engine
from engine.testing import FlowTest

FLOW = "workflow w {\n  stage first { }\n}\n"


def _find(url: str, address: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["find", address, "--db", url])
    return result.exit_code, result.stdout, result.stderr


def test_the_subscribers_with_an_address_letter_case_aside(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    run.event("ann", "subscribed", channels=["email"], email="Ann.Smith@Example.com")
    run.event("ann-shop-2", "subscribed", channels=["email"], email="ann.smith@example.com")
    run.event("bob", "subscribed", channels=["email"], email="bob@example.com")
    run.event("cy", "attributes", email="ann.smith@example.com")
    run.event("cy", "attributes", email="cy@example.com")  # a new address: not the old one
    run.event("dee", "attributes", first_name="ann.smith@example.com")  # not an e-mail
    assert _find(database_url, "ANN.SMITH@example.COM") == (0, "ann\nann-shop-2\n", "")
    assert _find(database_url, "nobody@example.com") == (
        1, "", "nurture: nobody has the e-mail address 'nobody@example.com'\n")


def test_erase_from_the_command_line_as_the_api_does(
        flow: Callable[..., FlowTest], database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "a-signing-secret-of-some-length"
    monkeypatch.setenv("NURTURE_SECRET", secret)
    run = flow(FLOW)
    old = {"subscriber": "ann", "type": "subscribed", "id": "ann-joined",
           "at": "2026-01-05T09:00:00Z",
           "properties": {"channels": ["email"], "email": "ann@example.com"}}
    run.events([old])
    run.event("bob", "subscribed", channels=["email"], email="bob@example.com")
    asked = CliRunner().invoke(main, ["erase", "ann", "--db", database_url], input="n\n")
    assert asked.exit_code == 1 and "nothing was erased" in asked.stderr
    assert _find(database_url, "ann@example.com")[1] == "ann\n"
    unknown = CliRunner().invoke(main, ["erase", "ana", "--yes", "--db", database_url])
    assert unknown.exit_code == 2 and "no subscriber 'ana'" in unknown.stderr
    erased = CliRunner().invoke(main, ["erase", "ann", "--yes", "--db", database_url])
    assert (erased.exit_code, erased.stderr) == (0, "erased ann\n")
    assert _find(database_url, "ann@example.com")[0] == 1
    assert _find(database_url, "bob@example.com")[1] == "bob\n"
    with run.database.reading() as connection:
        kept = connection.exec_driver_sql("SELECT subscriber FROM erasures").scalars().all()
    assert kept == [Signer(secret.encode()).fingerprint("erased", "ann")]  # as the API's
    # the erased person's old event, sent again, is refused (as after DELETE)
    signer = Signer(secret.encode())
    engine = Engine(run.catalog, run.database, clock=VirtualClock(run.now),
                    fingerprint=lambda who: signer.fingerprints("erased", who))
    result = engine.ingest([parse_event(old, 1)])
    assert (result.accepted, len(result.erased)) == (0, 1)
