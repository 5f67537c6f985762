"""The hosted tool calls ``bench/versions.py --hosted`` times: each kind of tool the server
runs, the service its calls go to (started in the bench process, on the load client's CPU),
what both servers need to reach it, and a count of the calls it answered.

- ``web_search``: the fake SearXNG of the tests (``parley.testing.fake_search``), reached
  through ``PARLEY_WEB_SEARCH_URL``; a call is a query it received.
- ``mcp``: the test MCP server (``tests/terminal/mcp_server.py``, its ``echo`` tool) over
  streamable HTTP, as ``bench/hosted_mcp.py`` serves it, named by URL in the request with
  ``require_approval: never`` (``PARLEY_MCP_ALLOW_URLS=127.0.0.1``); a call is a
  ``tools/call`` request it handled.

The model is ``fake/auto:1``: it calls the first tool it is offered, then answers the
tool's result, so every response is one model stream, one call and a second model stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from hosted_mcp import mcp_server
from loadclient import Target, responses_event

from parley.testing.fake_search import FakeSearch

KINDS = ("web_search", "mcp")
MODEL = "fake/auto:1"


@dataclass(frozen=True, slots=True)
class HostedKind:
    """One kind of hosted tool: its entry in a Responses request, the environment both
    servers need to run it, and how many calls its service has answered so far."""

    name: str
    tool: dict[str, Any]
    env: dict[str, str]
    calls: Callable[[], int]

    def target(self, side: str, port: int, key: str) -> Target:
        """A streamed ``POST /v1/responses`` offering this tool: the stream must carry text
        and end with ``response.completed``."""
        body = {"model": MODEL, "input": "hi", "tools": [self.tool], "stream": True}
        return Target.post(
            side,
            port,
            "/v1/responses",
            orjson.dumps(body),
            responses_event,
            needs_final=True,
            Authorization=f"Bearer {key}",
        )


def parse_kinds(text: str) -> list[str]:
    """``--hosted``'s value: kinds separated by commas, each one of ``KINDS``."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"--hosted takes {', '.join(KINDS)} (comma-separated), not {text!r}")
    return kinds


@contextlib.contextmanager
def hosted_services(names: list[str]) -> Iterator[dict[str, HostedKind]]:
    """The services of the kinds ``names``, running while in the ``with`` block."""
    with contextlib.ExitStack() as stack:
        starts = {"web_search": _web_search, "mcp": _mcp}
        yield {name: starts[name](stack) for name in names}


def _web_search(stack: contextlib.ExitStack) -> HostedKind:
    search = stack.enter_context(FakeSearch())

    def calls() -> int:
        return len(search.queries)

    return HostedKind(
        "web_search", {"type": "web_search"}, {"PARLEY_WEB_SEARCH_URL": search.url}, calls
    )


def _mcp(stack: contextlib.ExitStack) -> HostedKind:
    url, app = stack.enter_context(mcp_server())

    def calls() -> int:
        return sum(span.rpc == "tools/call" for span in app.spans)

    tool = {
        "type": "mcp",
        "server_label": "bench",
        "server_url": url,
        "allowed_tools": ["echo"],
        "require_approval": "never",
    }
    return HostedKind("mcp", tool, {"PARLEY_MCP_ALLOW_URLS": "127.0.0.1"}, calls)
