"""How a name, a call's arguments or a line of text is cut to one line of the terminal.

Everything here passes through ``clean`` (``parley.controls``) first: a model, a tool or an
MCP server names and writes what it likes, and none of it may move the cursor or draw a line
of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text

from parley.controls import clean, clean_data

__all__ = ["NAME_SHOWN", "call_arguments", "indented", "json_arguments", "shorten", "shown_name"]

#: The most characters of a name shown (a tool's, a server's, a file's).
NAME_SHOWN = 100


def call_arguments(arguments: Mapping[str, Any] | str | None, limit: int) -> str:
    """A client tool's arguments as ``key=value, ...`` (a JSON text is read first), cut to
    ``limit``."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else None
        except ValueError:
            parsed = None
        arguments = parsed if isinstance(parsed, Mapping) else arguments
    if arguments is None:
        shown = ""
    elif isinstance(arguments, Mapping):
        shown = ", ".join(f"{key}={_compact(value)}" for key, value in arguments.items())
    else:
        shown = arguments
    return shorten(shown, limit)


def json_arguments(arguments: Mapping[str, Any] | str | None, limit: int) -> str:
    """A hosted call's arguments (a JSON text, as the server sends them) as one line of
    JSON, cleaned and cut to ``limit``."""
    value: Any = arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return shorten(arguments, limit)
    shown = json.dumps(clean_data(value), ensure_ascii=False, separators=(", ", ": "), default=str)
    return shorten(shown, limit)


def _compact(value: Any) -> str:
    """``value`` as compact JSON, its strings cleaned first (JSON would only escape them)."""
    return json.dumps(clean_data(value), ensure_ascii=False, separators=(",", ":"), default=str)


def shorten(text: str, limit: int) -> str:
    """``text`` cleaned, on one line, cut to ``limit`` characters (an ellipsis ends a cut)."""
    text = " ".join(clean(text).split())
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def shown_name(name: str) -> str:
    """A name as it is shown: cleaned, on one line and cut (``NAME_SHOWN``). An MCP server
    names its tools as it likes: a line break in a name would draw a line of its own (a
    fake result, a question about another tool), a long one would fill the screen."""
    return shorten(name, NAME_SHOWN)


def indented(parts: Sequence[Text]) -> Text:
    """The lines of ``parts``, one under the other, each indented by four spaces."""
    block = Text()
    lines = [line for part in parts for line in part.split("\n")]
    for n, line in enumerate(lines):
        block.append("    ")
        block.append_text(line)
        if n < len(lines) - 1:
            block.append("\n")
    return block
