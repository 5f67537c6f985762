"""Tools from Python functions: their JSON Schema from the signature, and a registry.

    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''The weather in a city.

        Args:
            city: the city's name, e.g. Lisbon
        '''

    bot = client.assistants.create(name="w", model="...", tools=[get_weather])
    client.respond(assistant_id=bot.id, content="...", tools=[get_weather])

A function's description is the first paragraph of its docstring; its parameters' come from
an ``Args:`` (or ``Arguments:``, ``Parameters:``) section. Annotations map to JSON Schema:
``str``, ``int``, ``float``, ``bool``, ``list[X]`` / ``tuple[X, ...]`` / ``set[X]``,
``dict[str, X]``, ``Literal[...]``, an ``Enum``, and any of them ``| None``; a parameter
without an annotation is a string, one without a default is required. Anything else needs
``parameters=``, a schema of one's own.

``ToolRegistry`` keeps tools by name and runs calls for a client that runs its own tools
(``parley web`` builds on it); ``Tool.of`` makes one tool.
"""

from __future__ import annotations

import enum
import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, overload

__all__ = ["Tool", "ToolFunctions", "ToolRegistry", "functions_of", "schema_of"]

log = logging.getLogger("parley.sdk")

F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SEQUENCES = (list, tuple, set, frozenset)
_ARGS_HEADINGS = ("args:", "arguments:", "parameters:", "params:")


class _Decorator(Protocol):
    def __call__(self, fn: F, /) -> F: ...


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: what the model is told (``definition()``), and the function that runs it."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]

    @classmethod
    def of(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Tool:
        """The tool of ``function``: named after it and described by its docstring unless
        ``name`` and ``description`` are given, with ``parameters`` or a schema of its
        signature.

        Raises:
            ValueError: a name the API would refuse (1-64 letters, digits, ``_``, ``-``).
            TypeError: a signature no schema can be derived from (pass ``parameters``).
        """
        tool_name: str = name or str(getattr(function, "__name__", ""))
        if not _NAME.match(tool_name):
            raise ValueError(f"tool name {tool_name!r}: use 1-64 letters, digits, _ or -")
        if description is None:
            description = _summary(function.__doc__)
        schema = parameters if parameters is not None else schema_of(function)
        return cls(tool_name, " ".join(description.split()), schema, function)

    def definition(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}``, as ``assistants.create(tools=)`` takes."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


class ToolRegistry:
    """A set of tools by name, in the order they were registered; iterating yields them."""

    def __init__(self, tools: Iterable[Callable[..., Any] | Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool if isinstance(tool, Tool) else Tool.of(tool))

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def add(self, tool: Tool) -> Tool:
        """Add a tool. Raises ``ValueError`` when one of that name is already there."""
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def register(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Tool:
        """Add ``function`` as a tool (``Tool.of``; the same errors, and ``ValueError`` for
        a name already registered)."""
        return self.add(
            Tool.of(function, name=name, description=description, parameters=parameters)
        )

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
        """Decorator: ``@registry.tool`` or ``@registry.tool(description=..., ...)``; the
        function itself is returned, unchanged."""

        def register(fn: F) -> F:
            self.register(fn, name=name, description=description, parameters=parameters)
            return fn

        return register(function) if function is not None else register

    def definitions(self) -> list[dict[str, Any]]:
        """The tools as ``{"name", "description", "parameters"}``, for an assistant."""
        return [tool.definition() for tool in self._tools.values()]

    def functions(self) -> dict[str, Callable[..., Any]]:
        """The functions by tool name, as ``respond(tools=)`` takes them."""
        return {tool.name: tool.function for tool in self._tools.values()}

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


#: What ``respond(tools=)`` takes: functions by tool name, or functions and ``Tool``s (a
#: ``ToolRegistry`` too), each named as ``Tool.of`` names it.
ToolFunctions = Mapping[str, Callable[..., Any]] | Iterable[Callable[..., Any] | Tool]


def functions_of(tools: ToolFunctions) -> dict[str, Callable[..., Any]]:
    """Tool functions by name, from a mapping, a ``ToolRegistry``, or functions and
    ``Tool``s (named as ``Tool.of`` names them)."""
    if isinstance(tools, Mapping):
        return dict(tools)
    table: dict[str, Callable[..., Any]] = {}
    for item in tools:
        tool = item if isinstance(item, Tool) else Tool.of(item, parameters={})
        if tool.name in table:
            raise ValueError(f"two tools are named {tool.name!r}")
        table[tool.name] = tool.function
    return table


# ------------------------------------------------------------------------ schemas


def schema_of(function: Callable[..., Any]) -> dict[str, Any]:
    """A JSON Schema of ``function``'s parameters, from its signature, annotations and the
    ``Args:`` section of its docstring."""
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    described = _argument_docs(function.__doc__)
    where = getattr(function, "__name__", "tool")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(
                f"{where}: parameter {param.name!r} cannot be given by name; "
                "pass parameters= explicitly"
            )
        prop = _schema(where, param.name, hints.get(param.name, str))
        if param.name in described:
            prop["description"] = described[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif param.default is not None:
            default = param.default
            prop["default"] = default.value if isinstance(default, enum.Enum) else default
        properties[param.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _schema(function: str, param: str, annotation: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1 and len(args) == 2:  # X | None: X, not required by its default
            return _schema(function, param, rest[0])
    elif annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    elif annotation is Any:
        return {}
    elif origin is Literal:
        return _enum(function, param, args)
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum(function, param, [member.value for member in annotation])
    elif annotation in _SEQUENCES or origin in _SEQUENCES:
        array: dict[str, Any] = {"type": "array"}
        if args and (origin is not tuple or args[1:] == (...,)):  # not a fixed-size tuple
            array["items"] = _schema(function, param, args[0])
        return array
    elif annotation is dict or (origin is dict and args[0] is str):
        table: dict[str, Any] = {"type": "object"}
        if args and args[1] is not Any:
            table["additionalProperties"] = _schema(function, param, args[1])
        return table
    raise _unsupported(function, param, annotation)


def _enum(function: str, param: str, values: Iterable[Any]) -> dict[str, Any]:
    values = list(values)
    kinds = {type(value) for value in values}
    if not values or not kinds <= set(_SCALARS):
        raise _unsupported(function, param, values)
    if len(kinds) == 1:
        return {"type": _SCALARS[kinds.pop()], "enum": values}
    return {"enum": values}


def _unsupported(function: str, param: str, annotation: Any) -> TypeError:
    return TypeError(
        f"{function}: parameter {param!r} has type {annotation!r}; use str, int, float, bool, "
        "a list or dict of them, a Literal or an Enum, or pass parameters= explicitly"
    )


def _summary(doc: str | None) -> str:
    """The first paragraph of a docstring."""
    return inspect.cleandoc(doc or "").split("\n\n")[0]


def _argument_docs(doc: str | None) -> dict[str, str]:
    """``name: text`` (or ``name (type): text``) entries of a docstring's ``Args:`` section,
    continuation lines joined."""
    found: dict[str, str] = {}
    lines = inspect.cleandoc(doc or "").splitlines()
    inside, indent, current = False, 0, ""
    for line in lines:
        stripped = line.strip()
        if stripped.lower() in _ARGS_HEADINGS:
            inside, indent, current = True, -1, ""
            continue
        if not inside:
            continue
        if not stripped:
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:  # the next section
            inside = False
            continue
        entry = re.match(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
        if entry and (indent < 0 or depth <= indent):
            indent, current = depth, entry.group(1)
            found[current] = entry.group(2)
        elif current:
            found[current] = f"{found[current]} {stripped}".strip()
    return {name: text for name, text in found.items() if text}
