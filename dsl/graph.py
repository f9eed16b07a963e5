"""A workflow's stages and transitions as a Mermaid or Graphviz (dot) diagram.

Stages are nodes, each transition a labelled edge in its written order (`1.` is tried first),
and an `entry` node points at the start stage along an edge that says which events enrol, so a
marketer can paste the output into a doc. (The condition is on the edge, not in the node: a
round node grows with its text, and `entry on form_submit where form in [...]` drew a circle
that dwarfed the whole funnel.)
"""

from __future__ import annotations

from collections.abc import Iterator

from dsl import model as m
from dsl.conditions import describe, literal

FORMATS = ("mermaid", "dot")


def transition_label(transition: m.Transition) -> str:
    match transition:
        case m.GoWhen(condition=condition):
            return f"when {describe(condition)}"
        case m.GoOn(event=event, where=where):
            return f"on {event}" + (f" where {describe(where)}" if where else "")
        case m.GoAfter(delay=delay):
            return f"after {delay}"
        case m.GoIdle(idle=idle):
            return f"idle for {idle}"
    raise TypeError(transition)  # pragma: no cover


def entry_label(workflow: m.Workflow) -> str:
    parts = []
    for trigger in workflow.entries:
        text = f"on {trigger.event}"
        if trigger.where is not None:
            text += f" where {describe(trigger.where)}"
        parts.append(text)
    return " | ".join(parts)


def _edges(workflow: m.Workflow) -> Iterator[tuple[str, str, str]]:
    for stage in workflow.stages:
        for number, transition in enumerate(stage.transitions, start=1):
            prefix = f"{number}. " if len(stage.transitions) > 1 else ""
            yield stage.name, transition.target, prefix + transition_label(transition)


def to_mermaid(workflows: tuple[m.Workflow, ...]) -> str:
    """Node ids are `WORKFLOW__STAGE` (stage names show as labels): a bare stage name such as
    `end`, `graph` or `style` is a Mermaid keyword and would break the diagram."""
    lines = ["flowchart LR"]
    several = len(workflows) > 1
    for workflow in workflows:
        prefix = f"{workflow.name}__"
        indent = "    " if several else "  "
        if several:
            lines.append(f'  subgraph cluster_{workflow.name} ["{workflow.name}"]')
        entry = f"{prefix}entry"
        lines.append(f'{indent}{entry}(("entry"))')
        for stage in workflow.stages:
            shape = '(["{}"])' if stage.name == workflow.start else '["{}"]'
            lines.append(f"{indent}{prefix}{stage.name}{shape.format(stage.name)}")
        lines.append(f'{indent}{entry} -->|"{_mermaid_text(entry_label(workflow))}"| '
                     f"{prefix}{workflow.start}")
        for source, target, label in _edges(workflow):
            lines.append(f'{indent}{prefix}{source} -->|"{_mermaid_text(label)}"| '
                         f"{prefix}{target}")
        if several:
            lines.append("  end")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_dot(workflows: tuple[m.Workflow, ...]) -> str:
    lines = ["digraph nurture {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for workflow in workflows:
        prefix = f"{workflow.name}."
        lines.append(f"  subgraph {_dot_id('cluster_' + workflow.name)} {{")
        lines.append(f"    label={_dot_id(workflow.name)};")
        entry = _dot_id(prefix + "entry")
        lines.append(f'    {entry} [shape=circle, label="entry"];')
        for stage in workflow.stages:
            style = ", penwidth=2" if stage.name == workflow.start else ""
            lines.append(f"    {_dot_id(prefix + stage.name)} [label={_dot_id(stage.name)}"
                         f"{style}];")
        lines.append(f"    {entry} -> {_dot_id(prefix + workflow.start)} "
                     f"[label={_dot_id(entry_label(workflow))}];")
        for source, target, label in _edges(workflow):
            lines.append(f"    {_dot_id(prefix + source)} -> {_dot_id(prefix + target)} "
                         f"[label={_dot_id(label)}];")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return literal(text)


def render_graph(workflows: tuple[m.Workflow, ...], output_format: str) -> str:
    return to_dot(workflows) if output_format == "dot" else to_mermaid(workflows)
