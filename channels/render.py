"""Choosing a message's language variant and rendering its fields (SPEC §1.5a, §1.7).

The variant follows the subscriber's `locale`: a variant declared with a region (`pt-BR`) wins
when it matches exactly; otherwise the language part decides, case-insensitively (`pl-PL`,
`pl_PL` and `PL` all pick `lang "pl"`); otherwise the variant without `lang`. A POSIX locale's
encoding and modifier are ignored (`pt_BR.UTF-8`), and a list as browsers send it
(`de-CH,pl;q=0.9`) is tried language by language, most wanted first.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from channels.base import Rendered
from dsl import model as m
from dsl.addresses import address_problem
from dsl.errors import RenderError, TemplateError
from dsl.templates import compile_template, escaping_for, render


def normalise_locale(locale: str) -> str:
    """`pl_PL.UTF-8`, `sr_RS@latin`, ` PL ` → `pl-pl`, `sr-rs`, `pl`."""
    return locale.split(".")[0].split("@")[0].strip().replace("_", "-").lower()


@functools.lru_cache(maxsize=1024)
def preferred_locales(locale: str) -> tuple[str, ...]:
    """The languages a `locale` attribute names, most wanted first: one locale, or a list
    as browsers send it (`de-CH,pl;q=0.9,en;q=0.8`, an Accept-Language header a site may
    store as it is)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(locale.split(",")):
        name, _, parameters = part.partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        name = normalise_locale(name)
        if name and name != "*" and quality > 0:
            ranked.append((-quality, position, name))
    return tuple(name for _, _, name in sorted(ranked))


def choose_variant(variants: Sequence[m.Message], locale: Any) -> m.Message | None:
    """The variant for a subscriber's locale, or None when no variant fits it."""
    default: m.Message | None = None
    by_lang: dict[str, m.Message] = {}
    for variant in variants:
        if variant.lang is None:
            default = variant
        else:
            by_lang[normalise_locale(variant.lang)] = variant
    if isinstance(locale, str) and by_lang:
        for wanted in preferred_locales(locale):
            if wanted in by_lang:
                return by_lang[wanted]
            language = wanted.split("-")[0]
            if language in by_lang:
                return by_lang[language]
    return default


def render_message(message: m.Message, variables: Mapping[str, Any]) -> Rendered:
    """Render every field; raises RenderError naming the field that failed."""
    fields: dict[str, Any] = {}
    for name, template in message.templates():
        fields[name] = render_field(name, template, variables, message.channel)
        if not template.is_static:  # (`nurture check` has seen the written-out ones)
            problem = address_problem(message.channel, name, fields[name])
            if problem is not None:
                raise RenderError(f"{name}: {problem}")
    for name in _FIELDS[message.channel]:
        fields.setdefault(name, None)
    content = message.content
    if isinstance(content, m.PushContent):
        fields["ttl"] = int(content.ttl.seconds)
        fields["urgency"] = content.urgency
    if isinstance(content, m.WebhookContent) and fields.get("body") is not None:
        try:
            json.loads(fields["body"])
        except ValueError as problem:
            raise RenderError(f"body: not JSON after rendering ({problem})") from None
    return Rendered(message.channel, message.name, message.lang, fields)


_FIELDS: dict[str, tuple[str, ...]] = {
    "push": ("title", "body", "url", "icon", "topic"),
    "email": ("subject", "html", "text"),
    "webhook": ("url", "body"),
}


def render_field(name: str, template: m.Template, variables: Mapping[str, Any],
                 channel: str) -> str:
    if template.is_static:
        return template.source
    try:
        compiled = compile_template(template.source, escaping_for(channel, name))
        return render(compiled, variables)
    except (TemplateError, RenderError) as problem:
        raise RenderError(f"{name}: {problem.message}") from None
