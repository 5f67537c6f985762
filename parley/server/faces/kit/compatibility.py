"""``docs/compatibility.md``, written from the options check's tables (``kit.options``):
``python -m parley.server.faces.kit.compatibility > docs/compatibility.md``."""

from __future__ import annotations

import sys

from parley.server.faces.kit.options import FACES, TOOL_TYPES, UNFILLED, Rule

_TITLES = {
    "chat": "Chat Completions (`/v1/chat/completions`)",
    "responses": "Responses (`/v1/responses`, and its WebSocket)",
    "assistants": "Assistants (`/v1/assistants`, `/v1/threads`, runs and messages)",
    "native": "Parley's own API (`/v1/runs`, `/v1/process`, ...)",
}

_PREAMBLE = """\
# Compatibility: what each face does with each request field

<!-- Written by `python -m parley.server.faces.kit.compatibility > docs/compatibility.md`, from
the options check (`parley/server/faces/kit/options.py`); a test fails when they disagree. -->

Every request field of every API face has one rule:

- **supported**: Parley honours it.
- **passed on**: sent to the model's provider where its API has it. Where it does not, the
  request is a 400 that names the field (`unsupported_parameter`), before any model call.
- **hint**: taken and answered back, with no effect on the answer (see its note).
- **refused**: a 400 that names the field, when it asks for something (the condition
  given); its default value is taken.

A field none of these name is unknown: a 400 that names it, as OpenAI answers.
"""


def _row(name: str, rule: Rule) -> str:
    kind = f"{rule.kind} ({rule.when})" if rule.when else rule.kind
    return f"| `{name}` | {kind} | {rule.note} |"


def page() -> str:
    """``docs/compatibility.md``: the tables as Markdown."""
    out = [_PREAMBLE]
    for face, table in FACES.items():
        out += [f"## {_TITLES[face]}", "", "| field | rule | note |", "|---|---|---|"]
        out += [_row(name, rule) for name, rule in table.items()]
        unfilled = UNFILLED[face]
        if unfilled:
            out += ["", "Response fields Parley does not fill:", ""]
            out += [f"- `{name}`: {what}." for name, what in unfilled.items()]
        out.append("")
    out += ["## Tool types", "", "| type | rule | note |", "|---|---|---|"]
    out += [_row(name, rule) for name, rule in TOOL_TYPES.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(page())
