"""The server's hosted items a request gives back in its ``input`` (a client that sends
its whole history), read into the messages the engine stores: one table, ``GIVEN``, by
record type. A tool list is kept as given (checked enough to show); a call the server ran
(``mcp_call``, a search, a code call) becomes the model's call behind it and the result it
was told; an approval request stands for its call once an approval answers it, unless the
call that ran once approved is given too; an approval's answer (``mcp_approval_response``)
is the client's approval of a call that waits (``Approval``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from parley.engine import (
    Approval,
    CodeInterpreterCall,
    FileSearchCall,
    McpApprovalRequest,
    McpApprovalResponse,
    McpCall,
    McpListTools,
    NewMessage,
    WebSearchCall,
    kind_named,
)
from parley.errors import InvalidRequest
from parley.types import Role


def bad(index: int | None, where: str, problem: str) -> InvalidRequest:
    """The error of item ``index`` of a request's ``input`` (its field ``where``)."""
    param = "input" if index is None else f"input[{index}]"
    if where:
        param += f".{where}"
    return InvalidRequest(f"Invalid '{param}': {problem}", code="invalid_value", param=param)


def arguments_of(value: Any, index: int) -> dict[str, Any]:
    """A call's ``arguments`` given (a JSON object, as text or not), read."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise bad(index, "arguments", "expected a JSON string.")
    try:
        parsed = orjson.loads(value) if value.strip() else {}
    except orjson.JSONDecodeError:
        raise bad(index, "arguments", "not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise bad(index, "arguments", "expected a JSON object.")
    return parsed


@dataclass(frozen=True, slots=True)
class Answers:
    """What the whole ``input`` says of the approval requests it gives back: those an
    approval answers, and those whose call that ran once approved is given too."""

    responded: frozenset[Any]
    settled: frozenset[Any]

    @classmethod
    def of(cls, items: Sequence[Any]) -> Answers:
        dicts = [i for i in items if isinstance(i, dict)]
        return cls(
            frozenset(
                i.get("approval_request_id")
                for i in dicts
                if i.get("type") == McpApprovalResponse.type
            ),
            frozenset(i.get("approval_request_id") for i in dicts if i.get("type") == McpCall.type),
        )


@dataclass(slots=True)
class Given:
    """What an item given back adds: the call it joins to the assistant message being
    assembled, and the messages that follow that message."""

    call: dict[str, Any] | None = None
    messages: list[NewMessage] = field(default_factory=list)


def _approval_response(item: dict[str, Any], index: int, answers: Answers) -> Given | None:
    return Given(messages=[NewMessage(role=Role.USER, approval=_approval(item, index))])


def _tool_list(item: dict[str, Any], index: int, answers: Answers) -> Given | None:
    return Given(messages=[NewMessage(role=Role.ASSISTANT, item=_hosted_given(item, index))])


def _approval_request(item: dict[str, Any], index: int, answers: Answers) -> Given | None:
    request_id = item.get("id")
    if request_id in answers.settled or request_id not in answers.responded:
        return None  # its call is given as an mcp_call, or nothing answers it
    return Given(call=_hosted_call(item, index, request_id=request_id))


def _mcp_call(item: dict[str, Any], index: int, answers: Answers) -> Given | None:
    call = _hosted_call(item, index, request_id=item.get("approval_request_id"))
    given = _hosted_given(item, index)
    told = given.get("output") or f"Error: {_error_text(given.get('error'))}"
    return Given(
        call, [NewMessage(role=Role.TOOL, content=told, tool_call_id=call["id"], item=given)]
    )


def _ran(item: dict[str, Any], index: int, answers: Answers) -> Given | None:
    call, told, given = _ran_given(item, index)
    return Given(
        call, [NewMessage(role=Role.TOOL, content=told, tool_call_id=given["id"], item=given)]
    )


def _hosted_given(item: dict[str, Any], index: int) -> dict[str, Any]:
    """A server's MCP item given back (``mcp_list_tools``, ``mcp_call``), checked enough
    to keep: its id and label, a list's tools (``_tools_given``) and a call's tool's name."""
    _item_id(item, index)
    label = item.get("server_label")
    if not isinstance(label, str) or not label:
        raise bad(index, "server_label", "expected the server's label.")
    if item.get("type") == "mcp_call" and not isinstance(item.get("name"), str):
        raise bad(index, "name", "expected the tool's name.")
    if item.get("type") == "mcp_list_tools":
        _tools_given(item.get("tools"), index)
    kept = {k: v for k, v in item.items() if k != "status"}
    if item.get("type") == "mcp_call":
        kept["status"] = item.get("status") or "completed"
    return kept


def _tools_given(tools: Any, index: int) -> None:
    """Refuse the tools of a given-back ``mcp_list_tools`` that the turn could not offer
    (``mcp.tools_of``) nor show: they are a list of objects, each with its ``name``, and
    its ``input_schema`` an object when it has one."""
    if tools is None:
        return
    if not isinstance(tools, list) or not all(
        isinstance(tool, dict)
        and isinstance(tool.get("name"), str)
        and isinstance(tool.get("input_schema") or {}, dict)
        for tool in tools
    ):
        raise bad(index, "tools", "expected a list of tools, each with a name.")


def _item_id(item: dict[str, Any], index: int) -> str:
    """The id of an item given back, which it must have."""
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise bad(index, "id", "expected the item's id.")
    return item_id


def _ran_status(item: dict[str, Any], index: int, working: str) -> str:
    """The status of a search or code call given back: ``completed`` when it has none;
    while it ran, ``in_progress`` or ``working`` (``searching``, ``interpreting``)."""
    status = item.get("status") or "completed"
    if status not in ("in_progress", working, "completed", "incomplete", "failed"):
        raise bad(index, "status", "expected completed, incomplete or failed.")
    return str(status)


def _search_given(item: dict[str, Any], index: int) -> dict[str, Any]:
    """A ``file_search_call`` given back, checked enough to keep: its id, queries, and
    results when it has them."""
    item_id = _item_id(item, index)
    queries = item.get("queries") or []
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise bad(index, "queries", "expected a list of strings.")
    results = item.get("results")
    if results is not None and not (
        isinstance(results, list) and all(isinstance(r, dict) for r in results)
    ):
        raise bad(index, "results", "expected a list of results, or null.")
    status = _ran_status(item, index, "searching")
    return {
        "type": "file_search_call",
        "id": item_id,
        "queries": queries,
        "status": status,
        "results": results,
        "show_results": results is not None,
    }


def _ran_given(item: dict[str, Any], index: int) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A search or code call the server ran, given back: the model's call behind it, what
    the model was told of it, and its item as kept."""
    if item["type"] == "file_search_call":
        given = _search_given(item, index)
        arguments = {"queries": given["queries"]}
    elif item["type"] == "web_search_call":
        given = _web_given(item, index)
        arguments = {"query": given["action"].get("query") or ""}
    else:
        given = _code_given(item, index)
        arguments = {"code": given["code"]}
    kind = item["type"].removesuffix("_call")
    ran = kind_named(kind)
    call = {
        "id": given["id"],
        "name": ran.function,
        "arguments": arguments,
        "hosted": {"type": kind, "item_id": given["id"]},
    }
    return call, ran.told(given), given


def _web_given(item: dict[str, Any], index: int) -> dict[str, Any]:
    """A ``web_search_call`` given back, checked enough to keep: its id, status and
    action (a search's query, a page opened or looked into: as given), its sources the
    pages the model is told of again (by their URL alone: a client keeps no more)."""
    item_id = _item_id(item, index)
    action = item.get("action")
    if not isinstance(action, dict) or not isinstance(action.get("type"), str):
        raise bad(index, "action", "expected the search's action, an object with a type.")
    query = action.get("query") if isinstance(action.get("query"), str) else action.get("url")
    sources = action.get("sources")
    if sources is not None and not (
        isinstance(sources, list)
        and all(isinstance(s, dict) and isinstance(s.get("url"), str) for s in sources)
    ):
        raise bad(index, "action.sources", "expected a list of {type: url, url}.")
    status = _ran_status(item, index, "searching")
    return {
        "type": "web_search_call",
        "id": item_id,
        "status": status,
        "action": {**action, "query": query if isinstance(query, str) else ""},
        "show_sources": sources is not None,
        "call_id": None,
        "pages": [{"url": s["url"], "title": "", "snippet": ""} for s in sources or ()],
    }


def _code_given(item: dict[str, Any], index: int) -> dict[str, Any]:
    """A ``code_interpreter_call`` given back, checked enough to keep: its id, code,
    container, and outputs when it has them (an image's ``url`` kept as given)."""
    item_id = _item_id(item, index)
    code = item.get("code") or ""
    if not isinstance(code, str):
        raise bad(index, "code", "expected the code, a string.")
    container = item.get("container_id")
    if container is not None and not isinstance(container, str):
        raise bad(index, "container_id", "expected a container id.")
    outputs = item.get("outputs")
    if outputs is not None and not (
        isinstance(outputs, list)
        and all(isinstance(o, dict) and o.get("type") in ("logs", "image") for o in outputs)
    ):
        raise bad(index, "outputs", "expected a list of logs and image outputs, or null.")
    status = _ran_status(item, index, "interpreting")
    return {
        "type": "code_interpreter_call",
        "id": item_id,
        "status": status,
        "code": code,
        "container_id": container,
        "outputs": outputs,
        "show_outputs": outputs is not None,
        "call_id": None,
        "files": [],
    }


def _hosted_call(item: dict[str, Any], index: int, *, request_id: Any) -> dict[str, Any]:
    """The model's call behind a given-back ``mcp_call`` or ``mcp_approval_request``."""
    label, name = item.get("server_label"), item.get("name")
    if not isinstance(label, str) or not isinstance(name, str) or not name:
        raise bad(index, "name", "expected the server's label and the tool's name.")
    call_id = item.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise bad(index, "id", "expected the item's id.")
    return {
        "id": call_id,
        "name": name,
        "arguments": arguments_of(item.get("arguments"), index),
        "hosted": {
            "type": "mcp",
            "server_label": label,
            "name": name,
            "item_id": call_id if item.get("type") == "mcp_call" else None,
            "approval_request_id": request_id if isinstance(request_id, str) else None,
        },
    }


def _error_text(error: Any) -> str:
    """An ``mcp_call``'s error as text (a string, or OpenAI's error object)."""
    if isinstance(error, dict):
        if error.get("message"):
            return str(error["message"])
        parts = error.get("content") or []
        return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)) or "failed"
    return str(error or "failed")


def _approval(item: dict[str, Any], index: int) -> Approval:
    """An ``mcp_approval_response`` item's answer."""
    request_id = item.get("approval_request_id")
    if not isinstance(request_id, str) or not request_id:
        raise bad(index, "approval_request_id", "expected the approval request's id.")
    approve = item.get("approve")
    if not isinstance(approve, bool):
        raise bad(index, "approve", "expected true or false.")
    reason = item.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise bad(index, "reason", "expected a string.")
    return Approval(request_id=request_id, approve=approve, reason=reason)


#: The face's table of hosted items given back, by record type. A new kind adds its entry.
GIVEN: dict[str, Callable[[dict[str, Any], int, Answers], Given | None]] = {
    McpApprovalResponse.type: _approval_response,
    McpListTools.type: _tool_list,
    McpApprovalRequest.type: _approval_request,
    McpCall.type: _mcp_call,
    FileSearchCall.type: _ran,
    CodeInterpreterCall.type: _ran,
    WebSearchCall.type: _ran,
}
