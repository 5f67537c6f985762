"""What the OpenAI Agents SDK (``openai-agents``) does with Parley's hosted MCP tools: an
``Agent`` on Parley's model with a ``HostedMCPTool`` (the server runs the MCP server's
tools), run by ``Runner.run`` over plain HTTP Responses and over the Responses WebSocket,
once with ``require_approval: "never"`` and once with ``"always"`` and an
``on_approval_request`` callback that approves.

Run by ``test_mcp_clients.py`` in a subprocess with ``.venv/agents`` first on
``PYTHONPATH`` (the SDK pins ``websockets<17``), as ``agents_runs.py`` is::

    python tests/openai_sdk/agents_mcp.py < request.json > report.json

where the request is ``{"base_url", "api_key", "model", "server_label", "server_url"}``
and the report ``{"versions", "runs": {"<transport>_<never|always>": {...}}}``: each run's
final output, its new items' types, the MCP calls and the approval requests the callback
saw, or ``error``, the traceback. It uses the standard library and the SDK only; the SDK's
tracing export is off, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import httpx2
import websockets.asyncio.client
from agents import (
    Agent,
    HostedMCPTool,
    MCPToolApprovalFunctionResult,
    MCPToolApprovalRequest,
    MultiProvider,
    RunConfig,
    Runner,
    responses_websocket_session,
    set_tracing_disabled,
)

TRANSPORTS = ("http", "websocket")


@dataclass(frozen=True)
class Run:
    """One run of the agent: its tool's ``require_approval``; whether it chains its model
    calls with ``previous_response_id`` (``auto_previous_response_id``) instead of sending
    the whole history again (the SDK's default); whether it runs with ``run_streamed``."""

    approval: str
    chained: bool = False
    streamed: bool = False


RUNS = {
    "never": Run("never"),
    "never_streamed": Run("never", streamed=True),
    "always_chained": Run("always", chained=True),
    "always_chained_streamed": Run("always", chained=True, streamed=True),
    "always": Run("always"),
}

#: The Responses requests the SDK sent (HTTP bodies and socket messages), in order.
SENT: list[Any] = []
_ws_send = websockets.asyncio.client.ClientConnection.send
_http_send = httpx2.AsyncClient.send


async def _recorded_ws_send(self: Any, message: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(message, str):
        SENT.append(json.loads(message))
    await _ws_send(self, message, *args, **kwargs)


async def _recorded_http_send(self: Any, request: httpx2.Request, **kwargs: Any) -> Any:
    if request.method == "POST" and request.url.path.endswith("/responses"):
        SENT.append(json.loads(request.content))
    return await _http_send(self, request, **kwargs)


websockets.asyncio.client.ClientConnection.send = _recorded_ws_send  # type: ignore[method-assign]
httpx2.AsyncClient.send = _recorded_http_send  # type: ignore[method-assign]


@asynccontextmanager
async def transport(name: str, base_url: str, api_key: str) -> AsyncIterator[RunConfig]:
    """A run config that sends the agent's model calls over ``name`` (``websocket`` or
    ``http``); Parley's model ids are not SDK routing prefixes (``unknown_prefix_mode``)."""
    if name == "websocket":
        async with responses_websocket_session(
            api_key=api_key, base_url=base_url, unknown_prefix_mode="model_id"
        ) as session:
            yield session.run_config
        return
    provider = MultiProvider(
        openai_api_key=api_key,
        openai_base_url=base_url,
        openai_use_responses=True,
        openai_use_responses_websocket=False,
        unknown_prefix_mode="model_id",
    )
    try:
        yield RunConfig(model_provider=provider)
    finally:
        await provider.aclose()


class Approver:
    """The ``on_approval_request`` callback: approves every call and keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, request: MCPToolApprovalRequest) -> MCPToolApprovalFunctionResult:
        data = request.data
        self.seen.append(
            {
                "id": data.id,
                "name": data.name,
                "server_label": data.server_label,
                "arguments": data.arguments,
            }
        )
        return {"approve": True}


def mcp_calls(items: list[Any]) -> list[dict[str, Any]]:
    """The ``mcp_call`` items among a run's new items: name, output and status."""
    calls = []
    for item in items:
        raw: Any = getattr(item, "raw_item", None)
        if getattr(raw, "type", None) == "mcp_call":
            calls.append({"name": raw.name, "output": raw.output, "status": raw.status})
    return calls


def echo_agent(request: dict[str, Any], approval: str, approver: Approver) -> Agent[Any]:
    """An agent whose only tool is the MCP server's ``echo``, run by Parley."""
    tool_config: Any = {
        "type": "mcp",
        "server_label": request["server_label"],
        "server_url": request["server_url"],
        "require_approval": approval,
        "allowed_tools": ["echo"],
    }
    callback = approver if approval == "always" else None
    return Agent(
        name="Echoer",
        instructions="Use the echo tool, then answer with what it returned.",
        model=request["model"],
        tools=[HostedMCPTool(tool_config=tool_config, on_approval_request=callback)],
    )


async def run_one(request: dict[str, Any], config: RunConfig, run: Run) -> dict[str, Any]:
    """The run's outcome, and the requests it sent (those of a failed run too)."""
    approver = Approver()
    agent = echo_agent(request, run.approval, approver)
    before = len(SENT)
    raw: list[str] = []
    events: list[str] = []
    try:
        if run.streamed:
            streaming = Runner.run_streamed(
                agent, "say it", run_config=config, auto_previous_response_id=run.chained
            )
            async for event in streaming.stream_events():
                if event.type == "raw_response_event":
                    raw.append(event.data.type)
                elif event.type == "run_item_stream_event":
                    events.append(event.name)
            result: Any = streaming
        else:
            result = await Runner.run(
                agent, "say it", run_config=config, auto_previous_response_id=run.chained
            )
    except Exception:  # noqa: BLE001 - a boundary: every failure goes into the report
        return {"error": traceback.format_exc(), "sent": SENT[before:]}
    return {
        "sent": SENT[before:],
        "final_output": result.final_output,
        "items": [item.type for item in result.new_items],
        "calls": mcp_calls(result.new_items),
        "approvals": approver.seen,
        "raw_events": raw,
        "item_events": events,
    }


async def run_all(request: dict[str, Any]) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for name in TRANSPORTS:
        async with transport(name, request["base_url"], request["api_key"]) as config:
            for run_name, run in RUNS.items():
                try:
                    outcome = await asyncio.wait_for(run_one(request, config, run), 30)
                except Exception:  # noqa: BLE001 - a boundary: every failure goes into the report
                    outcome = {"error": traceback.format_exc()}
                runs[f"{name}_{run_name}"] = outcome
    return runs


def main() -> None:
    set_tracing_disabled(True)
    request = json.load(sys.stdin)
    runs = asyncio.run(run_all(request))
    versions = {name: version(name) for name in ("openai-agents", "openai", "websockets")}
    json.dump({"versions": versions, "runs": runs}, sys.stdout)


if __name__ == "__main__":
    main()
