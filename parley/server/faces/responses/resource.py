"""The response object: a run seen through the Responses API.

A run's status maps onto a response's: a run that paused for tool calls
(``action_required``, and ``expired`` after it) is a ``completed`` response whose output
ends with ``function_call`` items, completed when it paused (``ended_at``). The fields a
client sent come back as it sent them, from what the face kept of its request
(``runs.request``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from parley.engine import FILE_SEARCH_DEFAULT_RESULTS
from parley.errors import NotFound
from parley.server.faces.responses.hosted_items import Found, with_citations
from parley.server.faces.responses.items import message_items
from parley.server.faces.responses.protocol import record_of
from parley.store.records import Message, Run
from parley.types import Role, RunStatus, Usage

STATUS = {
    RunStatus.QUEUED: "queued",
    RunStatus.IN_PROGRESS: "in_progress",
    RunStatus.ACTION_REQUIRED: "completed",
    RunStatus.COMPLETED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
    RunStatus.EXPIRED: "completed",
    RunStatus.INCOMPLETE: "incomplete",
}

#: What a response says of a request field the client did not send.
DEFAULTS: dict[str, Any] = {
    "previous_response_id": None,
    "tool_choice": "auto",
    "truncation": "disabled",
    "parallel_tool_calls": True,
    "text": {"format": {"type": "text"}},
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_logprobs": 0,
    "temperature": 1.0,
    "reasoning": {"effort": None, "summary": None},
    "max_output_tokens": None,
    "max_tool_calls": None,
    "store": True,
    "background": False,
    "service_tier": "default",
    "safety_identifier": None,
    "prompt_cache_key": None,
    "user": None,
    "conversation": None,
}


def not_found(response_id: str) -> NotFound:
    return NotFound(
        f"Response with id '{response_id}' not found.", code="not_found", param="response_id"
    )


def usage(counts: Usage) -> dict[str, Any]:
    """A response's ``usage``: the cached tokens among the input, the reasoning tokens among
    the output (Parley does not count the tokens written to a prompt cache: 0)."""
    return {
        "input_tokens": counts.input_tokens,
        "input_tokens_details": {"cached_tokens": counts.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": counts.output_tokens,
        "output_tokens_details": {"reasoning_tokens": counts.reasoning_tokens},
        "total_tokens": counts.input_tokens + counts.output_tokens,
    }


#: The fields of an ``mcp`` tool answered back, and their defaults (its ``headers`` and
#: ``authorization`` are never kept, so never answered).
_MCP_ECHO = {
    "server_label": None,
    "server_url": None,
    "server_description": None,
    "allowed_tools": None,
    "require_approval": "always",
    "headers": None,
}


def flat_tools(run: Run) -> list[dict[str, Any]]:
    """The run's tools as the request gave them: functions in the Responses API's flat
    shape, hosted tools as kept; the custom, namespace, tool search and web search tools as
    they were given (``client_tools``)."""
    record = record_of(run)
    strict = record.get("strict_tools") or []
    made = record.get("tool_kinds") or {}
    given = record.get("tools_given") or []
    kept = [
        t
        for t in run.tools
        if (t.get("type", "function") != "function" or t["function"]["name"] not in made)
        and t.get("type") != "web_search"  # answered back as given, with the client's tools
    ]
    return [
        {
            "type": "function",
            "name": t["function"]["name"],
            "description": t["function"].get("description") or None,
            "parameters": t["function"].get("parameters"),
            "strict": t["function"]["name"] in strict,
        }
        if t.get("type", "function") == "function"
        else _hosted_echo(t)
        for t in kept
    ] + list(given)


def _hosted_echo(tool: dict[str, Any]) -> dict[str, Any]:
    """A hosted tool as a response answers it back (``TOOLS_SHOWN``); a type the table
    does not have, as kept."""
    shown = TOOLS_SHOWN.get(tool["type"])
    return dict(tool) if shown is None else shown(tool)


def _mcp_echo(tool: dict[str, Any]) -> dict[str, Any]:
    return {"type": tool["type"], **{k: tool.get(k, d) for k, d in _MCP_ECHO.items()}}


def file_search_echo(tool: dict[str, Any]) -> dict[str, Any]:
    """A ``file_search`` tool as a response answers it back (OpenAI's defaults filled)."""
    ranking = {"ranker": "auto", "score_threshold": 0.0, **(tool.get("ranking_options") or {})}
    return {
        "type": "file_search",
        "vector_store_ids": tool.get("vector_store_ids") or [],
        "max_num_results": tool.get("max_num_results", FILE_SEARCH_DEFAULT_RESULTS),
        "filters": tool.get("filters"),
        "ranking_options": ranking,
    }


#: The face's table of hosted tool entries as a response answers them back, by entry type.
#: A new kind adds its entry when it shows more than it keeps.
TOOLS_SHOWN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "mcp": _mcp_echo,
    "file_search": file_search_echo,
    "code_interpreter": lambda tool: {
        "type": "code_interpreter",
        "container": tool.get("container"),
    },
}


def head(run: Run, status: str) -> dict[str, Any]:
    """Every field of the response but its output, usage and outcome."""
    kept = record_of(run)
    fields = {key: kept.get(key, default) for key, default in DEFAULTS.items()}
    return {
        "id": run.id,
        "object": "response",
        "created_at": int(run.created_at),
        "status": status,
        "completed_at": None,
        "incomplete_details": None,
        "error": None,
        "model": run.model,
        "instructions": run.instructions,
        "output": [],
        "tools": flat_tools(run),
        "usage": None,
        "metadata": run.metadata or {},
        **fields,
    }


@dataclass(slots=True)
class StoredResponse:
    """A response as the store holds it (``reads.read_response``)."""

    run: Run
    answers: list[Message]
    #: The call ids handed to the client (the run's actions).
    calls: set[str]


def response_object(
    stored: StoredResponse, *, state: bool = False, include: Collection[str] = ()
) -> dict[str, Any]:
    """The whole response object of a stored run; with ``state`` (the request's ``include``
    asks for ``reasoning.encrypted_content``), its answers' provider state (``items``);
    with ``include`` (the read's), a file search's results and a code interpreter call's
    outputs when it names them (``hosted_items.hosted_item``)."""
    run = stored.run
    status = STATUS[RunStatus(run.status)]
    body = head(run, status)
    ended_early = status in ("incomplete", "cancelled")  # as the stream's last event says
    item_status = "incomplete" if ended_early else "completed"
    if status == "in_progress":
        item_status = "in_progress"
    body["output"] = output_of(stored, item_status, state, include)
    if status not in ("queued", "in_progress"):
        body["completed_at"] = ended_at(run)
        body["usage"] = usage(run.usage)
    if run.error_code and status == "failed":
        body["error"] = {"code": run.error_code, "message": run.error_message or ""}
    if ended_early:
        body["incomplete_details"] = {"reason": incomplete_reason(run.error_code)}
    return body


def output_of(
    stored: StoredResponse, status: str, state: bool, include: Collection[str] = ()
) -> list[dict[str, Any]]:
    """The response's output items, in the order its stream gave them: the calls of an
    answer handed to the client come after the calls of it the server ran (whose results
    are stored after the answer, and streamed before its manifest)."""
    output: list[dict[str, Any]] = []
    handed: list[dict[str, Any]] = []
    found = Found()  # what the response's calls found so far, that its text may cite
    for message in stored.answers:
        ran = message.item is not None and message.role == Role.TOOL
        if not ran:
            output += handed
            handed = []
        if message.item is not None:
            found.add(message.item)
        shown = message_items(
            message,
            calls=stored.calls,
            status=status,
            state=state,
            include=include,
            kinds=record_of(stored.run).get("tool_kinds"),
        )
        for item in shown:
            item = with_citations(item, found)
            (handed if item["type"] == "function_call" else output).append(item)
    return output + handed


def ended_at(run: Run) -> int | None:
    """When a response's turn ended, as its stream's ``done`` says: when it paused for tool
    calls (the run's ``paused_at``, kept when a next response completes the run with their
    outputs, or when the wait expires), else when the run ended."""
    ended = run.paused_at if run.paused_at is not None else run.completed_at
    if ended is None and run.status == RunStatus.ACTION_REQUIRED:
        ended = run.created_at  # paused before Parley kept the time
    return None if ended is None else int(ended)


def incomplete_reason(error_code: str | None) -> str:
    """Why a response is incomplete: ``max_output_tokens`` when the model hit its limit,
    else ``interrupted`` (the server running it stopped)."""
    return "max_output_tokens" if error_code == "max_output_tokens" else "interrupted"
