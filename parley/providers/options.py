"""What the adapters share to translate ``ModelOptions`` (``providers.base``) to their APIs.

A tool choice is read once into a ``ToolRule``: the mode (``auto``, ``none`` or
``required``) and the tools it lets the model call (all, or a list of names). A choice of
one function is ``required`` with that one name; ``allowed_tools`` is its mode with its
list. A choice in a shape this module does not know reads as None: nothing is sent and the
provider's default applies.

OpenAI's two APIs spell the same choices and formats, nested (Chat Completions) or flat
(Responses); ``openai_tool_choice`` and ``openai_response_format`` write either.

Options are the defaults of a call, never its last word: ``add_unset`` puts a translated
field in a body only where the caller's own ``parameters`` did not set it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from parley.providers.base import ToolChoice
from parley.types import ToolSpec

__all__ = [
    "PROMPT_CACHE_KINDS",
    "PromptCacheRetention",
    "ToolRule",
    "add_unset",
    "json_schema_of",
    "offered_tools",
    "openai_response_format",
    "openai_tool_choice",
    "tool_rule",
]

#: OpenAI's ``prompt_cache_retention``: how long a cached prompt prefix may be kept.
PromptCacheRetention = Literal["in_memory", "24h"]

#: The kinds of provider whose API takes ``prompt_cache_retention`` (as a parameter, under
#: that name); the others are not sent it.
PROMPT_CACHE_KINDS = frozenset({"openai-chat", "openai-responses"})

ToolMode = Literal["auto", "none", "required"]
_MODES: tuple[ToolMode, ...] = ("auto", "none", "required")


@dataclass(frozen=True, slots=True)
class ToolRule:
    """What a tool choice lets the model do: ``mode``, and ``names``, the tools it may
    call in the choice's order (None: any tool it was given)."""

    mode: ToolMode
    names: tuple[str, ...] | None = None

    def allows(self, name: str) -> bool:
        """Whether the model may call the tool ``name``."""
        return self.mode != "none" and (self.names is None or name in self.names)


def tool_rule(choice: ToolChoice | None) -> ToolRule | None:
    """The rule of a neutral tool choice; None when there is none (or its shape is unknown)."""
    for mode in _MODES:
        if choice == mode:
            return ToolRule(mode)
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "function":
        name = choice.get("name")
        return ToolRule("required", (name,)) if isinstance(name, str) and name else None
    if kind == "allowed_tools":
        names = _function_names(choice.get("tools"))
        if choice.get("mode") in ("auto", "required") and names is not None:
            return ToolRule("auto" if choice["mode"] == "auto" else "required", names)
    return None


def _function_names(tools: Any) -> tuple[str, ...] | None:
    """The names of the ``{"type": "function", "name": ...}`` entries of an allowed list
    (other tool types have no function to call here); None when it is not a list."""
    if not isinstance(tools, list):
        return None
    functions = [
        tool for tool in tools if isinstance(tool, dict) and tool.get("type") == "function"
    ]
    return tuple(name for tool in functions if isinstance(name := tool.get("name"), str))


def offered_tools(tools: list[ToolSpec], rule: ToolRule | None) -> list[ToolSpec]:
    """The tools an API without a tool choice of its own is given: none for ``none``, the
    allowed ones for a list of names, else all."""
    if rule is None:
        return tools
    return [tool for tool in tools if rule.allows(tool.function.name)]


def openai_tool_choice(choice: ToolChoice | None, *, flat: bool) -> str | dict[str, Any] | None:
    """``tool_choice`` as OpenAI's APIs take it: a mode, one function or ``allowed_tools``;
    a function nested as ``{"function": {"name"}}`` (Chat Completions) or ``flat``
    (``{"name"}``, Responses)."""
    rule = tool_rule(choice)
    if rule is None:
        return None
    if rule.names is None:
        return rule.mode

    def function(name: str) -> dict[str, Any]:
        if flat:
            return {"type": "function", "name": name}
        return {"type": "function", "function": {"name": name}}

    if isinstance(choice, dict) and choice.get("type") == "function":
        return function(rule.names[0])
    allowed = {"mode": rule.mode, "tools": [function(name) for name in rule.names]}
    if flat:
        return {"type": "allowed_tools", **allowed}
    return {"type": "allowed_tools", "allowed_tools": allowed}


#: The fields of a ``json_schema`` response format, as the neutral form spells them.
_SCHEMA_FIELDS = ("name", "description", "schema", "strict")


def openai_response_format(fmt: Mapping[str, Any] | None, *, flat: bool) -> dict[str, Any] | None:
    """A response format as OpenAI's APIs take it: ``text``, ``json_object``, or
    ``json_schema`` with its fields nested under ``json_schema`` (Chat Completions'
    ``response_format``) or ``flat`` (Responses' ``text.format``); None for another type."""
    kind = fmt.get("type") if fmt else None
    if fmt is None or kind not in ("text", "json_object", "json_schema"):
        return None
    if kind != "json_schema":
        return {"type": kind}
    fields = {key: fmt[key] for key in _SCHEMA_FIELDS if fmt.get(key) is not None}
    return {"type": kind, **fields} if flat else {"type": kind, "json_schema": fields}


def json_schema_of(fmt: Mapping[str, Any] | None) -> tuple[bool, dict[str, Any] | None]:
    """For the APIs with a plain JSON mode: ``(json, schema)``, whether the answer must be
    JSON and the JSON Schema it must follow (``json_object``: ``(True, None)``)."""
    kind = fmt.get("type") if fmt else None
    if fmt is None or kind not in ("json_object", "json_schema"):
        return False, None
    schema = fmt.get("schema") if kind == "json_schema" else None
    return True, schema if isinstance(schema, dict) else None


def add_unset(
    body: dict[str, Any], fields: Mapping[str, Any], *, merged: Collection[str] = ()
) -> None:
    """Put ``fields`` (but None) in ``body`` where the caller's parameters left them unset. A key
    named in ``merged`` is an object of settings (the Responses API's ``reasoning``,
    ``text``): the caller's object gains the translated keys it does not set."""
    for key, value in fields.items():
        if value is None:
            continue
        given = body.get(key)
        if given is None:
            body[key] = value
        elif key in merged and isinstance(given, dict) and isinstance(value, dict):
            body[key] = {**value, **given}
