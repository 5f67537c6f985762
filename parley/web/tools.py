"""The web app's own tools: Python functions with JSON Schemas, run by the app itself.

    tools = default_tools()                      # current_time, calculator

    @tools.tool(description="Look up a word in the glossary.")
    def glossary(word: str) -> str:
        ...

The schema of a decorated function comes from its signature (``str``, ``int``, ``float``,
``bool`` parameters, optionally ``| None``; those without a default are required), unless
``parameters=`` gives one. ``definitions()`` is what the assistant is given;
``execute(name, arguments)`` runs a call and answers ``(output, is_error)``: a tool that
raises sends ``"Error: <message>"`` back to the model.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parley.web.calculator import evaluate, format_number

__all__ = ["Tool", "ToolRegistry", "calculator", "current_time", "default_tools"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class _Decorator(Protocol):
    def __call__(self, fn: F, /) -> F: ...


@dataclass(frozen=True, slots=True)
class Tool:
    """One registered tool: what the model is told, and the function that runs it."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


class ToolRegistry:
    """A set of tools by name, in the order they were registered."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def register(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Tool:
        """Add ``function`` as a tool (named after it unless ``name`` is given).

        Raises:
            ValueError: a bad or duplicate name.
            TypeError: a signature no schema can be derived from (pass ``parameters``).
        """
        tool_name = name or function.__name__
        if not _NAME.match(tool_name):
            raise ValueError(f"tool name {tool_name!r}: use 1-64 letters, digits, _ or -")
        if tool_name in self._tools:
            raise ValueError(f"a tool named {tool_name!r} is already registered")
        if description is None:
            description = inspect.cleandoc(function.__doc__ or "").split("\n\n")[0]
        schema = parameters if parameters is not None else schema_of(function)
        tool = Tool(tool_name, " ".join(description.split()), schema, function)
        self._tools[tool_name] = tool
        return tool

    @overload
    def tool(self, function: F, /) -> F: ...

    @overload
    def tool(
        self,
        function: None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> _Decorator: ...

    def tool(
        self,
        function: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Any:
        """Decorator: ``@registry.tool`` or ``@registry.tool(description=..., ...)``."""

        def register(fn: F) -> F:
            self.register(fn, name=name, description=description, parameters=parameters)
            return fn

        return register(function) if function is not None else register

    def definitions(self) -> list[dict[str, Any]]:
        """The tools as ``{"name", "description", "parameters"}``, for an assistant."""
        return [tool.definition() for tool in self._tools.values()]

    def execute(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """Run one call: ``(output, is_error)``. Never raises: an unknown tool, arguments
        that do not fit the function, or an exception in the tool become an error output."""
        tool = self._tools.get(name)
        if tool is None:
            return f"Error: no tool named {name!r}", True
        try:
            inspect.signature(tool.function).bind(**arguments)
        except TypeError as exc:
            return f"Error: bad arguments for {name}: {exc}", True
        try:
            result = tool.function(**arguments)
        except Exception as exc:  # noqa: BLE001 - any failure of a tool is told to the model
            log.info("tool %s failed: %s: %s", name, type(exc).__name__, exc)
            return f"Error: {exc}" if str(exc) else f"Error: {type(exc).__name__}", True
        if isinstance(result, str):
            return result, False
        return json.dumps(result, default=str), False


def schema_of(function: Callable[..., Any]) -> dict[str, Any]:
    """A JSON Schema of ``function``'s parameters, from its signature and annotations."""
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(
                f"{function.__name__}: parameter {param.name!r} cannot be given by name; "
                "pass parameters= explicitly"
            )
        prop = {"type": _json_type(function.__name__, param.name, hints.get(param.name, str))}
        if param.default is param.empty:
            required.append(param.name)
        elif param.default is not None:
            prop["default"] = param.default
        properties[param.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _json_type(function: str, param: str, annotation: Any) -> str:
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            annotation = rest[0]
    json_type = _JSON_TYPES.get(annotation)
    if json_type is None:
        raise TypeError(
            f"{function}: parameter {param!r} has type {annotation!r}; use str, int, float or "
            "bool, or pass parameters= explicitly"
        )
    return json_type


# ------------------------------------------------------------------------- built-ins


def current_time(timezone: str = "UTC") -> str:
    """The current date and time in an IANA time zone (``Europe/Paris``; ``UTC`` if none).

    Raises:
        ValueError: an unknown time zone.
    """
    key = timezone.strip() or "UTC"
    try:
        if len(key) > 64:
            raise ValueError(key)
        zone = ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {key[:64]!r}; use an IANA name such as Europe/Paris or UTC"
        ) from None
    now = datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({now:%A}, {key}, {now.tzname()})"


def calculator(expression: str) -> str:
    """The value of an arithmetic expression (+ - * / // % ** and parentheses)."""
    return format_number(evaluate(expression))


def default_tools() -> ToolRegistry:
    """A new registry with the two built-in tools, ``current_time`` and ``calculator``."""
    tools = ToolRegistry()
    tools.register(
        current_time,
        description="The current date and time in an IANA time zone such as Europe/Paris.",
        parameters={
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "IANA time zone name, for example Europe/Paris (default UTC)",
                }
            },
        },
    )
    tools.register(
        calculator,
        description="Evaluate an arithmetic expression: numbers, + - * / // % ** and "
        "parentheses, for example (2 + 3) * 4.",
        parameters={
            "type": "object",
            "properties": {
                "expression": {"type": "string", "description": "the arithmetic expression"}
            },
            "required": ["expression"],
        },
    )
    return tools
