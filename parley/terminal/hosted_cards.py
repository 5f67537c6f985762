"""The calls the server runs itself (hosted tools) as the terminal shows them: one card per
item ``type``, in one table (``CARDS``).

A ``hosted_tool`` event carries an item, once as its call starts and once as it has ended
(``parley.events.HostedToolEvent``). Its card draws it on the answer's ``StreamView``:

=========================  ==============================================================
``mcp_list_tools``         ``listed 3 tools of server`` once listed (or a ``✗`` line)
``mcp_call``               ``⚙ server · name {args}``, then ``✓``/``✗ name  output``
``file_search_call``       ``⚙ file_search "query"``, then the passages found, one a line
``web_search_call``        ``⚙ web_search "query"``, then the pages found, one a line
``code_interpreter_call``  the code (a highlighted block), then its logs, ``[figure: PATH]``
                           lines, the files it wrote and its error
``mcp_approval_request``   nothing: the question comes with the run's actions
``compaction``             nothing: the context was summed up, no call was made
=========================  ==============================================================

Any other type shows through ``UNKNOWN``: its type and its status. A new kind of hosted tool
is one more entry in ``CARDS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.padding import Padding
from rich.syntax import Syntax
from rich.text import Text

from parley.controls import clean
from parley.terminal.display import StreamView
from parley.terminal.lines import indented, json_arguments, shorten, shown_name
from parley.terminal.rendering import CODE_THEME

__all__ = ["CARDS", "UNKNOWN", "Card", "CodeShown", "card_of", "code_shown", "show"]

#: Lines of a code interpreter call's logs shown; the rest is counted, not printed.
LOG_LINES_SHOWN = 40
#: The spinner's words once a call has ended.
THINKING = "Thinking…"

#: One step of a card: draws ``item`` on the view and answers the words the spinner shows
#: from now on (None: the words stay).
Step = Callable[[StreamView, Mapping[str, Any]], str | None]


@dataclass(frozen=True, slots=True)
class Card:
    """How one kind of hosted item shows: ``started`` as its call begins (None: nothing
    shows until it ends), ``done`` once it has ended."""

    done: Step
    started: Step | None = None


def show(view: StreamView, item: Mapping[str, Any], *, done: bool) -> str | None:
    """Draw ``item`` through its card, as its call starts or once it has ended; the words
    the spinner shows from now on, or None."""
    card = card_of(item)
    step = card.done if done else card.started
    return None if step is None else step(view, item)


def card_of(item: Mapping[str, Any]) -> Card:
    """The card of ``item``'s type (``UNKNOWN`` for a type this terminal does not know)."""
    return CARDS.get(str(item.get("type")), UNKNOWN)


def _text(value: Any) -> str:
    """A hosted call's output or error as text (an error may be an object)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        message = value.get("message")
        if isinstance(message, str):
            return message
        content = value.get("content")
        if isinstance(content, list):
            texts = [str(c.get("text", "")) for c in content if isinstance(c, Mapping)]
            return "\n".join(t for t in texts if t)
    return json.dumps(value, ensure_ascii=False, default=str)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _quiet(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """Nothing to show."""
    return None


# ------------------------------------------------------------------------------ MCP


def _listed(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """A server's tools, once listed: how many (or the error)."""
    server = str(item.get("server_label") or "")
    if item.get("error"):
        view.tool_result(f"{server} tools", False, str(item["error"]))
    else:
        view.hosted_note(f"listed {_plural(len(item.get('tools') or []), 'tool')} of {server}")
    return None


def _mcp_started(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """``⚙ server · name {args…}``: a call of a server's tool; its result shows as a
    tool's."""
    name = str(item.get("name") or "")
    server, tool = shown_name(str(item.get("server_label") or "")), shown_name(name)
    limit = max(16, view.console.width - len(server) - len(tool) - 6)
    line = Text.assemble(
        ("⚙ ", "cyan"),
        (server, "dim"),
        " · ",
        (tool, "bold"),
        " ",
        (json_arguments(item.get("arguments"), limit), "dim"),
    )
    view.open_call(name, line)
    return "Running tools…"


def _mcp_done(view: StreamView, item: Mapping[str, Any]) -> str | None:
    name, error = str(item.get("name") or ""), item.get("error")
    if error:
        view.tool_result(name, False, _text(error))
    else:
        view.tool_result(name, True, _text(item.get("output")))
    return THINKING


# -------------------------------------------------------------------------- searches


def _search_line(view: StreamView, tool: str, queries: Sequence[str]) -> None:
    """``⚙ tool "query" · "query"``: a search the server runs; its result shows as a
    tool's, then one line per thing found."""
    shown = " · ".join(f'"{q}"' for q in queries) or "…"
    limit = max(16, view.console.width - 16)
    line = Text.assemble(("⚙ ", "cyan"), (tool, "bold"), " ", (shorten(clean(shown), limit), "dim"))
    view.open_call(tool, line)


def _found(view: StreamView, found: Sequence[tuple[str, str]]) -> None:
    """One indented line per thing found: its name, then the first line of its text."""
    for title, passage in found:
        name = shown_name(title)
        limit = max(16, view.console.width - len(name) - 6)
        first = next((line for line in passage.splitlines() if line.strip()), "")
        view.print_line(
            Text.assemble("    ", (name, "bold"), "  ", (shorten(clean(first), limit), "dim"))
        )


def _file_search_started(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """A search of the session's files: its queries."""
    queries = item.get("queries")
    _search_line(
        view, "file_search", [str(q) for q in queries] if isinstance(queries, list) else []
    )
    return "Searching the files…"


def _file_search_done(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """How many passages the search found, and each one's file and first line (or its
    error)."""
    if item.get("status") == "failed" or item.get("error"):
        view.tool_result("file_search", False, _text(item.get("error")) or "the search failed")
        return THINKING
    results = [r for r in item.get("results") or [] if isinstance(r, Mapping)]
    view.tool_result("file_search", True, _plural(len(results), "passage"))
    _found(
        view,
        [
            (str(r.get("filename") or r.get("file_id") or ""), str(r.get("text") or ""))
            for r in results
        ],
    )
    return THINKING


def _web_search_started(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """A search of the web: its query."""
    action = item.get("action")
    query = action.get("query") if isinstance(action, Mapping) else None
    _search_line(view, "web_search", [str(query)] if query else [])
    return "Searching the web…"


def _web_search_done(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """How many pages the search found, and each one's title and snippet (or its error)."""
    if item.get("status") in ("failed", "incomplete") or item.get("error"):
        view.tool_result("web_search", False, _text(item.get("error")) or "the search failed")
        return THINKING
    pages = [p for p in item.get("pages") or [] if isinstance(p, Mapping)]
    view.tool_result("web_search", True, _plural(len(pages), "page"))
    _found(
        view,
        [(str(p.get("title") or p.get("url") or ""), str(p.get("snippet") or "")) for p in pages],
    )
    return THINKING


# ------------------------------------------------------------------ code interpreter


@dataclass(frozen=True, slots=True)
class CodeShown:
    """What the terminal shows of an ended ``code_interpreter_call`` item."""

    ok: bool
    summary: str
    logs: str
    #: The container path of each figure, and of each other file the code wrote
    #: (``/mnt/data/out.csv (8 bytes)``).
    figures: list[str]
    files: list[str]
    error: str


def code_shown(item: Mapping[str, Any]) -> CodeShown:
    """The parts of an ended code interpreter call as the terminal shows them: the error
    the server appended to the logs is shown apart, once."""
    outputs = [o for o in item.get("outputs") or () if isinstance(o, Mapping)]
    logs = "".join(str(o.get("logs") or "") for o in outputs if o.get("type") == "logs")
    error = _text(item.get("error"))
    if error and logs.endswith(error):
        logs = logs[: -len(error)].removesuffix("\n")
    written = [f for f in item.get("files") or () if isinstance(f, Mapping)]
    paths = {str(f.get("file_id")): str(f.get("path") or f.get("filename") or "") for f in written}
    image_ids = [str(o.get("file_id")) for o in outputs if o.get("type") == "image"]
    figures = [paths.get(i) or i for i in image_ids]
    files = [
        f"{f.get('path') or f.get('filename')} ({f.get('bytes', 0)} bytes)"
        for f in written
        if str(f.get("file_id")) not in image_ids
    ]
    status = item.get("status")
    if status == "failed":
        error, summary = error or "the code was not run", "not run"
    elif status == "incomplete":
        error, summary = error or "the code was stopped", "stopped"
    elif error:
        summary = "error"
    else:
        lines = len(logs.splitlines())
        summary = _plural(lines, "line") + " of output" if lines else "ran"
    if item.get("restarted"):
        error = (error + "\n" if error else "") + (
            "the Python process was started again: earlier variables are gone"
        )
    return CodeShown(not error and status == "completed", summary, logs, figures, files, error)


def _code_started(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """``⚙ python · code interpreter``, then the code as a block (highlighted as Python in
    a terminal): code the server runs for the model."""
    view.open_call(
        "python",
        Text.assemble(("⚙ ", "cyan"), ("python", "bold"), " · ", ("code interpreter", "dim")),
    )
    source = clean(str(item.get("code") or "")).rstrip("\n") or " "
    if view.plain:  # no colours to give: the lines as they are, indented
        view.print_block(indented([Text(source)]))
    else:
        syntax = Syntax(
            source, "python", theme=CODE_THEME, word_wrap=True, background_color="default"
        )
        view.print_block(Padding(syntax, (0, 0, 0, 4), expand=False))
    return "Running the code…"


def _code_done(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """``✓ python  summary`` (or a red ``✗``), then, indented, its logs (the first
    ``LOG_LINES_SHOWN`` lines), a ``[figure: PATH]`` line per figure, the files it wrote,
    and its error in red."""
    shown = code_shown(item)
    view.tool_result("python", shown.ok, shown.summary)
    lines = clean(shown.logs).rstrip("\n").split("\n") if shown.logs.strip() else []
    logs = Text("\n".join(lines[:LOG_LINES_SHOWN]))
    if len(lines) > LOG_LINES_SHOWN:
        logs.append(f"\n… {len(lines) - LOG_LINES_SHOWN} more lines", style="dim")
    parts = [logs] if lines else []
    parts += [Text(f"[figure: {clean(path)}]", style="cyan") for path in shown.figures]
    if shown.files:
        written = ", ".join(clean(f) for f in shown.files)
        parts.append(Text("files written: " + written, style="dim"))
    if shown.error.strip():
        parts.append(Text(clean(shown.error).rstrip("\n"), style="red"))
    if parts:
        view.print_block(indented(parts))
    return THINKING


# --------------------------------------------------------------------------- unknown


def _unknown_started(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """``⚙ type  status``: a call of a kind this terminal does not know."""
    kind = shown_name(str(item.get("type") or "hosted tool"))
    status = shorten(str(item.get("status") or "in_progress"), 40)
    view.open_call(kind, Text.assemble(("⚙ ", "cyan"), (kind, "bold"), "  ", (status, "dim")))
    return f"Running {kind}…"


def _unknown_done(view: StreamView, item: Mapping[str, Any]) -> str | None:
    """``✓ type  status`` (or a red ``✗`` with its error)."""
    kind = shown_name(str(item.get("type") or "hosted tool"))
    status, error = str(item.get("status") or "completed"), _text(item.get("error"))
    ok = not error and status not in ("failed", "incomplete", "cancelled")
    view.tool_result(kind, ok, f"{status}: {error}" if error else status)
    return THINKING


#: The card of each kind of hosted item, by its ``type``.
CARDS: dict[str, Card] = {
    "mcp_list_tools": Card(done=_listed),
    "mcp_call": Card(started=_mcp_started, done=_mcp_done),
    "mcp_approval_request": Card(done=_quiet),
    "file_search_call": Card(started=_file_search_started, done=_file_search_done),
    "web_search_call": Card(started=_web_search_started, done=_web_search_done),
    "code_interpreter_call": Card(started=_code_started, done=_code_done),
    "compaction": Card(done=_quiet),
}
#: The card of a type not in ``CARDS``: its type and its status.
UNKNOWN = Card(started=_unknown_started, done=_unknown_done)
