"""The web app's own tools: the registry, the safe calculator and current_time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from parley.sdk.tools import schema_of
from parley.web import ToolRegistry, default_tools
from parley.web.calculator import MAX_LENGTH, CalculatorError, evaluate
from parley.web.tools import calculator, current_time

# ------------------------------------------------------------------- calculator


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2+3*4", "14"),
        ("(2+3)*4", "20"),
        ("2**3**2", "512"),  # right-associative
        ("-2**2", "-4"),  # ** binds tighter than unary minus
        ("(-2)**2", "4"),
        ("7/2", "3.5"),
        ("7//2", "3"),
        ("-7//2", "-4"),
        ("7 % 3", "1"),
        ("0.1 + 0.2", "0.3"),
        ("1/3", "0.333333333333333"),
        ("2 ** -1", "0.5"),
        ("+5 - -5", "10"),
        ("1e3 * 2", "2000"),
        ("  12  ", "12"),
        ("2**100", str(2**100)),
        ("10 - 2 - 3", "5"),
        ("100 / 10 / 5", "2"),
    ],
)
def test_calculator_values_and_precedence(expression: str, value: str) -> None:
    assert calculator(expression) == value


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('echo hi')", "function call"),
        ("os.system", "attribute"),
        ("x + 1", "the name 'x'"),
        ("abs(-1)", "function call"),
        ("'a' * 3", "only numbers"),
        ("[1, 2][0]", "subscript"),
        ("1 if 1 else 2", "ifexp"),
        ("lambda: 1", "lambda"),
        ("1 < 2", "this operator"),
        ("True + 1", "only numbers"),
        ("1j * 1j", "only numbers"),
        ("2 ^ 3", "use **"),
        ("1 << 3", "this operator"),
        ("(1).__class__", "attribute"),
        ("", "empty"),
        ("2 +", "not an arithmetic expression"),
        ("import os", "not an arithmetic expression"),
        ("1; 2", "not an arithmetic expression"),
    ],
)
def test_calculator_refuses_what_is_not_arithmetic(expression: str, reason: str) -> None:
    with pytest.raises(CalculatorError) as refused:
        evaluate(expression)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "expression",
    ["9**9**9", "10**100000", "2**5000", "(10**1000)**5", "10.0**400", "1e308 * 10", "2**1001"],
)
def test_calculator_bounds_the_size_of_results(expression: str) -> None:
    with pytest.raises(CalculatorError, match=r"too large|exponents are limited"):
        evaluate(expression)


def test_calculator_bounds_the_length_of_the_expression() -> None:
    assert evaluate("+".join(["1"] * (MAX_LENGTH // 2))) == MAX_LENGTH // 2
    with pytest.raises(CalculatorError, match="longer than"):
        evaluate("1+" * MAX_LENGTH + "1")


@pytest.mark.parametrize("expression", ["1/0", "1//0", "1 % 0", "0 ** -1", "1.5 / 0.0"])
def test_calculator_division_by_zero_is_an_error(expression: str) -> None:
    with pytest.raises(CalculatorError, match="division by zero"):
        evaluate(expression)


def test_calculator_refuses_complex_results() -> None:
    with pytest.raises(CalculatorError, match="not a real number"):
        evaluate("(-8) ** 0.5")


# ----------------------------------------------------------------- current_time


def _parse(output: str) -> datetime:
    return datetime.fromisoformat(output.split(" ", 1)[0])


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Asia/Kolkata", "America/New_York"])
def test_current_time_in_a_zone(zone: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    output = current_time(zone)
    after = datetime.now(UTC)
    when = _parse(output)
    assert before <= when <= after
    assert when.utcoffset() == datetime.now(ZoneInfo(zone)).utcoffset()
    assert zone in output


def test_current_time_defaults_to_utc() -> None:
    assert _parse(current_time()).utcoffset() == timedelta(0)
    assert _parse(current_time("  ")).utcoffset() == timedelta(0)
    assert "UTC" in current_time()


@pytest.mark.parametrize(
    "zone", ["Mars/Base", "Europe", "../etc/passwd", "/etc/localtime", "x" * 300]
)
def test_current_time_refuses_unknown_zones(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        current_time(zone)


# --------------------------------------------------------------------- registry


def test_default_tools() -> None:
    tools = default_tools()
    assert [d["name"] for d in tools.definitions()] == ["current_time", "calculator"]
    assert tools.execute("calculator", {"expression": "6*7"}) == ("42", False)
    output, failed = tools.execute("current_time", {"timezone": "Nowhere/Land"})
    assert failed and output.startswith("Error: unknown time zone 'Nowhere/Land'")
    assert tools.execute("current_time", {})[1] is False
    # Each call gives a new registry: adding to one does not change another.
    tools.register(lambda: "x", name="extra")
    assert "extra" not in default_tools()


def test_a_schema_comes_from_the_signature() -> None:
    def search(query: str, limit: int, exact: bool = False, score: float | None = None) -> str:
        """Search the notes.

        More text that is not part of the description."""
        return query

    tools = ToolRegistry()
    tool = tools.register(search)
    assert tool.description == "Search the notes."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer"},
            "exact": {"type": "boolean", "default": False},
            "score": {"type": "number"},
        },
        "required": ["query", "limit"],
    }
    assert tools.definitions() == [tool.definition()]


def test_the_decorator_with_and_without_arguments() -> None:
    tools = ToolRegistry()

    @tools.tool
    def plain(word: str) -> str:
        return word.upper()

    @tools.tool(name="shout", description="Say it loud.", parameters={"type": "object"})
    def loud(**anything: Any) -> dict[str, Any]:
        return {"said": anything}

    assert plain("a") == "A"  # the decorators return the function itself
    assert [d["name"] for d in tools.definitions()] == ["plain", "shout"]
    assert tools.definitions()[1] == {
        "name": "shout",
        "description": "Say it loud.",
        "parameters": {"type": "object"},
    }
    assert tools.execute("plain", {"word": "hi"}) == ("HI", False)
    assert tools.execute("shout", {"n": 1}) == ('{"said": {"n": 1}}', False)  # JSON


def test_execute_turns_every_failure_into_an_error_output() -> None:
    tools = ToolRegistry()

    @tools.tool
    def boom(n: int) -> str:
        raise RuntimeError(f"exploded at {n}")

    @tools.tool
    def silent() -> str:
        raise KeyError

    assert tools.execute("boom", {"n": 3}) == ("Error: exploded at 3", True)
    assert tools.execute("silent", {}) == ("Error: KeyError", True)
    output, failed = tools.execute("boom", {"m": 3})
    assert failed and output.startswith("Error: bad arguments for boom")
    assert tools.execute("nope", {}) == ("Error: no tool named 'nope'", True)


def test_an_unannotated_parameter_is_a_string() -> None:
    assert schema_of(lambda items: None)["properties"] == {"items": {"type": "string"}}


def test_parameters_that_cannot_be_named_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot be given by name"):
        schema_of(lambda *args: None)


def test_unsupported_annotations_and_bad_names_are_refused() -> None:
    def takes_a_list(items: list[complex]) -> str:
        return ""

    tools = ToolRegistry()
    with pytest.raises(TypeError, match="pass parameters= explicitly"):
        tools.register(takes_a_list)
    tools.register(takes_a_list, parameters={"type": "object"})  # explicit schema: fine
    with pytest.raises(ValueError, match="already registered"):
        tools.register(takes_a_list, parameters={"type": "object"})
    with pytest.raises(ValueError, match="tool name"):
        tools.register(takes_a_list, name="has space", parameters={})
