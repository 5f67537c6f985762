"""What the OpenAI Agents SDK (``openai-agents``) does against Parley: an ``Agent`` on the
demo model, with a function tool, run by ``Runner.run`` and ``Runner.run_streamed`` over
the Responses WebSocket (the SDK's ``responses_websocket_session``) and over plain HTTP
Responses.

The SDK pins ``websockets<17`` and the venv has 17, so ``make test`` installs it beside the
venv (``.venv/agents``) and ``test_agents_sdk.py`` runs this file in a subprocess with that
folder first on ``PYTHONPATH``::

    python tests/openai_sdk/agents_runs.py < request.json > report.json

where the request is ``{"base_url", "api_key"}`` and the report ``{"versions", "sent",
"runs": {name: {...}}}``: ``sent`` the JSON messages the SDK sent on its sockets, and for
each run (``<transport>_<text|tool|streamed>``) its final output, the tool's calls, the
stream's event names and text, or ``error``, the traceback. It uses the standard library
and the SDK only; the SDK's tracing export is off, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import websockets.asyncio.client
from agents import (
    Agent,
    MultiProvider,
    RunConfig,
    Runner,
    function_tool,
    responses_websocket_session,
    set_tracing_disabled,
)

MODEL = "demo/parley"
HELLO = "Hello there"
#: What the tool answers for a city.
WEATHER = "22 C and sunny in {city}"

#: Every JSON message the SDK sent on a WebSocket, in order.
SENT: list[Any] = []
_send = websockets.asyncio.client.ClientConnection.send


async def _recorded_send(self: Any, message: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(message, str):
        SENT.append(json.loads(message))
    await _send(self, message, *args, **kwargs)


websockets.asyncio.client.ClientConnection.send = _recorded_send  # type: ignore[method-assign]


class Weather:
    """The agent's ``get_weather`` tool, and the cities it was called for."""

    def __init__(self) -> None:
        self.cities: list[str] = []

        @function_tool
        def get_weather(city: str) -> str:
            """The weather in a city."""
            self.cities.append(city)
            return WEATHER.format(city=city)

        self.tool = get_weather


@asynccontextmanager
async def transport(name: str, base_url: str, api_key: str) -> AsyncIterator[dict[str, Any]]:
    """``Runner`` keyword arguments that send the agent's model calls over ``name``:
    ``websocket`` (one socket, kept across the runs) or ``http``. ``demo/parley`` is a model
    id of Parley's, not an SDK routing prefix (``unknown_prefix_mode="model_id"``)."""
    if name == "websocket":
        async with responses_websocket_session(
            api_key=api_key, base_url=base_url, unknown_prefix_mode="model_id"
        ) as session:
            yield {"run_config": session.run_config}
        return
    provider = MultiProvider(
        openai_api_key=api_key,
        openai_base_url=base_url,
        openai_use_responses=True,
        openai_use_responses_websocket=False,
        unknown_prefix_mode="model_id",
    )
    try:
        yield {"run_config": RunConfig(model_provider=provider)}
    finally:
        await provider.aclose()


def agent(weather: Weather) -> Agent[Any]:
    return Agent(
        name="Forecaster",
        instructions="Answer briefly; use get_weather for the weather.",
        model=MODEL,
        tools=[weather.tool],
    )


async def run_text(runner: dict[str, Any]) -> dict[str, Any]:
    weather = Weather()
    result = await Runner.run(agent(weather), HELLO, **runner)
    return {"final_output": result.final_output, "cities": weather.cities}


async def run_tool(runner: dict[str, Any]) -> dict[str, Any]:
    weather = Weather()
    result = await Runner.run(agent(weather), "get_weather Paris", **runner)
    return {
        "final_output": result.final_output,
        "cities": weather.cities,
        "items": [item.type for item in result.new_items],
    }


async def run_streamed(runner: dict[str, Any]) -> dict[str, Any]:
    weather = Weather()
    result = Runner.run_streamed(agent(weather), "get_weather Lyon", **runner)
    raw: list[str] = []
    items: list[str] = []
    deltas: list[str] = []
    async for event in result.stream_events():
        if event.type == "raw_response_event":
            raw.append(event.data.type)
            if event.data.type == "response.output_text.delta":
                deltas.append(event.data.delta)
        elif event.type == "run_item_stream_event":
            items.append(event.name)
    return {
        "final_output": result.final_output,
        "cities": weather.cities,
        "raw_events": raw,
        "item_events": items,
        "text": "".join(deltas),
    }


RUNS: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "text": run_text,
    "tool": run_tool,
    "streamed": run_streamed,
}


async def run_all(base_url: str, api_key: str) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for name in ("websocket", "http"):
        async with transport(name, base_url, api_key) as runner:
            for run_name, run in RUNS.items():
                try:
                    runs[f"{name}_{run_name}"] = await asyncio.wait_for(run(runner), 30)
                except Exception:  # noqa: BLE001 - a boundary: every failure goes into the report
                    runs[f"{name}_{run_name}"] = {"error": traceback.format_exc()}
    return runs


def main() -> None:
    set_tracing_disabled(True)
    request = json.load(sys.stdin)
    runs = asyncio.run(run_all(request["base_url"], request["api_key"]))
    versions = {name: version(name) for name in ("openai-agents", "openai", "websockets")}
    json.dump({"versions": versions, "sent": SENT, "runs": runs}, sys.stdout)


if __name__ == "__main__":
    main()
