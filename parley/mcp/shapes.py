"""The shapes of Parley's MCP client (``parley.mcp.client``): where a server is, how far a
session may go, and what a listing or a call gave. Plain data, without the MCP SDK, so that
a process that only names servers (the API server, until a turn needs one) does not load it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2

Transport = Literal["streamable_http", "sse", "stdio"]
Failure = Literal["tool", "timeout", "lost", "protocol"]
"""Why a call failed: the tool said so (``isError``), it ran out of time, the connection
ended, or the server answered with a protocol error or something unreadable."""

HttpClientFactory = Callable[[Mapping[str, str], httpx2.Timeout], httpx2.AsyncClient]
"""Builds the HTTP client of an HTTP transport from its headers and timeout (for example one
that checks each address it connects to)."""


@dataclass(frozen=True, slots=True)
class ServerTarget:
    """Where and how to reach one MCP server. ``headers`` and ``env`` may hold secrets: they
    are left out of the repr and never logged."""

    label: str
    url: str | None = None
    transport: Transport = "streamable_http"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: stdio only: the program and its arguments, its environment and working directory.
    command: tuple[str, ...] = ()
    env: Mapping[str, str] | None = field(default=None, repr=False)
    cwd: str | None = None


@dataclass(frozen=True, slots=True)
class Bounds:
    """How far one session may go: seconds per step, characters of output, tools listed."""

    #: Connecting and the protocol's handshake.
    connect_timeout: float = 10.0
    #: The whole listing, every page.
    list_timeout: float = 30.0
    call_timeout: float = 60.0
    #: Longer output is cut to this many characters, and says how many it lost.
    max_output_chars: int = 100_000
    #: A server offering more tools: the first ``max_tools`` kept, ``Listing.cut`` set.
    max_tools: int = 128
    #: Closing: how long the transport may take to shut down before it is cancelled.
    close_timeout: float = 3.0


@dataclass(frozen=True, slots=True)
class ListedTool:
    """One tool a server offers, in its own names and schema."""

    name: str
    description: str | None
    input_schema: dict[str, Any]
    annotations: dict[str, Any] | None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """A server's tools, or why they could not be listed (then ``tools`` is empty); ``cut``:
    the server offered more than were kept."""

    tools: list[ListedTool]
    error: str | None = None
    cut: bool = False


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one call gave: ``output``, or ``error`` (the tool's own text when it reported an
    error, else a plain reason) and ``failure``, why. ``cut``: the text was cut to size."""

    output: str | None
    error: str | None = None
    cut: bool = False
    failure: Failure | None = None
    #: The result's ``structuredContent``, as the server sent it.
    structured: Any = None
