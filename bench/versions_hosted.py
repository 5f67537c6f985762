"""The hosted tool calls ``bench/versions.py --hosted`` times: each kind of tool the server
runs, behind one interface (``HostedKind``): what both servers need to run it, the tool
entry a side's requests offer, and a count of the calls made so far.

- ``web_search``: the fake SearXNG of the tests (``parley.testing.fake_search``), in the
  bench process, reached through ``PARLEY_WEB_SEARCH_URL``; a call is a query it received.
- ``mcp``: the test MCP server (``tests/terminal/mcp_server.py``, its ``echo`` tool) over
  streamable HTTP, in the bench process as ``bench/hosted_mcp.py`` serves it, named by URL
  in the request with ``require_approval: never`` (``PARLEY_MCP_ALLOW_URLS=127.0.0.1``); a
  call is a ``tools/call`` request it handled.
- ``file_search``: a vector store on each server holding one small text file, made through
  the API before timing, searched by its words on both sides (``PARLEY_EMBEDDING_MODEL``
  empty: newer versions embed new stores with a local model by default, where the
  embeddings extra is installed, which older ones did not); a call is a search the server
  counted as done (``parley_hosted_tool_duration_seconds`` on ``/metrics``).
  Its model is on a fake upstream of its own in the bench process (provider ``querying``),
  which gives the ``file_search`` function a string ``query`` for the fake to fill, as
  ``bench/file_search.py`` does (the fake leaves lists, and so ``queries``, out).

The model is ``fake/auto:1``: it calls the first tool it is offered, then answers the
tool's result, so every response is one model stream, one call and a second model stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
from hosted_mcp import TimedApp, mcp_server
from loadclient import Target, responses_event

from parley.testing.fake_search import FakeSearch
from parley.testing.fake_upstream import FakeUpstream

KINDS = ("web_search", "mcp", "file_search")
MODEL = "fake/auto:1"


class HostedKind:
    """One kind of hosted tool, as the benchmark uses it."""

    name = ""
    #: What both servers need in their environment to run it.
    env: dict[str, str] = {}
    #: Their config file's extra tables (a provider of its own), and the model to ask.
    config = ""
    model = MODEL

    async def tool(self, base_url: str, key: str) -> dict[str, Any]:
        """The tool entry the requests to the server at ``base_url`` offer (made ready on
        that server first where the kind needs it)."""
        raise NotImplementedError

    def calls(self) -> int:
        """How many calls of this kind were made so far, on either server."""
        raise NotImplementedError

    async def target(self, side: str, port: int, key: str) -> Target:
        """A streamed ``POST /v1/responses`` offering this tool: the stream must carry text
        and end with ``response.completed``."""
        tool = await self.tool(f"http://127.0.0.1:{port}", key)
        body = {"model": self.model, "input": "hi", "tools": [tool], "stream": True}
        return Target.post(
            side,
            port,
            "/v1/responses",
            orjson.dumps(body),
            responses_event,
            needs_final=True,
            Authorization=f"Bearer {key}",
        )


class WebSearch(HostedKind):
    name = "web_search"

    def __init__(self, search: FakeSearch) -> None:
        self.search = search
        self.env = {"PARLEY_WEB_SEARCH_URL": search.url}

    async def tool(self, base_url: str, key: str) -> dict[str, Any]:
        return {"type": "web_search"}

    def calls(self) -> int:
        return len(self.search.queries)


class MCP(HostedKind):
    name = "mcp"
    env = {"PARLEY_MCP_ALLOW_URLS": "127.0.0.1"}

    def __init__(self, url: str, app: TimedApp) -> None:
        self.url, self.app = url, app

    async def tool(self, base_url: str, key: str) -> dict[str, Any]:
        return {
            "type": "mcp",
            "server_label": "bench",
            "server_url": self.url,
            "allowed_tools": ["echo"],
            "require_approval": "never",
        }

    def calls(self) -> int:
        return sum(span.rpc == "tools/call" for span in self.app.spans)


#: The file each server's store holds: the fake model searches for ``query 0``.
PAGE = b"\n\n".join(
    f"Note {n}: the query {n} about the weather of day {n} found rain.".encode() for n in range(20)
)


class QueryingUpstream(FakeUpstream):
    """The fake upstream, its ``file_search`` function given a string ``query`` too."""

    async def _chat(self, body: dict[str, Any], conn: Any, headers: dict[str, str]) -> bool:
        for tool in body.get("tools") or ():
            function = tool.get("function") or {}
            if function.get("name") == "file_search":
                function["parameters"]["properties"].setdefault("query", {"type": "string"})
        return await super()._chat(body, conn, headers)


class FileSearch(HostedKind):
    name = "file_search"
    model = "querying/auto:1"
    env = {"PARLEY_EMBEDDING_MODEL": ""}

    def __init__(self, upstream: QueryingUpstream) -> None:
        self.servers: list[tuple[str, str]] = []
        self.config = (
            f'[providers.querying]\nkind = "openai-chat"\nbase_url = "{upstream.url}/v1"\n'
            'api_key = "sk-fake"\n'
        )

    async def tool(self, base_url: str, key: str) -> dict[str, Any]:
        self.servers.append((base_url, key))
        async with _client(base_url, key) as http:
            made = await http.post(
                "/v1/files", files={"file": ("notes.txt", PAGE)}, data={"purpose": "assistants"}
            )
            made.raise_for_status()
            body = {"name": "bench", "file_ids": [made.json()["id"]]}
            store = (await http.post("/v1/vector_stores", json=body)).raise_for_status().json()
            for _ in range(600):
                store = (await http.get(f"/v1/vector_stores/{store['id']}")).json()
                if store["file_counts"]["completed"] == 1:
                    return {"type": "file_search", "vector_store_ids": [store["id"]]}
                if store["file_counts"]["failed"]:
                    break
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{base_url}: the store's file was not ingested: {store}")

    def calls(self) -> int:
        return sum(_searches(base_url, key) for base_url, key in self.servers)


def _client(base_url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _searches(base_url: str, key: str) -> int:
    """The file searches a server counted as done, on its ``/metrics``."""
    answer = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {key}"})
    answer.raise_for_status()
    count = 0
    for line in answer.text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("parley_hosted_tool_duration_seconds_count{") and all(
            label in name for label in ('kind="file_search"', 'outcome="ok"')
        ):
            count += int(float(value))
    return count


def parse_kinds(text: str) -> list[str]:
    """``--hosted``'s value: kinds separated by commas, each one of ``KINDS``."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"--hosted takes {', '.join(KINDS)} (comma-separated), not {text!r}")
    return kinds


@contextlib.contextmanager
def hosted_services(names: list[str]) -> Iterator[dict[str, HostedKind]]:
    """The kinds ``names``, their services running while in the ``with`` block."""
    with contextlib.ExitStack() as stack:
        kinds: dict[str, HostedKind] = {}
        for name in names:
            if name == "web_search":
                kinds[name] = WebSearch(stack.enter_context(FakeSearch()))
            elif name == "mcp":
                kinds[name] = MCP(*stack.enter_context(mcp_server()))
            else:
                kinds[name] = FileSearch(stack.enter_context(QueryingUpstream()))
        yield kinds
