"""The `nurture` command.

Problems in a user's files are printed as `PATH:LINE:COLUMN: severity: message` and make the
command exit 1; a Python traceback appears only for a bug in nurture, and says so.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dsl.diagnostics import Diagnostic, did_you_mean
from dsl.graph import FORMATS, render_graph
from dsl.loader import LoadResult, load_paths
from engine.collector import tune_for_long_runs
from engine.events import EventError, parse_instant
from engine.records import Record, printable

if TYPE_CHECKING:
    from engine.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def reports_bugs(command: F) -> F:
    """Turn an unexpected exception into a clear 'this is a bug' message and exit code 70."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except Exception as problem:
            if _bad_setting(problem) or _unusable_database(problem):
                click.echo(f"nurture: {problem}", err=True)
                sys.exit(2)
            click.echo("nurture: internal error — this is a bug in nurture, not in your files. "
                       "Please report it with the traceback below.", err=True)
            traceback.print_exc()
            sys.exit(70)

    return wrapper  # type: ignore[return-value]


def _bad_setting(problem: Exception) -> bool:
    """A setting that cannot be used: one line, exit 2 (`engine.config` raises it, and is
    loaded only by the commands that read settings)."""
    config = sys.modules.get("engine.config")
    return config is not None and isinstance(problem, config.ConfigError)


def _settings(**flags: Any) -> Settings:
    """The settings (environment, `.env`), with the command line's flags winning.

    `engine.config` is imported here rather than at the top: it brings the SMTP and VAPID
    code, which `check`, `graph` and `simulate` do without (about 0.1 s, an eighth of
    `nurture check` on a slow machine)."""
    from engine.config import load_settings

    return load_settings().with_flags(**flags)


def _unusable_database(problem: Exception) -> bool:
    """A database that cannot be opened is the operator's setting, not a bug in nurture.

    Its exception's module is looked up only if it was loaded: it pulls in SQLAlchemy, which
    `nurture check` does without."""
    store = sys.modules.get("engine.store.database")
    return store is not None and isinstance(problem, store.DatabaseUnavailable)


def _github_annotations(result: LoadResult) -> str:
    """GitHub Actions' workflow commands: each problem shown on its line of the pull request
    (values escaped as the runner requires)."""
    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    return "\n".join(
        f"::{d.severity} file={prop(d.span.path)},line={d.span.line},col={d.span.column},"
        f"title=nurture check::{data(d.message)}" for d in result.diagnostics)


def _json_report(result: LoadResult) -> str:
    catalog = result.catalog
    return json.dumps({
        "files": list(result.files), "errors": len(result.errors),
        "warnings": len(result.warnings),
        "workflows": len(catalog.workflows) if catalog is not None else None,
        "message_variants": len(catalog.messages) if catalog is not None else None,
        "diagnostics": [{"path": d.span.path, "line": d.span.line, "column": d.span.column,
                         "severity": d.severity, "message": d.message}
                        for d in result.diagnostics]}, ensure_ascii=False, indent=2)


CHECK_FORMATS: dict[str, Callable[[LoadResult], str]] = {
    "text": lambda result: "\n".join(str(d) for d in result.diagnostics),
    "github": _github_annotations, "json": _json_report}


def print_diagnostics(result: LoadResult) -> None:
    for diagnostic in result.diagnostics:
        click.echo(str(diagnostic))


@click.group()
@click.version_option(package_name="nurture")
def main() -> None:
    """nurture — lead-nurturing workflows as code."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "output_format", type=click.Choice(CHECK_FORMATS), default="text",
              show_default=True,
              help="text: PATH:LINE:COLUMN: severity: message; github: annotations on a pull "
                   "request's files (GitHub Actions); json: one document, for tools.")
@click.option("--stdin-filename", "unsaved_name", default=None, metavar="FILE",
              help="Check the standard input as the content of FILE (an editor's unsaved "
                   "buffer), with the other files of PATHS.")
@reports_bugs
def check(paths: tuple[str, ...], output_format: str, unsaved_name: str | None) -> None:
    """Validate workflow files (files, or folders searched for *.flow)."""
    unsaved = None if unsaved_name is None else {unsaved_name: sys.stdin.buffer.read()}
    result = load_paths(paths, unsaved)
    errors, warnings = len(result.errors), len(result.warnings)
    report = CHECK_FORMATS[output_format](result)
    if report:
        click.echo(report)
    summary = f"{len(result.files)} file(s) checked: {errors} error(s), {warnings} warning(s)"
    if result.catalog is not None:
        catalog = result.catalog
        summary += (f"; {len(catalog.workflows)} workflow(s), {len(catalog.messages)} "
                    "message variant(s)")
    click.echo(summary, err=True)
    sys.exit(1 if errors else 0)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing; list the files not laid out, and exit 1 if there are any "
                   "(for CI).")
@click.option("--diff", "show_diff", is_flag=True,
              help="Change nothing; print what would change, as a unified diff.")
@reports_bugs
def fmt(paths: tuple[str, ...], check_only: bool, show_diff: bool) -> None:
    """Lay workflow files out as the SPEC's example is (files, or folders searched for
    *.flow; - reads the standard input and prints it laid out)."""
    import difflib

    from dsl.formatter import format_content, format_paths, write_back

    if "-" in paths and len(paths) > 1:
        raise click.BadParameter("- (the standard input) is formatted alone", param_hint="PATHS")
    standard_input = paths == ("-",)
    problems: list[Diagnostic] = []
    if standard_input:
        formatted = [format_content("<stdin>", sys.stdin.buffer.read())]
    else:
        formatted, problems = format_paths(paths)
    for diagnostic in [*problems, *(d for item in formatted for d in item.problems)]:
        click.echo(str(diagnostic), err=standard_input)  # there, the output is the text
    changed = [item for item in formatted if item.changed]
    unwritten = 0
    if standard_input and not (check_only or show_diff) and formatted[0].after is not None:
        sys.stdout.buffer.write(formatted[0].after)
    for item in changed:
        assert item.after is not None
        if show_diff:
            before = item.before.decode("utf-8-sig").splitlines(keepends=True)
            after = item.after.decode("utf-8-sig").splitlines(keepends=True)
            click.echo("".join(difflib.unified_diff(before, after, item.path, item.path)),
                       nl=False)
        elif check_only:
            click.echo(f"would reformat {item.path}", err=True)
        elif not standard_input:
            try:
                write_back(item.path, item.after)
            except OSError as problem:
                click.echo(f"{item.path}:1:1: error: cannot write: {problem.strerror} "
                           "(the file is left as it was)")
                unwritten += 1
                continue
            click.echo(f"reformatted {item.path}", err=True)
    if standard_input:
        sys.exit(1 if formatted[0].after is None or (check_only and changed) else 0)
    unchanged = sum(item.after is not None and not item.changed for item in formatted)
    failed = len(problems) + sum(item.after is None for item in formatted) + unwritten
    verb = "would be reformatted" if check_only or show_diff else "reformatted"
    click.echo(f"{len(changed) - unwritten} file(s) {verb}, {unchanged} already laid out"
               + (f", {failed} with errors (left as they are)" if failed else ""), err=True)
    sys.exit(1 if failed or (check_only and changed) else 0)


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


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--message", "name", required=True, help="The message's name.")
@click.option("--channel", type=click.Choice(("push", "email", "webhook")), default=None,
              help="When the message is there for several channels.")
@click.option("--attribute", "attributes", multiple=True, metavar="KEY=VALUE",
              help="A subscriber attribute (repeatable): first_name=Anna, locale=pl-PL, "
                   "vip=true (a value that is JSON is read as JSON).")
@click.option("--score", "scores", multiple=True, metavar="NAME=N",
              help="A score of the workflow that sends it (default 0).")
@click.option("--tag", "tags", multiple=True, help="A tag the subscriber has (repeatable).")
@click.option("--with", "params", multiple=True, metavar="KEY=VALUE",
              help="A `with` value, over the one the sending step gives.")
@click.option("--subscriber", default=None, metavar="ID",
              help="Start from this subscriber as the database has them (attributes, "
                   "scores, tags); the options above change it.")
@click.option("--db", default=None, help="With --subscriber: SQLAlchemy URL (NURTURE_DB).")
@click.option("--json", "as_json", is_flag=True, help="The rendered fields as one JSON object.")
@click.option("--send-to", "send_to", default=None, metavar="ADDRESS|SUBSCRIBER|URL",
              help="Also send the message, as rendered, as a test: an e-mail to this address "
                   "through NURTURE_SMTP_URL, a push to this subscriber's browsers (with "
                   "--db), a webhook to this URL. Links are not tracked, and an e-mail's "
                   "unsubscribe link unsubscribes nobody.")
@reports_bugs
def preview(paths: tuple[str, ...], name: str, channel: str | None,
            attributes: tuple[str, ...], scores: tuple[str, ...], tags: tuple[str, ...],
            params: tuple[str, ...], subscriber: str | None, db: str | None,
            as_json: bool, send_to: str | None) -> None:
    """Render a message as one subscriber would get it (nothing is sent, unless --send-to
    sends it as a test)."""
    import orjson

    from engine.preview import PreviewError, parse_assignment
    from engine.preview import preview as render_preview
    from engine.sending_tests import NotSendable, prepare

    result = load_paths(paths)
    if result.catalog is None:
        print_diagnostics(result)
        sys.exit(1)
    try:
        shown = render_preview(
            result.catalog, name, channel,
            attributes=dict(parse_assignment(text) for text in attributes),
            scores={key: _number(key, value) for key, value in map(parse_assignment, scores)},
            tags=tags, params=dict(parse_assignment(text) for text in params),
            stored=None if subscriber is None else _stored(subscriber, db))
        send = None if send_to is None else prepare(shown, send_to, _settings(db=db))
    except PreviewError as problem:
        click.echo(printable(f"nurture: {problem}"), err=True)
        sys.exit(1)
    except NotSendable as problem:
        click.echo(printable(f"nurture: {problem}"), err=True)
        sys.exit(2)
    if as_json:
        click.echo(orjson.dumps(shown.fields).decode())
    else:
        variant = shown.variant
        sender = (f"sent by workflow '{shown.sender[0]}', stage '{shown.sender[1]}'"
                  if shown.sender else "sent by no workflow")
        lang = f" lang {variant.lang}" if variant.lang else ""
        click.echo(f"message {variant.name} {variant.channel}{lang} ({sender})")
        for field, value in shown.fields.items():
            text = str(value)
            click.echo(printable(f"{field}: {text}") if "\n" not in text else
                       f"{field}:\n" + "\n".join(printable(line) for line in text.split("\n")))
    if send is not None:
        answers = send()  # said on the standard error: the preview printed stays as it is
        for answer in answers:
            click.echo(printable(answer.text if answer.delivered
                                 else f"nurture: {answer.text}"), err=True)
        if not all(answer.delivered for answer in answers):
            sys.exit(1)


def _stored(subscriber: str, db: str | None) -> Any:
    """The subscriber as the database has them; exit 2 if it does not."""
    from engine.preview import Stored
    from engine.store import queries

    with _reading_subscriber(_settings(db=db).db, subscriber) as (connection, key):
        return Stored(subscriber, queries.attributes(connection, key),
                      queries.scores(connection, key), queries.tags(connection, key))


@contextmanager
def _reading_subscriber(url: str, subscriber: str) -> Iterator[tuple[Any, int]]:
    """A read-only snapshot of the database and the subscriber's key in it; exit 2, naming
    the id probably meant, if they are not there."""
    from engine.store import queries
    from engine.store.database import open_database

    database = open_database(url, existing=True)
    try:
        with database.reading() as connection:
            key = queries.subscriber_key(connection, subscriber)
            if key is None:
                _no_such_subscribers(connection, [subscriber])
            assert key is not None
            yield connection, key
    finally:
        database.dispose()


def _number(key: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise click.BadParameter(f"{key}={value}: a score is a number", param_hint="--score")
    return value


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--events", "events_path", required=True, metavar="FILE.jsonl",
              help="JSON lines, one event per line (SPEC section 2), in any order; - reads "
                   "them from the standard input.")
@click.option("--from", "start_text", metavar="T",
              help="Print the timeline from T (default: the earliest event).")
@click.option("--until", "until_text", metavar="T",
              help="Simulate up to T, inclusive (default: the latest event plus 30 days).")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
@click.option("--funnel", "as_funnel", is_flag=True,
              help="Print the funnel report of the simulation (as `nurture funnel` does for "
                   "the service) instead of the timeline.")
@click.option("--rules", "as_rules", is_flag=True,
              help="Print the rules report of the simulation (as `nurture rules` does for the "
                   "service): event types named and received, and what each score rule "
                   "did. With --funnel, after it.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Processes that share the subscribers (default: one per CPU). The "
                   "timeline is the same with any number.")
@reports_bugs
def simulate(paths: tuple[str, ...], events_path: str, start_text: str | None,
             until_text: str | None, as_json: bool, as_funnel: bool, as_rules: bool,
             jobs: int | None) -> None:
    """Run workflows in virtual time over recorded or invented events; print the timeline."""
    import orjson

    from engine import simulate as sim
    from engine.records import TableFormat

    if (as_funnel or as_rules) and start_text is not None:
        raise click.BadParameter(f"--{'funnel' if as_funnel else 'rules'} counts the whole "
                                 "simulation; leave out --from", param_hint="--from")
    start = _instant_option(start_text, "--from")
    until = _instant_option(until_text, "--until")
    result = load_paths(paths)
    if result.catalog is None:
        print_diagnostics(result)
        sys.exit(1)
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    try:
        with sim.open_events(events_path) as stream:
            parsed = sim.read_events(stream)
    except OSError as problem:
        click.echo(f"{events_path}:1:1: error: cannot read the events file: {problem}")
        sys.exit(1)
    for bad in parsed.problems:
        click.echo(f"{events_path}:{bad.line}:{bad.column}: error: {bad.message}")
    if parsed.problems:
        click.echo(f"{len(parsed.problems)} bad line(s) in {events_path}: nothing simulated",
                   err=True)
        sys.exit(1)
    for line, name, meant, times in sim.misspelt_types(parsed.events, result.catalog):
        column = parsed.type_columns.get(name, 1)
        click.echo(f"{events_path}:{line}:{column}: warning: event '{name}' is named by no "
                   f"workflow loaded; did you mean '{meant}'? ({times} event(s) of this type, "
                   "the first here)", err=True)
    window = sim.default_window(parsed.events, start, until)
    if window is None:
        click.echo(f"{events_path}:1:1: error: no events, and no --from/--until to simulate")
        sys.exit(1)
    start, until = window
    if until < start:
        raise click.BadParameter("--until is before --from", param_hint="--until")
    reports = as_funnel or as_rules
    received = sim.received_types(parsed.events, until) if as_rules else {}
    table = None if as_json or reports else TableFormat(
        sorted({e.subscriber for e in parsed.events}),
        [w.name for w in result.catalog.workflows])
    if table is not None:
        click.echo(table.header())

    show: Callable[[Record], str] = Record.to_json if table is None else table.line

    tune_for_long_runs()
    out = sys.stdout

    def emit(line: str) -> None:  # hundreds of thousands: no flush per line, as click.echo does
        out.write(line + "\n")

    from engine.funnel import TimelineTally
    from engine.rules_report import RecordTally, rules_report

    tally = TimelineTally()
    scored = RecordTally()

    def count(line: str) -> None:  # --funnel, --rules: the records are counted, not printed
        record = orjson.loads(line)
        if as_funnel:
            tally.add(record)
        if as_rules and record["kind"] == "score":
            scored.add(json.loads(line, parse_float=Decimal))  # decimals exactly
        elif as_rules:
            scored.add(record)

    summary = sim.simulate(result.catalog, parsed.events, start, until,  # consumes them
                           count if reports else emit, show,
                           jobs=jobs or sim.available_cpus())
    if as_funnel:
        _print_funnels(tally.finished(), result.catalog.workflows, as_json, simulated=True)
    if as_rules:
        _print_rules([rules_report(workflow, None, received, scored.recorded(workflow.name),
                                   scored.tags.get(workflow.name), simulated=True)
                      for workflow in result.catalog.workflows], as_json)
    out.flush()
    notes = [f"{summary.events} event(s) of {summary.subscribers} subscriber(s) simulated "
             f"from {start:%Y-%m-%dT%H:%M:%SZ} to {until:%Y-%m-%dT%H:%M:%SZ}: "
             f"{summary.records - summary.hidden} record(s), {summary.sends} send(s), "
             f"{summary.skips} skip(s)"]
    if summary.hidden:
        notes.append(f"{summary.hidden} record(s) before --from not shown")
    if summary.duplicates:
        notes.append(f"{summary.duplicates} event(s) repeated an earlier event's id and were "
                     "stored once")
    if summary.after_until:
        notes.append(f"{summary.after_until} event(s) after --until not simulated")
    click.echo("; ".join(notes), err=True)


def _print_funnels(reports: list[Any], workflows: Any, as_json: bool,
                   simulated: bool = False) -> None:
    """Funnel reports as text or JSON lines (`nurture funnel`, `nurture simulate --funnel`)."""
    import json

    from engine.encoding import plain
    from engine.funnel import as_json as funnel_json
    from engine.funnel import as_text

    declared = {w.name: w for w in workflows}
    for index, counts in enumerate(reports):
        workflow = declared.get(counts.workflow)
        if as_json:
            click.echo(json.dumps(plain(funnel_json(counts, workflow)), ensure_ascii=False))
        else:
            click.echo(("\n" if index else "") + as_text(counts, workflow, simulated))


def _since_option(text: str | None) -> Any:
    """`--since`: a time, or a span back from now (`7 days`)."""
    from engine.clock import SystemClock
    from engine.funnel import parse_since

    if text is None:
        return None
    try:
        return parse_since(text, SystemClock().now(), "--since")
    except EventError as problem:
        raise click.BadParameter(problem.message, param_hint="--since") from None


def _catalog_if_any(folder: str) -> tuple[Any, bool]:
    """The workflows of `folder` for commands that read the database and only use them to
    name and order things: (the catalog or None, whether files were there that do not
    load)."""
    loaded = load_paths([folder]) if os.path.exists(folder) else None
    catalog = loaded.catalog if loaded is not None else None
    return catalog, loaded is not None and catalog is None


def _workflows_named(folder: str, names: tuple[str, ...]) -> tuple[Any, list[str]]:
    """The catalog of `folder` and the workflows asked for (all, when none is): for reports
    that judge subscribers by the files. Files that do not load are reported as `check`
    reports them (exit 1); a name no file declares, with the one probably meant (exit 2)."""
    loaded = load_paths([folder])
    if loaded.catalog is None:
        print_diagnostics(loaded)
        sys.exit(1)
    declared = [workflow.name for workflow in loaded.catalog.workflows]
    for name in names:
        if name not in declared:
            click.echo(f"nurture: no workflow {name!r} in {folder}"
                       f"{did_you_mean(name, declared)}", err=True)
            sys.exit(2)
    return loaded.catalog, list(dict.fromkeys(names)) or declared


def _no_such_subscribers(connection: Any, unknown: list[str]) -> None:
    """Exit 2 naming the ids that are not in the database, with the id probably meant."""
    from engine.store import queries

    if unknown:
        meant = did_you_mean(unknown[0], queries.ids_like(connection, unknown[0]))
        click.echo(printable(f"nurture: no subscriber {', '.join(map(repr, unknown))} in the "
                             f"database{meant}"), err=True)
        sys.exit(2)


def _instant_option(text: str | None, name: str) -> Any:
    if text is None:
        return None
    try:
        return parse_instant(text, name, date_only_ok=True)
    except EventError as problem:
        raise click.BadParameter(problem.message, param_hint=name) from None


@main.command()
@click.option("--rotate-secret", is_flag=True,
              help="Replace the signing secret; the old one is kept beside it, still accepted "
                   "(links already sent keep working).")
@reports_bugs
def keys(rotate_secret: bool) -> None:
    """Create the VAPID key pair and the signing secret if missing; print the public key."""
    settings = _settings()
    if rotate_secret:
        kept = settings.rotate_secret()
        click.echo(
            f"signing secret replaced in {settings.secret_file}; the one before is kept in "
            f"{kept}, still accepted, so the unsubscribe and tracking links already sent keep "
            "working. Restart serve, worker and dispatch to sign with the new one. Give webhook "
            "receivers the new secret: until then they can check X-Nurture-Signature-Previous, "
            f"made with the old one while it is kept. Remove its line from {kept.name} "
            "once the links it signed need not work any more (it is also kept in "
            f"{settings.erasure_secrets_file.name}, where it only recognises the subscribers "
            "erased before the rotation: keep that file).",
            err=True)
    existed = settings.vapid_private_key or settings.vapid_key_file.exists()
    key = settings.vapid_key(create=True)
    secret_existed = settings.secret or settings.secret_file.exists()
    settings.signing_secret(create=True)
    where = ("NURTURE_VAPID_PRIVATE_KEY" if settings.vapid_private_key
             else str(settings.vapid_key_file))
    click.echo(f"VAPID key: {where} ({'existing' if existed else 'created, mode 0600'}); "
               f"signing secret: {'existing' if secret_existed else 'created'}", err=True)
    click.echo(key.public_key)


@main.command()
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--lease", type=click.FloatRange(min=1), default=120, show_default=True,
              help="Seconds a claimed batch is held: if this dispatcher dies, another one "
                   "takes the batch over after this long.")
@reports_bugs
def dispatch(db: str | None, once: bool, lease: float) -> None:
    """Send what the engine decided: the outbox's due dispatches, until stopped.

    SIGTERM or Ctrl-C finishes the batch in hand, then stops.
    """
    import asyncio
    from datetime import timedelta

    from engine.dispatcher import from_settings
    from engine.store.database import open_database

    settings = _settings(db=db)
    database = open_database(settings.db)
    dispatcher = from_settings(settings, database)
    dispatcher.lease = timedelta(seconds=lease)
    tune_for_long_runs()
    try:
        asyncio.run(_dispatch(dispatcher, once, settings.tick_seconds))
    finally:
        database.dispose()


async def _dispatch(dispatcher: Any, once: bool, idle: float) -> None:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    try:
        if once:
            stats = await dispatcher.drain()
            summary = ", ".join(f"{n} {s}" for s, n in sorted(stats.outcomes.items()))
            click.echo(f"dispatched {stats.claimed}: {summary or 'nothing due'}", err=True)
        else:
            await dispatcher.run(stop, idle=min(idle, 1.0))
    finally:
        await dispatcher.close()


def _service(settings: Any) -> tuple[Any, Any]:
    """The runtime and the scheduler of `serve` and `worker` (exits 1 on workflow errors)."""
    from engine.dispatcher import from_settings
    from engine.runtime import Runtime
    from engine.service import Service
    from engine.store.database import open_database

    result = load_paths([settings.workflows])
    if result.catalog is None:
        print_diagnostics(result)
        sys.exit(1)
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    database = open_database(settings.db)
    runtime = Runtime(settings, database, result.catalog)
    service = Service(runtime, from_settings(settings, database))
    tune_for_long_runs()
    return runtime, service


def _banner(runtime: Any, url: str | None) -> None:
    from engine.store.database import printable_url

    settings = runtime.settings
    # The key itself stays out of the output (which a service manager keeps as its log):
    # its first characters tell which key it is, the file has it whole.
    key = ("from NURTURE_API_KEY" if settings.api_key else
           f"{runtime.api_key[:8]}… (in {settings.secret_file.with_name('api-key')})")
    lines = [f"nurture: {len(runtime.catalog.workflows)} workflow(s) from {settings.workflows}, "
             f"database {printable_url(settings.db)}"]
    if url:  # (a worker serves no API: its key would only mislead)
        lines.append(f"nurture: demo page {url}/  API {url}/v1  schema {url}/openapi.json")
        lines.append(f"nurture: API key {key}")
    click.echo("\n".join(lines), err=True)


@main.command()
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--workflows", default=None, help="Folder of .flow files (NURTURE_WORKFLOWS).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="0: any free port (the banner says which).")
@reports_bugs
def serve(db: str | None, workflows: str | None, host: str, port: int) -> None:
    """The service: HTTP API, scheduler and dispatcher in one process."""
    import signal

    import uvicorn

    from engine import logs
    from engine.api import create_app
    from engine.service import AlreadyRunning

    logs.configure()  # first: reading the settings may warn
    settings = _settings(db=db, workflows=workflows)
    listener = _listen(host, port)
    port = int(listener.getsockname()[1])
    if "NURTURE_PUBLIC_URL" not in os.environ and settings.public_url == "http://localhost:8000":
        settings = settings.with_flags(public_url=f"http://{_display(host)}:{port}")
    runtime, service = _service(settings)
    try:
        service.claim()
    except AlreadyRunning as problem:
        click.echo(f"nurture: {problem}", err=True)
        sys.exit(2)
    signal.signal(signal.SIGHUP, lambda *_: service.reload())
    _banner(runtime, f"http://{_display(host)}:{port}")
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, scheduler=service), host=host,
                                           port=port, log_config=None, access_log=False))
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:  # Ctrl-C after a graceful shutdown, as `uvicorn.run` takes it
        pass
    finally:
        listener.close()
        runtime.database.dispose()
    if not server.started:
        sys.exit(3)  # uvicorn logged why; the exit status `uvicorn.run` gives


def _listen(host: str, port: int) -> socket.socket:
    """The service's socket, bound before anything starts.

    Bound here rather than by uvicorn, so that a port in use is one clear line and exit 1
    before the scheduler claims the database, and so that `--port 0` works: the system picks
    a free port, and the banner and the links in messages name the one it picked.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said, not implied (0): asyncio turns Nagle's algorithm off (TCP_NODELAY)
    # only on connections whose socket names its protocol, and accepted connections take the
    # listener's. With 0, small responses waited for delayed ACKs: HTTP ingestion ran ~20%
    # slower (bench.http_ingest) than on a socket uvicorn made itself.
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as problem:
        listener.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        click.echo(f"nurture: cannot listen on {where}: {problem.strerror or problem}", err=True)
        sys.exit(1)
    return listener


@main.command()
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--workflows", default=None, help="Folder of .flow files (NURTURE_WORKFLOWS).")
@click.option("--lease", type=click.FloatRange(min=1), default=120, show_default=True,
              help="Seconds a claimed batch of dispatches is held: if this worker dies, "
                   "another one takes the batch over after this long.")
@reports_bugs
def worker(db: str | None, workflows: str | None, lease: float) -> None:
    """Scheduler and dispatcher only (several of them need PostgreSQL)."""
    import signal
    import threading
    from datetime import timedelta

    from engine import logs
    from engine.service import AlreadyRunning

    logs.configure()  # first: reading the settings may warn
    settings = _settings(db=db, workflows=workflows)
    runtime, service = _service(settings)
    service.dispatcher.lease = timedelta(seconds=lease)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: service.reload())
    _banner(runtime, None)
    try:
        service.start()
    except AlreadyRunning as problem:
        click.echo(f"nurture: {problem}", err=True)
        sys.exit(2)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        service.stop()
        runtime.database.dispose()


@main.command()
@click.argument("workflow")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--workflows", default=None, help="Folder of .flow files (NURTURE_WORKFLOWS).")
@reports_bugs
def move(workflow: str, source: str, target: str, db: str | None,
         workflows: str | None) -> None:
    """Move the subscribers in stage FROM of WORKFLOW into stage TO (entered now).

    For subscribers left in a stage that an edit renamed or removed (the service names them
    at start and reload); it works on any stage. Safe while the service runs.
    """
    from engine.processor import Engine
    from engine.store.database import open_database

    settings = _settings(db=db, workflows=workflows)
    result = load_paths([settings.workflows])
    if result.catalog is None:
        print_diagnostics(result)
        sys.exit(1)
    database = open_database(settings.db, existing=True)
    try:
        moved = Engine(result.catalog, database).move(workflow, source, target)
    except ValueError as problem:
        click.echo(f"nurture: {problem}", err=True)
        sys.exit(2)
    finally:
        database.dispose()
    declared = [s.name for w in result.catalog.workflows if w.name == workflow for s in w.stages]
    meant = did_you_mean(source, declared) if source not in declared else ""
    if moved == 0 and meant:  # nobody in a stage the workflow never had, spelt like one it has
        click.echo(f"nurture: nobody is in stage '{source}' of workflow '{workflow}', which "
                   f"declares no such stage{meant}", err=True)
        sys.exit(2)
    click.echo(f"moved {moved} subscriber(s) of workflow '{workflow}' from stage '{source}' "
               f"to '{target}'", err=True)  # (0 from a removed stage: done before, say)


@main.command()
@click.argument("workflow_names", nargs=-1, metavar="[WORKFLOW]...")
@click.option("--since", "since_text", default=None, metavar="T",
              help="Count what happened since T: a time (2026-03-02, 2026-03-02T09:00:00Z) or "
                   "a span back from now (7 days, 12 hours). Default: all time.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per workflow.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--workflows", default=None, help="Folder of .flow files (NURTURE_WORKFLOWS).")
@reports_bugs
def funnel(workflow_names: tuple[str, ...], since_text: str | None, as_json: bool,
           db: str | None, workflows: str | None) -> None:
    """How each workflow is doing: who is in each stage, who came and left, and what became
    of each message (sent, delivered, skipped and why). Read-only; safe while the service
    runs."""
    from engine.store import funnel as store
    from engine.store.database import open_database

    settings = _settings(db=db, workflows=workflows)
    since = _since_option(since_text)
    catalog, unloadable = _catalog_if_any(settings.workflows)
    if unloadable:
        click.echo(f"nurture: the workflow files in {settings.workflows} do not load (see "
                   "`nurture check`); stages are listed as the database knows them", err=True)
    declared = {w.name: w for w in catalog.workflows} if catalog is not None else {}
    database = open_database(settings.db, existing=True)
    try:
        with database.reading() as connection:
            known = sorted({*declared, *store.workflows(connection)})
            names = list(workflow_names) or known
            reports = [store.funnel(connection, name, since) for name in names]
    finally:
        database.dispose()
    unknown = [r.workflow for r in reports if r.empty and r.workflow not in declared]
    if unknown:
        click.echo(f"nurture: no workflow {', '.join(map(repr, unknown))} in "
                   f"{settings.workflows} and nobody enrolled in it"
                   f"{did_you_mean(unknown[0], known)}", err=True)
        sys.exit(2)
    _print_funnels(reports, declared.values(), as_json)


@main.command()
@click.argument("workflow_names", nargs=-1, metavar="[WORKFLOW]...")
@click.option("--since", "since_text", default=None, metavar="T",
              help="Count only since T: a time (2026-03-02, 2026-03-02T09:00:00Z) or a span "
                   "back from now (7 days, 12 hours). Default: all time.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per workflow.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--workflows", default=None, help="Folder of .flow files (NURTURE_WORKFLOWS).")
@reports_bugs
def rules(workflow_names: tuple[str, ...], since_text: str | None, as_json: bool,
          db: str | None, workflows: str | None) -> None:
    """Whether the workflows' rules meet real traffic: each event type they name with how
    many such events arrived (and the type probably meant, for one that never did), each
    score rule with how often it changed a score, for whom, by how many points, and each tag
    rule with how many it tagged. Read-only; safe while the service runs."""
    from engine.rules_report import read_rules
    from engine.store import rule_counts
    from engine.store.database import open_database

    settings = _settings(db=db, workflows=workflows)
    since = _since_option(since_text)
    catalog, names = _workflows_named(settings.workflows, workflow_names)
    database = open_database(settings.db, existing=True)
    try:
        with database.reading() as connection:
            received = rule_counts.events_by_type(connection, since)
            reports = [read_rules(connection, catalog.workflow(name), since, received)
                       for name in names]
    finally:
        database.dispose()
    _print_rules(reports, as_json)


def _print_rules(reports: list[Any], as_json: bool) -> None:
    """Rules reports as text or JSON lines (`nurture rules`, `nurture simulate --rules`)."""
    import orjson

    from engine.rules_report import rules_json, rules_lines

    for report in reports:
        if as_json:
            click.echo(orjson.dumps(rules_json(report)).decode())
        else:
            click.echo("\n".join(printable(line) for line in rules_lines(report)))


@main.command()
@click.argument("workflow_names", nargs=-1, metavar="[WORKFLOW]...")
@click.option("--stage", "only_stages", multiple=True, metavar="STAGE",
              help="Only this stage (repeatable). Default: every stage.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per workflow.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--workflows", default=None, help="Folder of .flow files (NURTURE_WORKFLOWS).")
@reports_bugs
def waiting(workflow_names: tuple[str, ...], only_stages: tuple[str, ...], as_json: bool,
            db: str | None, workflows: str | None) -> None:
    """What the subscribers of each stage are waiting for: how many meet each comparison of
    each `go to … when`, how many would move if it alone held, and how their scores and
    attributes are spread. Read-only; safe while the service runs."""
    import orjson

    from engine.plan import build_plan
    from engine.store.database import open_database
    from engine.waiting import UnknownStage, read_waiting, waiting_json, waiting_lines

    settings = _settings(db=db, workflows=workflows)
    catalog, names = _workflows_named(settings.workflows, workflow_names)
    plan = build_plan(catalog)
    database = open_database(settings.db, existing=True)
    try:
        with database.reading() as connection:
            for name in names:
                try:
                    report = read_waiting(connection, plan, name, only_stages)
                except UnknownStage as problem:
                    click.echo(f"nurture: {problem}", err=True)
                    sys.exit(2)
                if as_json:
                    click.echo(orjson.dumps(waiting_json(report)).decode())
                else:
                    click.echo("\n".join(printable(line) for line in waiting_lines(report)))
    finally:
        database.dispose()


@main.command()
@click.argument("workflow_name", metavar="WORKFLOW")
@click.option("--stage", "only_stages", multiple=True, metavar="STAGE",
              help="Only those in this stage (repeatable). Default: every stage.")
@click.option("--by", "score", default=None, metavar="SCORE",
              help="The score to rank by. Default: the first the workflow declares.")
@click.option("--since", "since_text", default=None, metavar="T",
              help="Only those who entered their stage since then: a time (2026-03-02, "
                   "2026-03-02T09:00:00Z) or a span back from now (1 day).")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many to list; 0: everyone.")
@click.option("--attribute", "attributes", multiple=True, metavar="NAME",
              help="An attribute to show (repeatable): `email`, `company`...")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per subscriber (JSON lines), written as they are read.")
@click.option("--csv", "as_csv", is_flag=True,
              help="CSV with a header row, for a spreadsheet, written as they are read.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--workflows", default=None, help="Folder of .flow files (NURTURE_WORKFLOWS).")
@reports_bugs
def leads(workflow_name: str, only_stages: tuple[str, ...], score: str | None,
          since_text: str | None, limit: int, attributes: tuple[str, ...], as_json: bool,
          as_csv: bool, db: str | None, workflows: str | None) -> None:
    """A workflow's subscribers, highest score first: their stage and since when, the
    workflow's scores, their tags, and the attributes asked for (the list a sales team
    follows up). Read-only; safe while the service runs."""
    import orjson

    from engine.leads import (
        UnknownScore,
        count,
        csv_header,
        csv_row,
        heading,
        lead_json,
        lead_lines,
        ranking,
    )
    from engine.leads import leads as read_leads
    from engine.store.database import open_database
    from engine.waiting import UnknownStage

    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    since = _since_option(since_text)
    settings = _settings(db=db, workflows=workflows)
    catalog, [name] = _workflows_named(settings.workflows, (workflow_name,))
    workflow = next(w for w in catalog.workflows if w.name == name)
    database = open_database(settings.db, existing=True)
    try:
        with database.reading() as connection:
            try:
                asked = ranking(connection, workflow, only_stages, score, attributes, since)
            except (UnknownScore, UnknownStage) as problem:
                click.echo(f"nurture: {problem}", err=True)
                sys.exit(2)
            found = read_leads(connection, asked, limit or None)
            if as_json:
                write = sys.stdout.write
                for lead in found:
                    write(orjson.dumps(lead_json(asked, lead)).decode() + "\n")
                return
            if as_csv:
                import csv

                table = csv.writer(sys.stdout, lineterminator="\n")
                table.writerow(csv_header(asked))
                for lead in found:
                    table.writerow(csv_row(asked, lead))
                return
            total = count(connection, asked)
            listed = list(found)
            click.echo(heading(asked, total, len(listed)))
            for line in lead_lines(asked, listed):
                click.echo(printable(line))
    finally:
        database.dispose()


@main.command()
@click.argument("address", metavar="EMAIL")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@reports_bugs
def find(address: str, db: str | None) -> None:
    """The subscribers whose e-mail address is EMAIL (letter case aside), one id a line: for
    a person's request about their data, who knows their address, not the site's id for
    them. Exit 1 when nobody has it. Read-only; safe while the service runs."""
    from engine.store import queries
    from engine.store.database import open_database

    database = open_database(_settings(db=db).db, existing=True)
    try:
        with database.reading() as connection:
            found = queries.ids_with_email(connection, address)
    finally:
        database.dispose()
    if not found:
        click.echo(printable(f"nurture: nobody has the e-mail address {address!r}"), err=True)
        sys.exit(1)
    for subscriber in found:
        click.echo(printable(subscriber))


@main.command()
@click.argument("subscribers", nargs=-1, required=True, metavar="SUBSCRIBER...")
@click.option("--yes", is_flag=True, help="Do not ask first (for scripts).")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@reports_bugs
def erase(subscribers: tuple[str, ...], yes: bool, db: str | None) -> None:
    """Erase these subscribers (a data-protection request), as `DELETE /v1/subscribers/{id}`
    does: everything about them goes; a keyed hash of each id stays, so that their old
    events are refused if they come again. Safe while the service runs.

    `nurture find ann@example.com | xargs nurture erase --yes` erases whoever has an address."""
    from channels.tokens import Signer
    from engine.clock import SystemClock
    from engine.store import queries
    from engine.store import subscribers as store
    from engine.store.database import open_database

    settings = _settings(db=db)
    signer = Signer(settings.signing_secret(create=True), settings.earlier_secrets(),
                    settings.retired_secrets())
    database = open_database(settings.db, existing=True)
    try:
        with database.reading() as connection:
            unknown = [who for who in dict.fromkeys(subscribers)
                       if queries.subscriber_key(connection, who) is None]
            _no_such_subscribers(connection, unknown)
        named = list(dict.fromkeys(subscribers))
        if not yes and not click.confirm(
                printable(f"erase {', '.join(named)}: everything about them, for good?"),
                err=True):
            click.echo("nurture: nothing was erased", err=True)
            sys.exit(1)
        for who in named:
            with database.transaction() as connection:
                store.erase(connection, who, SystemClock().now(),
                            signer.fingerprint("erased", who))
            click.echo(printable(f"erased {who}"), err=True)
    finally:
        database.dispose()


@main.command()
@click.argument("subscribers", nargs=-1, required=True, metavar="SUBSCRIBER...")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per subscriber, a line each.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--workflows", default=None, help="Folder of .flow files (NURTURE_WORKFLOWS).")
@reports_bugs
def status(subscribers: tuple[str, ...], as_json: bool, db: str | None,
           workflows: str | None) -> None:
    """Where these subscribers stand and what comes next: each workflow's stage, scores and
    transitions (whether each holds, and why) and the work planned, with when. Read-only;
    safe while the service runs."""
    import orjson

    from engine.plan import build_plan
    from engine.status import status_json, status_lines, subscriber_status
    from engine.store import states
    from engine.store.database import open_database

    settings = _settings(db=db, workflows=workflows)
    loaded = load_paths([settings.workflows])
    if loaded.catalog is None:
        print_diagnostics(loaded)
        sys.exit(1)
    plan = build_plan(loaded.catalog)
    database = open_database(settings.db, existing=True)
    try:
        with database.reading() as connection:
            found = states.peek(connection, list(subscribers), plan)
            _no_such_subscribers(connection, [who for who in subscribers if who not in found])
    finally:
        database.dispose()
    for who in dict.fromkeys(subscribers):
        shown = subscriber_status(plan, found[who])
        if as_json:
            click.echo(orjson.dumps(status_json(shown)).decode())
        else:
            click.echo("\n".join(printable(line) for line in status_lines(shown)))


@main.command()
@click.argument("subscribers", nargs=-1, required=True, metavar="SUBSCRIBER...")
@click.option("--since", "since_text", default=None, metavar="T",
              help="Only what happened since T: a time (2026-03-02, 2026-03-02T09:00:00Z) or a "
                   "span back from now (7 days, 12 hours). Default: all of it.")
@click.option("--latest", type=click.IntRange(min=1), default=None, metavar="N",
              help="Only the last N lines.")
@click.option("--json", "as_json", is_flag=True,
              help="JSON lines: the simulator's records; a send also has its dispatches.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@click.option("--workflows", default=None, help="Folder of .flow files (NURTURE_WORKFLOWS).")
@reports_bugs
def timeline(subscribers: tuple[str, ...], since_text: str | None, latest: int | None,
             as_json: bool, db: str | None, workflows: str | None) -> None:
    """What happened to these subscribers, as `nurture simulate` prints it: stage entries,
    scores with their rules, tags, sends (and what became of them) and skips with their
    reasons, exits. Read-only; safe while the service runs."""
    from engine.records import TableFormat
    from engine.store import queries
    from engine.store import timeline as store
    from engine.store.database import open_database
    from engine.timeline import timeline as told

    settings = _settings(db=db, workflows=workflows)
    since = _since_option(since_text)
    catalog, _ = _catalog_if_any(settings.workflows)
    order = [w.name for w in catalog.workflows] if catalog is not None else []
    database = open_database(settings.db, existing=True)
    try:
        with database.reading() as connection:
            keys = {who: queries.subscriber_key(connection, who) for who in subscribers}
            _no_such_subscribers(connection, [who for who, key in keys.items() if key is None])
            found = [(who, store.happenings(connection, key, since, latest))
                     for who, key in keys.items() if key is not None]
    finally:
        database.dispose()
    lines = told(found, order, latest)
    if as_json:
        for line in lines:
            click.echo(line.to_json())
        return
    table = TableFormat(list(subscribers), [line.record.workflow for line in lines])
    click.echo(table.header())
    for line in lines:
        click.echo(table.line(line.record, line.outcome_text()))


@main.command()
@click.argument("subscribers", nargs=-1, metavar="[SUBSCRIBER]...")
@click.option("--since", "since_text", default=None, metavar="T",
              help="Only events dated since T: a time (2026-03-02, 2026-03-02T09:00:00Z) or a "
                   "span back from now (7 days, 12 hours).")
@click.option("--until", "until_text", default=None, metavar="T",
              help="Only events dated until T (inclusive).")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@reports_bugs
def events(subscribers: tuple[str, ...], since_text: str | None, until_text: str | None,
           db: str | None) -> None:
    """Print the recorded events (of these subscribers, or everyone's) as JSON lines, the
    input of `nurture simulate --events`: try an edited workflow on real traffic. In the
    order they arrived; read-only, safe while the service runs."""
    import orjson

    from engine.encoding import plain
    from engine.store import queries
    from engine.store.database import open_database
    from engine.store.recorded import recorded_events

    settings = _settings(db=db)
    since = _since_option(since_text)
    until = _instant_option(until_text, "--until")
    if since is not None and until is not None and until < since:
        raise click.BadParameter("--until is before --since", param_hint="--until")
    database = open_database(settings.db, existing=True)
    count, people = 0, set()
    try:
        with database.reading() as connection:
            _no_such_subscribers(connection, [who for who in subscribers
                                              if queries.subscriber_key(connection, who) is None])
            for event in recorded_events(connection, subscribers, since, until):
                line: dict[str, Any] = {} if event.key is None else {"id": event.key}
                line.update(subscriber=event.subscriber, type=event.type,
                            at=plain(event.at), properties=event.properties)
                sys.stdout.write(orjson.dumps(line).decode() + "\n")
                count += 1
                people.add(event.subscriber)
    finally:
        database.dispose()
    click.echo(f"{count} event(s) of {len(people)} subscriber(s)", err=True)


@main.command()
@click.option("--older-than", "period_text", default=None, metavar="DURATION",
              help="What to remove: events, messages and score changes older than this, such as "
                   "'400 days' "
                   "or '26 weeks' (at least 30 days). Default: NURTURE_RETENTION.")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@reports_bugs
def prune(period_text: str | None, dry_run: bool, db: str | None) -> None:
    """Remove recorded events, decided messages (with their outbox rows) and removed browser
    subscriptions older than the retention period, and merge each score's older ledger
    entries into one; scores, consents, tags and stages stay. Safe while the service runs,
    which does this once a day itself when NURTURE_RETENTION is set."""
    from engine.clock import SystemClock
    from engine.config import ConfigError, retention_period
    from engine.store import retention
    from engine.store.database import open_database

    settings = _settings(db=db)
    period = settings.retention
    if period_text is not None:
        try:
            period = retention_period("--older-than", period_text)
        except ConfigError as problem:
            raise click.BadParameter(str(problem).partition(": ")[2],
                                     param_hint="--older-than") from None
    if period is None:
        raise click.UsageError("say how old is old enough to remove: --older-than '400 days' "
                               "(or set NURTURE_RETENTION)")
    before = SystemClock().now() - period
    database = open_database(settings.db, existing=True)
    try:
        found = (retention.count if dry_run else retention.prune)(database, before)
    finally:
        database.dispose()
    verb = "would remove" if dry_run else "removed"
    held = (f"; {found.held} older message(s) kept while the outbox still holds them"
            if found.held else "")
    click.echo(f"{verb} {found.events} event(s), {found.messages} message(s), "
               f"{found.browsers} removed browser subscription(s) and {found.ledger} score "
               f"ledger entr{'y' if found.ledger == 1 else 'ies'} (merged) from before "
               f"{before:%Y-%m-%dT%H:%M:%SZ}{held}", err=True)


@main.command("copy")
@click.argument("target_url", metavar="TO")
@click.option("--db", default=None, help="The database to copy (default: NURTURE_DB).")
@reports_bugs
def copy_database_command(target_url: str, db: str | None) -> None:
    """Copy the database into the empty database TO, every row as it is: from SQLite to
    PostgreSQL when one process is no longer enough (TO is created or migrated first).

    Stop the service first: what it writes after the copy began would not be in it. The
    copy is one transaction of TO: one that fails leaves TO empty. The keys (`.nurture/`)
    are files: carry them along."""
    import time

    from engine.scheduler_lock import scheduler_holder
    from engine.store import backup as copies
    from engine.store.copying import CopyRefused, copy_database, same_database
    from engine.store.database import open_database, printable_url

    settings = _settings(db=db)
    shown = {url: printable_url(url) for url in (settings.db, target_url)}
    if same_database(settings.db, target_url):
        raise click.UsageError(f"{shown[target_url]} is the database to copy: name another")
    file = copies.sqlite_path(settings.db)
    running = scheduler_holder(str(file)) if file is not None else None
    if running is not None:
        raise click.UsageError(
            f"a nurture process{f' (pid {running})' if running else ''} runs on {file}: "
            "stop it first (`systemctl stop nurture`); what it writes after the copy began "
            "would not be in the copy")
    source = open_database(settings.db, existing=True)
    target = open_database(target_url)
    began = time.perf_counter()

    def progress(table: str, rows: int) -> None:
        if rows % 100_000 == 0:
            click.echo(f"  {table}: {rows:,} rows ...", err=True)

    try:
        copied = copy_database(source, target, progress=progress)
    except CopyRefused as problem:
        click.echo(f"nurture: {shown[target_url]}: {problem}; nothing was copied", err=True)
        sys.exit(2)
    finally:
        source.dispose()
        target.dispose()
    total = sum(table.rows for table in copied)
    for table in copied:
        click.echo(f"  {table.name:<20} {table.rows:>12,}")
    click.echo(f"copied {total:,} rows from {shown[settings.db]} to {shown[target_url]} in "
               f"{time.perf_counter() - began:.1f} s; point NURTURE_DB at it, and give its "
               "processes the same keys (.nurture/, or NURTURE_SECRET and the VAPID key)",
               err=True)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--keys-only", is_flag=True,
              help="Copy only the keys (a PostgreSQL database is backed up with pg_dump).")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@reports_bugs
def backup(folder: Path, keys_only: bool, db: str | None) -> None:
    """Copy the database and the keys into FOLDER (new or empty), while the service runs.

    The database is copied as of one commit and checked (SQLite: `VACUUM INTO`, which holds
    no writer up); the keys (VAPID key, signing secrets, API key) are copied beside it, since
    a database restored without them leaves every browser subscription and every link sent
    unusable. FOLDER is made readable by its owner only. `nurture restore FOLDER` puts it
    back."""
    from engine.config import write_private
    from engine.store import backup as copies

    settings = _settings(db=db)
    file = copies.sqlite_path(settings.db)
    if file is None and not keys_only:
        raise click.UsageError(
            "the database is not a SQLite file: back it up with its own tools (PostgreSQL: "
            "pg_dump --format=custom), and copy the keys with `nurture backup --keys-only "
            "FOLDER`")
    if file is not None and not keys_only and not file.is_file():
        raise click.ClickException(f"{file}: no such file (the database of NURTURE_DB or "
                                   "--db)")
    if folder.exists() and any(folder.iterdir()):
        raise click.BadParameter(f"{folder} is not empty: a backup never overwrites",
                                 param_hint="FOLDER")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    if file is not None and not keys_only:
        try:
            copied = copies.snapshot(file, folder / BACKUP_DATABASE)
        except copies.BackupError as problem:
            raise click.ClickException(str(problem)) from None
        click.echo(f"database: {copied.path} ({copied.bytes:,} bytes, checked: "
                   f"{copied.subscribers:,} subscriber(s), {copied.events:,} event(s))",
                   err=True)
    kept = folder / BACKUP_KEYS
    names = []
    for name, path in settings.key_files().items():
        if path.is_file():
            kept.mkdir(mode=0o700, exist_ok=True)
            write_private(kept / name, path.read_bytes())
            names.append(name)
    click.echo(f"keys: {', '.join(names)} in {kept}" if names else
               f"keys: no key file in {settings.secret_file.parent}", err=True)
    given = settings.keys_in_environment()
    if given:
        click.echo(f"not in the backup: {', '.join(given)} (keys set in the environment: "
                   "keep them where the service's environment is kept)", err=True)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--replace", is_flag=True,
              help="Replace a database that holds subscribers, and keys that differ.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: NURTURE_DB).")
@reports_bugs
def restore(folder: Path, replace: bool, db: str | None) -> None:
    """Put back what `nurture backup` copied into FOLDER: the database and the keys.

    Stop the service (and every worker) first: a running one would go on from what it holds
    in memory. The database is written through SQLite (never copied over the file, whose
    write-ahead log would then be replayed onto it). Without --replace, a database that
    holds subscribers and keys that differ are left alone, and nothing is done."""
    from engine.config import write_private
    from engine.scheduler_lock import scheduler_holder
    from engine.store import backup as copies

    settings = _settings(db=db)
    file = copies.sqlite_path(settings.db)
    source = folder / BACKUP_DATABASE
    if file is None:
        raise click.UsageError("the database is not a SQLite file: restore it with its own "
                               "tools (PostgreSQL: pg_restore)")
    running = scheduler_holder(str(file))
    if running is not None:
        raise click.UsageError(
            f"a nurture process{f' (pid {running})' if running else ''} runs on {file}: "
            "stop it first (`systemctl stop nurture`); it would go on from what it holds in "
            "memory, on data that is no longer there")
    kept = folder / BACKUP_KEYS
    keys = {name: path for name, path in settings.key_files().items() if (kept / name).is_file()}
    differing = [str(path) for name, path in keys.items()
                 if path.is_file() and path.read_bytes() != (kept / name).read_bytes()]
    try:
        copied = copies.check(source)
    except copies.BackupError as problem:
        raise click.ClickException(str(problem)) from None
    holds = copies.subscribers_in(file)
    if not replace and (holds != 0 or differing):
        what = ([f"{file} holds {holds:,} subscriber(s)"] if holds else
                [f"{file} cannot be read as a database (it will be moved aside to "
                 f"{file.name}.damaged)"] if holds is None else [])
        what += [f"{path} differs from the backup's" for path in differing]
        raise click.UsageError(f"{'; '.join(what)}: add --replace to replace them (with the "
                               "service stopped)")
    copies.restore(copied, file)
    click.echo(f"database: {file} restored from {source} ({copied.subscribers:,} "
               f"subscriber(s), {copied.events:,} event(s))", err=True)
    for name, path in keys.items():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, (kept / name).read_bytes())
    click.echo(f"keys: {', '.join(map(str, keys.values())) or 'none in the backup'}", err=True)


BACKUP_DATABASE = "nurture.db"
BACKUP_KEYS = "keys"


def _display(host: str) -> str:
    """The host as a URL names it (an IPv6 address in brackets)."""
    if host in ("127.0.0.1", "0.0.0.0", "::", "::1"):
        return "localhost"
    return f"[{host}]" if ":" in host else host
