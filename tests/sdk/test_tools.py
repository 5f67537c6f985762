"""Tools from Python functions (``parley.sdk.tools``): their schemas, and a whole ``respond``
tool loop with plain functions through both clients against a real server (demo model)."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest

from parley import AsyncClient, Client
from parley.sdk import Tool, ToolRegistry, normalize_tools, schema_of
from parley.sdk.tools import functions_of
from tests.sdk.fake import call


class Unit(enum.Enum):
    CELSIUS = "C"
    FAHRENHEIT = "F"


def forecast(
    city: str,
    days: int,
    unit: Unit = Unit.CELSIUS,
    detail: Literal["short", "long"] = "short",
    hours: list[int] | None = None,
    tags: set[str] | None = None,
    limits: dict[str, float] | None = None,
    pair: tuple[int, ...] = (),
    fixed: tuple[int, str] | None = None,
    extra: Any = None,
    exact: bool = False,
    note=None,  # type: ignore[no-untyped-def]
) -> str:
    """The weather to come in a city.

    A second paragraph that is not part of the description.

    Args:
        city: the city's name,
            for example Lisbon
        days (int): how many days ahead
        unit: the temperature unit

    Returns:
        the forecast.
    """
    return city


def test_every_supported_annotation_has_its_json_schema() -> None:
    assert schema_of(forecast) == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "the city's name, for example Lisbon"},
            "days": {"type": "integer", "description": "how many days ahead"},
            "unit": {
                "type": "string",
                "enum": ["C", "F"],
                "description": "the temperature unit",
                "default": "C",
            },
            "detail": {"type": "string", "enum": ["short", "long"], "default": "short"},
            "hours": {"type": "array", "items": {"type": "integer"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "limits": {"type": "object", "additionalProperties": {"type": "number"}},
            "pair": {"type": "array", "items": {"type": "integer"}, "default": ()},
            "fixed": {"type": "array"},
            "extra": {},
            "exact": {"type": "boolean", "default": False},
            "note": {"type": "string"},
        },
        "required": ["city", "days"],
    }
    tool = Tool.of(forecast)
    assert (tool.name, tool.description) == ("forecast", "The weather to come in a city.")
    assert tool.definition() == {
        "name": "forecast",
        "description": "The weather to come in a city.",
        "parameters": schema_of(forecast),
    }


def test_mixed_literals_and_plain_containers() -> None:
    def pick(choice: Literal[1, "one"], items: list, table: dict) -> None:  # type: ignore[type-arg]
        pass

    assert schema_of(pick)["properties"] == {
        "choice": {"enum": [1, "one"]},
        "items": {"type": "array"},
        "table": {"type": "object"},
    }


@pytest.mark.parametrize(
    "annotation",
    [complex, dict[int, str], Literal[1.5j], list[object], int | str],  # type: ignore[valid-type]
)
def test_what_has_no_schema_asks_for_parameters(annotation: Any) -> None:
    def tool(x: int) -> None:
        pass

    tool.__annotations__["x"] = annotation
    with pytest.raises(TypeError, match="pass parameters= explicitly"):
        Tool.of(tool)
    assert Tool.of(tool, parameters={"type": "object"}).parameters == {"type": "object"}


def test_tool_names_the_api_would_refuse() -> None:
    with pytest.raises(ValueError, match="tool name"):
        Tool.of(lambda: None)  # "<lambda>"
    assert Tool.of(lambda: None, name="ok").name == "ok"


def test_assistant_tools_may_be_functions_tools_or_specs() -> None:
    spec = {"name": "raw", "parameters": {"type": "object"}}
    registry = ToolRegistry([forecast])
    normalized = normalize_tools([forecast, Tool.of(forecast, name="other"), spec])
    assert normalized == [
        {"type": "function", "function": registry.definitions()[0]},
        {"type": "function", "function": {**registry.definitions()[0], "name": "other"}},
        {"type": "function", "function": spec},
    ]


def test_respond_tools_by_name_from_mappings_lists_and_registries() -> None:
    def lookup(q: str) -> str:
        return q

    registry = ToolRegistry([lookup])
    assert functions_of({"x": lookup}) == {"x": lookup}
    assert functions_of([lookup, Tool.of(forecast, name="f")]) == {"lookup": lookup, "f": forecast}
    assert functions_of(registry) == registry.functions() == {"lookup": lookup}
    with pytest.raises(ValueError, match="two tools are named 'lookup'"):
        functions_of([lookup, lookup])


# ---------------------------------------------------------------- against a server


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name
    """
    return f"sunny in {city}"


def days_until(event: str, days: int = 3) -> dict[str, Any]:
    """Days until an event."""
    return {"event": event, "days": days}


@pytest.fixture(params=["sync", "async"])
async def any_client(
    request: pytest.FixtureRequest, server: Any, user_key: str
) -> AsyncIterator[Any]:
    if request.param == "sync":
        with Client(base_url=server.base_url, api_key=user_key) as client:
            yield client
    else:
        async with AsyncClient(base_url=server.base_url, api_key=user_key) as aclient:
            yield aclient


async def test_respond_runs_plain_functions_through_both_clients(any_client: Any) -> None:
    bot = await call(
        any_client.assistants.create(
            name="Functions", model="demo/x", tools=[get_weather, days_until]
        )
    )
    (weather, days) = (t.function for t in bot.tools)
    assert weather.name == "get_weather" and weather.description == "The weather in a city."
    assert weather.parameters["properties"]["city"] == {
        "type": "string",
        "description": "the city's name",
    }
    assert days.parameters["required"] == ["event"]

    result = await call(
        any_client.respond(
            assistant_id=bot.id,
            content="get_weather Lisbon and days_until launch 12",
            tools=[get_weather, days_until],
        )
    )
    assert result.status == "completed"
    outputs = {r.name: r.output for r in result.tool_results}
    assert outputs["get_weather"] == "sunny in Lisbon and"  # the demo: text up to the next name
    assert outputs["days_until"] == '{"event": "launch 12", "days": 12}'
    assert "sunny in Lisbon" in result.text
