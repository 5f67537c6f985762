"""The Responses API's tools that the client runs but that are not plain functions, as
coding agents (Codex) send them, made plain functions for every provider:

- ``custom`` (freeform) tools such as ``apply_patch``: the model sees a function of one
  string argument, ``input`` (its grammar, when it has one, in the description); its calls
  go back as ``custom_tool_call`` items (``input`` the string) and their outputs come as
  ``custom_tool_call_output`` items.
- ``namespace`` tools (a group of functions or custom tools, Codex's sub-agents): each
  inner tool is a function named ``<namespace>__<name>``; its calls go back as
  ``function_call`` (or ``custom_tool_call``) items with ``namespace`` and the inner name.
- ``tool_search`` executed by the client: a function of the parameters it gives; its calls
  go back as ``tool_search_call`` items (``arguments`` the object) and the client's
  ``tool_search_output`` items come back as the search's result. A tool marked
  ``defer_loading`` is offered from the start (nothing is deferred), so a server-executed
  ``tool_search`` has nothing to find and is not offered.
- ``web_search``: answered back in the response's ``tools`` as given. With a search
  service configured (``PARLEY_WEB_SEARCH_URL``) the server runs it (``kit.hosted``,
  ``engine.hosted.web_search``); without one it is taken and not offered to the model,
  so that clients that always send it (Codex) work unchanged.

``read`` makes the request's tools plain, keeping what each function stands for
(``kinds``: the function's name to its kind, kept in the run's record), so that the faces
show its calls in their own item types (``handed_item``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from parley.engine import entry_types
from parley.server.faces.kit.readers import invalid

#: How a namespace's tool is named for the model: ``<namespace>__<name>``.
SEPARATOR = "__"
#: The kinds taken here, and those of them that are not offered to the model.
NOT_OFFERED = entry_types("web_search")
KINDS = frozenset({"custom", "namespace", "tool_search"}) | NOT_OFFERED
#: The parameters of a custom tool's function.
_INPUT = {
    "type": "object",
    "properties": {
        "input": {
            "type": "string",
            "description": "The tool's whole input, as plain text in the tool's own format "
            "(not JSON).",
        }
    },
    "required": ["input"],
    "additionalProperties": False,
}
_SEARCH = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to search for."}},
    "required": ["query"],
}


def read(given: list[Any] | None) -> tuple[list[Any] | None, dict[str, dict[str, Any]]]:
    """The request's ``tools`` with its custom, namespace and tool search tools made
    functions (and its web search left out), and what each made function stands for."""
    if not given or not any(isinstance(t, dict) and t.get("type") in KINDS for t in given):
        return given, {}
    plain: list[Any] = []
    kinds: dict[str, dict[str, Any]] = {}
    for i, tool in enumerate(given):
        kind = tool.get("type") if isinstance(tool, dict) else None
        where = f"tools[{i}]"
        if kind == "custom":
            plain.append(_custom(tool, where, kinds))
        elif kind == "namespace":
            plain += _namespace(tool, where, kinds)
        elif kind == "tool_search":
            if tool.get("execution", "server") == "client":
                plain.append(_tool_search(tool, where, kinds))
        elif kind in NOT_OFFERED:
            continue
        elif isinstance(tool, dict) and kind in (None, "function") and "defer_loading" in tool:
            plain.append({k: v for k, v in tool.items() if k != "defer_loading"})
        else:
            plain.append(tool)
    return plain, kinds


def _custom(
    tool: Mapping[str, Any], where: str, kinds: dict[str, dict[str, Any]], namespace: str = ""
) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}.name", "expected the custom tool's name.")
    description = tool.get("description") or ""
    if not isinstance(description, str):
        raise invalid(f"{where}.description", "expected a string.")
    fmt = tool.get("format")
    if fmt is not None and (
        not isinstance(fmt, dict) or fmt.get("type") not in ("text", "grammar")
    ):
        raise invalid(f"{where}.format", "expected a text or grammar format.")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        definition, syntax = fmt.get("definition"), fmt.get("syntax", "lark")
        if not isinstance(definition, str) or syntax not in ("lark", "regex"):
            raise invalid(f"{where}.format", "expected a lark or regex grammar's definition.")
        description += f"\n\nThe input must follow this {syntax} grammar exactly:\n{definition}"
    flat = _flat(namespace, name, where)
    kinds[flat] = {
        "type": "custom",
        "name": name,
        **({"namespace": namespace} if namespace else {}),
    }
    return {"type": "function", "name": flat, "description": description, "parameters": _INPUT}


def _namespace(
    tool: Mapping[str, Any], where: str, kinds: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    namespace, inner = tool.get("name"), tool.get("tools")
    if not isinstance(namespace, str) or not namespace:
        raise invalid(f"{where}.name", "expected the namespace's name.")
    if not isinstance(inner, list) or not inner:
        raise invalid(f"{where}.tools", "expected the namespace's tools.")
    about = tool.get("description") or ""
    made = []
    for j, member in enumerate(inner):
        at = f"{where}.tools[{j}]"
        if not isinstance(member, dict) or member.get("type", "function") not in (
            "function",
            "custom",
        ):
            raise invalid(f"{at}.type", "expected a function or custom tool.")
        if member.get("type") == "custom":
            made.append(_custom(member, at, kinds, namespace))
            continue
        name = member.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(f"{at}.name", "expected the function's name.")
        flat = _flat(namespace, name, at)
        kinds[flat] = {"type": "function", "namespace": namespace, "name": name}
        described = member.get("description") or ""
        if about:
            described = f"({namespace}: {about}) {described}".strip()
        function = {k: v for k, v in member.items() if k not in ("defer_loading",)}
        made.append({**function, "type": "function", "name": flat, "description": described})
    return made


def _tool_search(
    tool: Mapping[str, Any], where: str, kinds: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    parameters = tool.get("parameters") or _SEARCH
    if not isinstance(parameters, dict):
        raise invalid(f"{where}.parameters", "expected a JSON Schema object.")
    kinds["tool_search"] = {"type": "tool_search", "execution": "client"}
    description = tool.get("description") or "Search for tools that were not given up front."
    return {
        "type": "function",
        "name": "tool_search",
        "description": description,
        "parameters": parameters,
    }


def _flat(namespace: str, name: str, where: str) -> str:
    flat = f"{namespace}{SEPARATOR}{name}" if namespace else name
    if len(flat) > 64:
        raise invalid(f"{where}.name", "the namespace and name are longer than 64 characters.")
    return flat


def flat_name(name: str, namespace: str | None) -> str:
    """The function a call of ``name`` in ``namespace`` (given back by a client) names."""
    return f"{namespace}{SEPARATOR}{name}" if namespace else name


# ------------------------------------------------------------------------------ items


def handed_item(
    item_id: str,
    call_id: str,
    name: str,
    arguments: str,
    kinds: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """A call handed to the client as its own item type: a ``function_call``, a
    ``custom_tool_call`` (its ``input``), or a ``tool_search_call``; ``arguments`` is the
    call's JSON text."""
    kind = (kinds or {}).get(name)
    item: dict[str, Any] = {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }
    if kind is None:
        return item
    if kind.get("namespace"):
        item["namespace"], item["name"] = kind["namespace"], kind["name"]
    if kind["type"] not in ("custom", "tool_search"):
        return item
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = {}
    if kind["type"] == "custom":
        text = parsed.get("input") if isinstance(parsed, dict) else None
        item.pop("arguments")
        item.update(type="custom_tool_call", input=text if isinstance(text, str) else arguments)
        return item
    return {
        "type": "tool_search_call",
        "id": item_id,
        "call_id": call_id,
        "execution": "client",
        "arguments": parsed if isinstance(parsed, dict) else {},
        "status": "completed",
    }
