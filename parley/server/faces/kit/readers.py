"""The OpenAI faces' readers of a request's tools, tool choice and output format, into the
neutral shapes the engine and the providers take (``ToolSpec``, ``ModelOptions``)."""

from __future__ import annotations

from typing import Any

from parley.errors import InvalidRequest


def invalid(param: str, problem: str, code: str = "invalid_value") -> InvalidRequest:
    """The 400 of a field with a bad value, named as OpenAI names it (``param``)."""
    return InvalidRequest(f"Invalid '{param}': {problem}", code=code, param=param)


def neutral_response_format(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    """The neutral (flat) format of a Chat Completions ``response_format``."""
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise invalid(
            "response_format.type", "expected text, json_object or json_schema.", "invalid_value"
        )
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        raise invalid("response_format.json_schema", "expected an object with name and schema.")
    name, schema = spec.get("name"), spec.get("schema", {})
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise invalid("response_format.json_schema.name", "expected 1 to 64 characters.")
    if not isinstance(schema, dict):
        raise invalid("response_format.json_schema.schema", "expected a JSON Schema object.")
    flat: dict[str, Any] = {"type": "json_schema", "name": name, "schema": schema}
    for key in ("strict", "description"):
        if spec.get(key) is not None:
            flat[key] = spec[key]
    return flat


def neutral_tool_choice(choice: str | dict[str, Any], names: set[str]) -> str | dict[str, Any]:
    """The neutral ``ModelOptions.tool_choice`` of a Chat Completions ``tool_choice``."""
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise invalid("tool_choice", "expected auto, none, required or an object.")
        return choice
    kind = choice.get("type")
    if kind == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if name not in names:
            raise invalid("tool_choice.function.name", f"no tool named {name!r} is given.")
        return {"type": "function", "name": name}
    if kind == "allowed_tools":
        allowed = choice.get("allowed_tools")
        mode = allowed.get("mode", "auto") if isinstance(allowed, dict) else None
        listed = allowed.get("tools") if isinstance(allowed, dict) else None
        if mode not in ("auto", "required") or not isinstance(listed, list):
            raise invalid(
                "tool_choice.allowed_tools", "expected mode (auto or required) and tools."
            )
        picked = []
        for j, tool in enumerate(listed):
            function = tool.get("function") if isinstance(tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if name not in names:
                param = f"tool_choice.allowed_tools.tools[{j}]"
                raise invalid(param, "each names a function tool that is given.")
            picked.append({"type": "function", "name": name})
        return {"type": "allowed_tools", "mode": mode, "tools": picked}
    raise invalid("tool_choice.type", f"{kind!r} is not supported.")
