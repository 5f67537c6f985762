"""Text that others wrote, made safe to show on a terminal.

Anything a model, an MCP server or a Parley server sends (answers, tool names and results,
error messages, model names, ids, a server's stderr lines) may carry terminal control
sequences: an OSC string retitles the window, a CSI clears the screen or moves the cursor,
a C1 byte does either on terminals that read 8-bit controls. ``clean`` removes them, and
every such string passes through it on its way to the screen; ``parley.terminal.display``
uses it for answers, and the command line for everything else it prints.

Rich markup is the other way in: a ``[bold red]`` or ``[link=…]`` in a string handed to
``Console.print`` is interpreted. Show outside strings as ``rich.text.Text`` (or with
``markup=False``), never as a ``str`` that rich renders.

The server's log lines say which request and which run wrote them (``parley.logcontext``),
as text or as one JSON object a line (``--log-format json``).

Standard library only: ``parley models`` and ``parley web`` import it without rich.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any, Literal

from parley.logcontext import ContextFilter

__all__ = [
    "CleanFormatter",
    "ContextFormatter",
    "JsonFormatter",
    "LogFormat",
    "clean",
    "clean_data",
    "escape_controls_in_json",
    "log_to_stderr",
]

LogFormat = Literal["text", "json"]

# Any C0 control but \t and \n, DEL, any C1 control: the fast test that a text needs work.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SEQUENCES = re.compile(
    r"""
      \x1b\[ [0-?]* [\x20-/]* [@-~]?                          # CSI (cursor, colours, erase)
    | \x9b [0-?]* [\x20-/]* [@-~]?                            # 8-bit CSI
    | (?: \x1b[\]PX^_] | [\x90\x98\x9d\x9e\x9f] )            # OSC, DCS, SOS, PM, APC ...
      [^\x07\x1b\x9c]* (?: \x07 | \x1b\\ | \x9c )            # ... with their payload, terminated
    | \x1b [\x20-/]* [0-~]?                                   # any other escape, or a lone ESC
    | [\x00-\x08\x0b-\x1f\x7f-\x9f]                           # what is left: C0, DEL, C1
    """,
    re.VERBOSE,
)
# What JSON text may still carry raw once encoded: DEL and the C1 controls (JSON encoders
# escape only the C0 range).
_JSON_RAW = re.compile(r"[\x7f-\x9f]")


def clean(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (``\\n`` and ``\\t``
    stay). A terminated OSC/DCS string goes with its payload (a window title never shows);
    an unterminated one loses its introducer only, so no text after it is swallowed. Text
    without any control character is returned as is, after one regex scan."""
    if _CONTROL.search(text) is None:
        return text
    return _SEQUENCES.sub("", text)


def clean_data(value: Any) -> Any:
    """JSON-like ``value`` with every string in it (keys too) passed through ``clean``."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return {clean(str(key)): clean_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_data(item) for item in value]
    return value


def escape_controls_in_json(text: str) -> str:
    """JSON ``text`` with DEL and C1 characters written as ``\\u00XX`` escapes: the same
    data, and no raw control byte for a terminal to act on (they can only occur inside
    strings, where the escape means the same character)."""
    if _JSON_RAW.search(text) is None:
        return text
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


class CleanFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose lines pass through ``clean`` (log messages quote what
    servers sent: an MCP server's event names, an upstream's error text)."""

    def format(self, record: logging.LogRecord) -> str:
        return clean(super().format(record))


#: The attributes every ``LogRecord`` has: what is not among them came as ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    [
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "color_message",  # uvicorn's message again, with terminal colours
    ]
)
#: Set by ``ContextFilter``; shown only when set.
_IDS = ("request_id", "run_id")


class ContextFormatter(CleanFormatter):
    """``CleanFormatter``, with the request and run ids (``ContextFilter``) after the
    message when the line has them."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{name}={value}" for name in _IDS if (value := getattr(record, name, None))]
        return f"{line} {' '.join(ids)}" if ids else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    the ids that are set, the fields given as ``extra`` (an access line's ``method``,
    ``path``, ``status``, ...), and ``exception`` (its traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{moment}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        # ASCII escapes: no raw control character reaches a terminal that shows the log.
        return json.dumps(line, default=str)


def log_to_stderr(
    level: int | str = logging.WARNING,
    fmt: str = "%(name)s: %(message)s",
    *,
    log_format: LogFormat | None = None,
) -> None:
    """Send log records of ``level`` and up to stderr through ``CleanFormatter``, unless
    logging is set up already (``logging.basicConfig`` semantics). With ``log_format`` (the
    server's), lines carry the request and run ids: ``text`` after ``fmt``, ``json`` as
    ``JsonFormatter``'s objects."""
    handler = logging.StreamHandler()
    if log_format is None:
        handler.setFormatter(CleanFormatter(fmt))
    else:
        handler.addFilter(ContextFilter())
        handler.setFormatter(JsonFormatter() if log_format == "json" else ContextFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
