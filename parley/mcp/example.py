"""An example MCP server to try hosted MCP with, offline and with no key.

    python -m parley.mcp.example [--port 8765] [--host 127.0.0.1] [--seed N]

It serves streamable HTTP on ``http://HOST:PORT/mcp`` and says so in one line once it
listens (``--port 0`` takes any free port, and the line names it). Its tools:

* ``clock``: the current UTC time (read-only).
* ``roll_dice``: ``count`` dice (default 2) of ``sides`` sides (default 6); read-only, as
  rolling changes nothing. ``--seed`` makes the rolls repeat from one start to the next.
* ``word_count``: the words, lines and characters of a text (read-only).
* ``add_note`` / ``list_notes``: notes kept in memory while the server runs; ``add_note``
  is the one tool that is not read-only, so ``allowed_tools: {"read_only": true}`` and
  ``require_approval: {"never": {"read_only": true}}`` have something to tell apart.

:func:`build_server` builds the server for a program that serves it itself (tests do).
"""

from __future__ import annotations

import argparse
import datetime
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp import types
from mcp.server.lowlevel import Server

__all__ = ["DEFAULT_PORT", "TOOLS", "Example", "build_server", "main"]

#: The port it listens on unless told otherwise.
DEFAULT_PORT = 8765
#: The most dice one roll takes, and the most sides a die may have.
MAX_DICE = 100
MAX_SIDES = 1000

_READ_ONLY = types.ToolAnnotations(read_only_hint=True, open_world_hint=False)


def _schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or []}


TOOLS: list[types.Tool] = [
    types.Tool(
        name="clock",
        description="The current date and time in UTC (ISO 8601).",
        input_schema=_schema({}),
        annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
    ),
    types.Tool(
        name="roll_dice",
        description="Roll dice: `count` dice with `sides` sides each; the rolls and their sum.",
        input_schema=_schema(
            {
                "sides": {"type": "integer", "minimum": 2, "maximum": MAX_SIDES, "default": 6},
                "count": {"type": "integer", "minimum": 1, "maximum": MAX_DICE, "default": 2},
            }
        ),
        annotations=_READ_ONLY,
    ),
    types.Tool(
        name="word_count",
        description="Count the words, lines and characters of a text.",
        input_schema=_schema({"text": {"type": "string"}}, ["text"]),
        annotations=types.ToolAnnotations(
            read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    ),
    types.Tool(
        name="add_note",
        description="Keep a note in the server's memory (gone when the server stops).",
        input_schema=_schema({"text": {"type": "string"}}, ["text"]),
        annotations=types.ToolAnnotations(
            read_only_hint=False, destructive_hint=False, open_world_hint=False
        ),
    ),
    types.Tool(
        name="list_notes",
        description="The notes kept so far, oldest first.",
        input_schema=_schema({}),
        annotations=_READ_ONLY,
    ),
]


def _text(text: str, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error)


def _whole(value: Any, default: int, low: int, high: int, name: str) -> int:
    """An integer argument in ``low..high`` (``default`` when absent); ValueError if not."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{name} must be a whole number")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be from {low} to {high}")
    return int(value)


@dataclass
class Example:
    """The example server's state: its dice and the notes it keeps."""

    rng: random.Random = field(default_factory=random.Random)
    notes: list[str] = field(default_factory=list)
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)

    def clock(self, args: dict[str, Any]) -> types.CallToolResult:
        return _text(self.now().replace(microsecond=0).isoformat().replace("+00:00", "Z"))

    def roll_dice(self, args: dict[str, Any]) -> types.CallToolResult:
        try:
            sides = _whole(args.get("sides"), 6, 2, MAX_SIDES, "sides")
            count = _whole(args.get("count"), 2, 1, MAX_DICE, "count")
        except ValueError as exc:
            return _text(str(exc), error=True)
        rolls = [self.rng.randint(1, sides) for _ in range(count)]
        shown = ", ".join(map(str, rolls))
        return _text(f"rolled {count}d{sides}: {shown} (total {sum(rolls)})")

    def word_count(self, args: dict[str, Any]) -> types.CallToolResult:
        text = args.get("text")
        if not isinstance(text, str):
            return _text("text must be a string", error=True)
        lines = len(text.splitlines()) or (1 if text else 0)
        counts = [(len(text.split()), "word"), (lines, "line"), (len(text), "character")]
        return _text(", ".join(f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in counts))

    def add_note(self, args: dict[str, Any]) -> types.CallToolResult:
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            return _text("text must be a non-empty string", error=True)
        self.notes.append(text.strip())
        return _text(f"note {len(self.notes)} kept")

    def list_notes(self, args: dict[str, Any]) -> types.CallToolResult:
        if not self.notes:
            return _text("no notes yet")
        return _text("\n".join(f"{n}. {note}" for n, note in enumerate(self.notes, 1)))

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], types.CallToolResult]]:
        return {
            "clock": self.clock,
            "roll_dice": self.roll_dice,
            "word_count": self.word_count,
            "add_note": self.add_note,
            "list_notes": self.list_notes,
        }


def build_server(state: Example | None = None) -> Server[Any]:
    """The example server, on ``state`` (a fresh one unless given)."""
    state = state or Example()
    handlers = state.handlers()

    async def list_tools(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        handler = handlers.get(params.name)
        if handler is None:
            return _text(f"no tool named {params.name!r}", error=True)
        return handler(params.arguments or {})

    return Server(
        "parley-example",
        version="1.0",
        instructions="Example tools: a clock, dice, a word counter and a notebook.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def main(argv: list[str] | None = None) -> None:
    """Serve the example over streamable HTTP until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m parley.mcp.example", description="An example MCP server for Parley."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--seed", type=int, default=None, help="repeatable dice rolls")
    opts = parser.parse_args(argv)

    import socket

    import uvicorn

    server = build_server(Example(rng=random.Random(opts.seed)))
    app = server.streamable_http_app(host=opts.host)
    # Bind before saying where: a port in use fails here, plainly, and never prints an address
    # some other program answers on; port 0 then names the port the system chose.
    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((opts.host, opts.port))
    except OSError as exc:
        listener.close()
        parser.exit(1, f"cannot listen on {opts.host}:{opts.port}: {exc.strerror}\n")
    listener.listen(128)
    port = listener.getsockname()[1]
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    print(f"Example MCP server on http://{host}:{port}/mcp (Ctrl-C stops it)", flush=True)
    config = uvicorn.Config(app, log_level="warning")
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
