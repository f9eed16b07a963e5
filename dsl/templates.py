"""Message fields as sandboxed Jinja2 templates: the one place that knows Jinja2.

Templates come from marketers' files, so they run in Jinja2's sandbox, and an undefined name
is an error (StrictUndefined): a message that would greet "Hi !" is refused rather than sent.
Compiled templates are cached by source, since the same few fields render millions of times.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from jinja2 import ChainableUndefined, Environment, StrictUndefined, TemplateSyntaxError, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment, safe_range
from markupsafe import Markup

from dsl.diagnostics import did_you_mean
from dsl.errors import RenderError, TemplateError

STANDARD_NAMES = frozenset({"subscriber", "scores", "stage", "tags", "workflow"})
"""Variables every message can use (SPEC §1.7); `with` values add to them per send."""
UNSUBSCRIBE_URL = "https://nurture.invalid/unsubscribe"
"""What `{{ unsubscribe_url }}` renders to when the engine decides an e-mail: the dispatcher
puts the recipient's signed one-click link in its place when it sends (the link is signed
there, with the tracking links), and the simulator shows it as it is."""
CHANNEL_NAMES: dict[str, frozenset[str]] = {"email": frozenset({"unsubscribe_url"})}
"""Variables of one channel's messages only, beside the standard ones."""


def names_for(channel: str) -> frozenset[str]:
    """The variables a message of this channel can use without a `with` value."""
    return STANDARD_NAMES | CHANNEL_NAMES.get(channel, frozenset())


MAX_TEXT = 1_000_000
"""The longest string a template may make (a field, or a step towards it), in characters."""
MAX_STEPS = 100_000
"""Steps of `range` loops in one rendering, all loops together."""
MAX_POWER_DIGITS = 1_000
"""The largest result of `**`, in decimal digits."""

_steps: ContextVar[list[int]] = ContextVar("template_steps")
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million and more, in a format


class BoundedSandbox(SandboxedEnvironment):
    """Jinja2's sandbox keeps a template from reaching Python; this also keeps one from
    taking the engine's time or memory: `nurture check` and every send render it, so a
    template with loops inside loops, or `'x' * 10**10`, would hang or kill them (the
    service included) instead of being reported as the one failing message."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _too_many_digits(left, right):
            raise SecurityError(f"{left} ** {right} is over {MAX_POWER_DIGITS} digits")
        if operator == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(__obj, "__wrapped__", __obj)  # (the sandbox wraps str.format)
        name, text = getattr(method, "__name__", None), getattr(method, "__self__", None)
        if isinstance(text, str):
            if name in _PADDING_METHODS:
                _check_widths(*args, *kwargs.values())
            elif name == "format":  # (its arguments are values: the widths are in the text)
                _check_pattern(text)
            elif name == "replace" and len(args) >= 2:
                _check_replace(text, args[0], args[1])
        return super().call(__context, __obj, *args, **kwargs)


def _too_many_digits(base: Any, exponent: Any) -> bool:
    return (isinstance(base, int) and isinstance(exponent, int) and exponent > 0
            and abs(base) > 1 and exponent * math.log10(abs(base)) > MAX_POWER_DIGITS)


def _check_repeat(sequence: Any, times: Any) -> None:
    if isinstance(sequence, str | list | tuple) and isinstance(times, int) and \
            len(sequence) * times > MAX_TEXT:
        raise SecurityError(f"a repetition of over {MAX_TEXT:,} items")


def _check_widths(*values: Any) -> None:
    """Padding to a width over the limit (the numbers among a call's arguments)."""
    if any(isinstance(value, int) and value > MAX_TEXT for value in values):
        raise SecurityError(f"a width of over {MAX_TEXT:,} characters")


def _check_pattern(pattern: Any) -> None:
    """A format (`'%9999999s'`, `'{:>9999999}'`) with a width or precision over the limit."""
    if isinstance(pattern, str) and _WIDTH.search(pattern):
        raise SecurityError(f"a width of over {MAX_TEXT:,} characters")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str) and \
            len(new) > len(old) and \
            len(text) + text.count(old) * (len(new) - len(old)) > MAX_TEXT:
        raise SecurityError(f"a replacement making over {MAX_TEXT:,} characters")


def _counted_range(*bounds: int) -> Iterator[int]:
    """`range` whose steps count towards the rendering's `MAX_STEPS`."""
    steps = _steps.get()
    for number in safe_range(*bounds):
        steps[0] += 1
        if steps[0] > MAX_STEPS:
            raise SecurityError(f"loops over range() took over {MAX_STEPS:,} steps")
        yield number


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that could make a string over the limit, checked first (it keeps how Jinja
    calls it: `functools.wraps` copies its pass-context mark)."""

    @functools.wraps(original)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if name == "replace":  # (eval_context, text, old, new[, count])
            _check_replace(*args[1:4])
        elif name == "format":  # (pattern, values…): the widths are in the pattern
            _check_pattern(args[0])
        else:
            _check_widths(*args, *kwargs.values())
        return original(*args, **kwargs)
    return checked


def _json_string(value: Any) -> Any:
    """What `{{ … }}` puts in a webhook body: text escaped for a JSON string (quotes,
    backslashes, line breaks), so that a subscriber's data can neither break the body nor add
    keys to it (`"lead": "{{ subscriber.id }}"` with an id holding `", "owner": "x`); numbers
    and `| tojson` output (markup-safe) as they are."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    return value


class Unprintable(Exception):
    """A `{{ … }}` whose value is no text to show: the message says what to write instead."""


def _printable(value: Any, in_json: bool = False) -> Any:
    """What `{{ … }}` prints. A site's data holds nulls and objects (`"first_name": null`, an
    address), and printed as Python writes them they would reach a subscriber as "Hi None!"
    or "Hi {'street': …}!" (or a CRM as a body that is no JSON). So a null, and an object in
    text, do not render (the send is skipped as `render_error`, and `nurture check` reports
    the template when its sample data shows it), and in a webhook's body a list or an object
    prints as JSON. A list in text prints as Jinja2 prints it (SPEC §1.7: the fields are
    Jinja2 templates; `{{ tags | join(', ') }}` reads better)."""
    if value is None:
        raise Unprintable("a value printed is null (no value): give a default that also "
                          "replaces null, such as {{ … | default('friend', true) }}")
    if in_json and isinstance(value, Mapping | list | tuple | set | frozenset):
        return Markup(json.dumps(value, ensure_ascii=False, default=_as_json))
    if isinstance(value, Mapping):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise Unprintable(f"a value printed is an object, not text ({shown}): print one of "
                          "its fields")
    return value


def _as_json(value: Any) -> Any:
    """What `json` cannot write itself: scores are exact decimals (JSON numbers: `30`, `24.5`),
    a set a sorted list (`json` asks for these at any depth, the top included)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _printable_json_string(value: Any) -> Any:
    if isinstance(value, bool):  # `"vip": {{ subscriber.vip }}`: JSON's, not Python's True
        return "true" if value else "false"
    return _json_string(_printable(value, in_json=True))


def _environment(autoescape: bool, json_strings: bool = False) -> SandboxedEnvironment:
    environment = BoundedSandbox(undefined=StrictUndefined, autoescape=autoescape,
                                 keep_trailing_newline=True,
                                 finalize=_printable_json_string if json_strings else _printable)
    environment.globals["range"] = _counted_range
    for name in ("center", "indent", "format", "wordwrap", "truncate", "replace"):
        environment.filters[name] = _bounded_filter(name, environment.filters[name])
    return environment


_ENVIRONMENTS = {"text": _environment(autoescape=False), "html": _environment(autoescape=True),
                 "json": _environment(autoescape=False, json_strings=True)}


def escaping_for(channel: str, field: str) -> str:
    """How a field's `{{ … }}` output is escaped: `html` for an e-mail's HTML, `json` for a
    webhook's body, `text` (as it is) otherwise."""
    if field == "html":
        return "html"
    if channel == "webhook" and field == "body":
        return "json"
    return "text"


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled template plus what static analysis found in it."""

    template: JinjaTemplate
    names: frozenset[str]
    """Top-level variables the template reads."""
    attributes: frozenset[tuple[str, str, int]]
    """`(variable, attribute, line)` for every `variable.attribute` it reads (e.g. scores.x)."""
    unguarded: frozenset[tuple[str, int]]
    """`(attribute, line)` of `subscriber.attribute` reads with neither `| default(…)` nor
    an `is defined` test of that attribute: they fail for a subscriber who lacks it."""


@functools.lru_cache(maxsize=4096)
def compile_template(source: str, escaping: str = "text") -> Compiled:
    """Compile once per distinct source; raises TemplateError with the template's line."""
    environment = _ENVIRONMENTS[escaping]
    try:
        tree = environment.parse(source)
        template = environment.from_string(tree)
    except TemplateSyntaxError as problem:
        raise TemplateError(_with_suggestion(problem.message or "syntax error", environment),
                            problem.lineno or 1) from None
    except MemoryError:  # Jinja works out constant parts while compiling
        raise TemplateError("it needs more memory than there is", 1) from None
    return Compiled(template, _free_names(tree), _attributes(tree), _unguarded(tree))


_UNKNOWN_FILTER_OR_TEST = re.compile(r"No (filter|test) named '([^']+)'(?: found)?\.?")


def _with_suggestion(message: str, environment: Environment) -> str:
    """Jinja's "No filter named 'titel'." (when compiling) or "No test named 'sequense'
    found." (when rendering) with the filter or test most likely meant."""
    unknown = _UNKNOWN_FILTER_OR_TEST.fullmatch(message)
    if unknown is None:
        return message
    kind, name = unknown.groups()
    known = environment.filters if kind == "filter" else environment.tests
    return f"no {kind} named '{name}'{did_you_mean(name, known)}"


def render(compiled: Compiled, variables: Mapping[str, Any]) -> str:
    """Render in the sandbox; any failure becomes a RenderError with Jinja's explanation."""
    token = _steps.set([0])
    try:
        text = compiled.template.render(variables)
    except SecurityError as problem:
        raise RenderError(f"not allowed in a template: {problem}") from None
    except UndefinedError as problem:
        raise RenderError(_undefined(compiled, str(problem))) from None
    except Unprintable as problem:
        raise RenderError(str(problem)) from None
    except JinjaTemplateError as problem:
        raise RenderError(_with_suggestion(str(problem), compiled.template.environment)
                          ) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as problem:
        raise RenderError(f"{type(problem).__name__}: {problem}") from None
    except MemoryError:
        raise RenderError("not allowed in a template: it needs more memory than there "
                          "is") from None
    finally:
        _steps.reset(token)
    if len(text) > MAX_TEXT:
        raise RenderError(f"not allowed in a template: over {MAX_TEXT:,} characters")
    return text


_MISSING_KEY = re.compile(r"'dict object' has no attribute '(.+)'")


def _undefined(compiled: Compiled, text: str) -> str:
    """Jinja's "'dict object' has no attribute 'first_name'" in a marketer's terms, when the
    template reads that name from one variable only (`subscriber.first_name`)."""
    missing = _MISSING_KEY.fullmatch(text)
    if missing is None:
        return text
    name = missing[1]
    owners = sorted({variable for variable, attribute, _ in compiled.attributes
                     if attribute == name})
    if len(owners) != 1:
        return text
    read = f"{owners[0]}.{name}"
    return f"{read} is undefined; a default avoids this: {{{{ {read} | default('…') }}}}"


def _free_names(tree: nodes.Template) -> frozenset[str]:
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(tree))


def _attributes(tree: nodes.Template) -> frozenset[tuple[str, str, int]]:
    found: set[tuple[str, str, int]] = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            found.add((node.node.name, node.attr, node.lineno))
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and isinstance(item.arg, nodes.Const) and \
                isinstance(item.arg.value, str):
            found.add((item.node.name, item.arg.value, item.lineno))
    return frozenset(found)


def _unguarded(tree: nodes.Template) -> frozenset[tuple[str, int]]:
    guarded: set[int] = set()  # ids of reads under `| default` or `is defined`
    tested: set[str] = set()  # attributes some `is defined` test looks at
    called: set[int] = set()  # `subscriber.get(…)` and other method calls
    for applied in tree.find_all(nodes.Filter):
        if applied.name in ("default", "d") and applied.node is not None:
            guarded.add(id(applied.node))
    for test in tree.find_all(nodes.Test):
        if test.name in ("defined", "undefined"):
            guarded.add(id(test.node))
            read = _subscriber_read(test.node)
            if read is not None:
                tested.add(read)
    for call in tree.find_all(nodes.Call):
        called.add(id(call.node))
    found: set[tuple[str, int]] = set()
    reads: list[nodes.Expr] = [*tree.find_all(nodes.Getattr), *tree.find_all(nodes.Getitem)]
    for expression in reads:
        read = _subscriber_read(expression)
        if read is None or id(expression) in guarded or id(expression) in called \
                or read in tested:
            continue
        found.add((read, expression.lineno))
    return frozenset(found)


def _subscriber_read(node: nodes.Node) -> str | None:
    """The attribute name if `node` is `subscriber.NAME` or `subscriber["NAME"]`."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) \
            and node.node.name == "subscriber":
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.node, nodes.Name) \
            and node.node.name == "subscriber" and isinstance(node.arg, nodes.Const) \
            and isinstance(node.arg.value, str):
        return node.arg.value
    return None


class SampleSubscriber(dict[str, Any]):
    """A subscriber for `nurture check`: every attribute exists but is empty.

    A template's `subscriber.*` reads never fail at check time (the attributes a real
    subscriber will have are unknown then); `| default(…)` still shows its fallback.
    """

    def __missing__(self, key: str) -> Any:
        return ChainableUndefined(name=key)

    def get(self, key: str, default: Any = None) -> Any:
        """`subscriber.get('x')` as a subscriber who has `x` would see it."""
        return self[key] if default is None else super().get(key, default)


def sample_variables(scores: frozenset[str], stage: str, workflow: str,
                     params: Mapping[str, Any], channel: str = "push") -> dict[str, Any]:
    """The variables a check-time render sees."""
    variables: dict[str, Any] = {
        "subscriber": SampleSubscriber(id="sample-subscriber"),
        "scores": dict.fromkeys(sorted(scores), 0),
        "stage": stage,
        "tags": ["sample"],
        "workflow": workflow,
    }
    variables.update(params)
    if channel == "email":
        variables["unsubscribe_url"] = UNSUBSCRIBE_URL
    return variables
