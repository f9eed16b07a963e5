"""`nurture find EMAIL`: the subscribers with an address, for a person's request about their
data (they know their address, not the site's id for them)."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import CliRunner

from engine.cli import main
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
