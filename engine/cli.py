"""The `nurture` command.

Problems in a user's files are printed as `PATH:LINE:COLUMN: severity: message` and make the
command exit 1; a Python traceback appears only for a bug in nurture, and says so.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from dsl.graph import FORMATS, render_graph
from dsl.loader import LoadResult, load_paths

F = TypeVar("F", bound=Callable[..., Any])


def reports_bugs(command: F) -> F:
    """Turn an unexpected exception into a clear 'this is a bug' message and exit code 70."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception:
            click.echo("nurture: internal error — this is a bug in nurture, not in your files. "
                       "Please report it with the traceback below.", err=True)
            traceback.print_exc()
            sys.exit(70)

    return wrapper  # type: ignore[return-value]


def print_diagnostics(result: LoadResult) -> None:
    for diagnostic in result.diagnostics:
        click.echo(str(diagnostic))


@click.group()
@click.version_option(package_name="nurture")
def main() -> None:
    """nurture — lead-nurturing workflows as code."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@reports_bugs
def check(paths: tuple[str, ...]) -> None:
    """Validate workflow files (files, or folders searched for *.flow)."""
    result = load_paths(paths)
    print_diagnostics(result)
    errors, warnings = len(result.errors), len(result.warnings)
    summary = f"{len(result.files)} file(s) checked: {errors} error(s), {warnings} warning(s)"
    if result.catalog is not None:
        catalog = result.catalog
        summary += (f"; {len(catalog.workflows)} workflow(s), {len(catalog.messages)} "
                    "message variant(s)")
    click.echo(summary, err=True)
    sys.exit(1 if errors else 0)


@main.command()
@click.argument("file")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="mermaid",
              show_default=True, help="Diagram language.")
@click.option("--workflow", "workflow_name", default=None,
              help="Draw only this workflow of the file.")
@reports_bugs
def graph(file: str, output_format: str, workflow_name: str | None) -> None:
    """Draw a workflow's stages and transitions."""
    result = load_paths([file])
    if result.catalog is None:
        print_diagnostics(result)
        sys.exit(1)
    workflows = result.catalog.workflows
    if workflow_name is not None:
        workflows = tuple(w for w in workflows if w.name == workflow_name)
        if not workflows:
            names = ", ".join(w.name for w in result.catalog.workflows) or "none"
            raise click.BadParameter(f"no workflow '{workflow_name}' in {file} (it has: "
                                     f"{names})", param_hint="--workflow")
    if not workflows:
        click.echo(f"{file}:1:1: error: the file has no workflow to draw")
        sys.exit(1)
    click.echo(render_graph(workflows, output_format), nl=False)
