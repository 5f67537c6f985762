"""From a ``response.create`` request to what the engine takes: where its messages go
(``ThreadTarget``), the messages, and the run's ``RunConfig``. Shared by the HTTP route and
the WebSocket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from parley.engine import NewMessage, RunConfig, ThreadTarget, TurnHandle, UsageSource
from parley.errors import InvalidRequest
from parley.server.deps import Services
from parley.server.faces.responses import reads
from parley.server.faces.responses.items import parse_input
from parley.server.faces.responses.protocol import ResponseCreate
from parley.store.db import Database
from parley.store.records import Run
from parley.types import FunctionSpec

#: Request fields kept with the run and answered back as they were sent.
_ECHOED = (
    "tool_choice",
    "truncation",
    "parallel_tool_calls",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "top_logprobs",
    "temperature",
    "max_output_tokens",
    "max_tool_calls",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "user",
    "previous_response_id",
)


@dataclass(slots=True)
class Plan:
    """A response about to start: where, with which messages, how."""

    target: ThreadTarget
    messages: list[NewMessage]
    config: RunConfig
    #: False for a ``store: false`` response: its thread is a scratch one
    #: (``ThreadTarget.scratch``), which the face lets go of (``Engine.release_scratch``)
    #: once it is done with it: once the response is read (HTTP) or its connection ends
    #: (WebSocket).
    store: bool


async def start(svc: Services, user_id: str, planned: Plan, key_hash: str) -> TurnHandle:
    """Start the planned response's turn under the caller's rate-limit slot, which holds
    the model's context window of a daily budget (a turn's one model call fits it; None,
    the rest of the budget, when it is unknown)."""
    window = svc.providers.context_window(planned.config.model)
    async with svc.limits.run_slot(key_hash, window) as slot:
        turn = await svc.engine.start_items_turn(
            user_id=user_id,
            target=planned.target,
            messages=planned.messages,
            config=planned.config,
            source=UsageSource(key_hash, "responses"),
        )
        slot.hold_until(turn.when_done)
    return turn


def run_config(body: ResponseCreate, model: str) -> RunConfig:
    """The run's model, tools, parameters and options, and what is kept to echo back."""
    tools, strict = _tools(body.tools)
    parameters: dict[str, Any] = {}
    if body.temperature is not None:
        parameters["temperature"] = body.temperature
    if body.top_p is not None:
        parameters["top_p"] = body.top_p
    if body.max_output_tokens is not None:
        parameters["max_tokens"] = body.max_output_tokens
    options: dict[str, Any] = {}
    if body.tool_choice is not None:
        options["tool_choice"] = _tool_choice(
            body.tool_choice, {t["function"]["name"] for t in tools}
        )
    if body.parallel_tool_calls is not None:
        options["parallel_tool_calls"] = body.parallel_tool_calls
    # "auto" drops the oldest turns to fit the model's context window; "disabled" (the
    # default) fails a response that does not fit instead (``engine.context``).
    options["truncation"] = {"type": "auto" if body.truncation == "auto" else "disabled"}
    if body.text is not None and body.text.format is not None:
        options["response_format"] = body.text.format.model_dump(by_alias=True, exclude_none=True)
    if body.reasoning is not None:
        if body.reasoning.effort is not None:
            options["reasoning_effort"] = body.reasoning.effort
        summary = body.reasoning.summary or body.reasoning.generate_summary
        if summary is not None:
            options["reasoning_summary"] = summary
    request: dict[str, Any] = {
        "api": "responses",
        "store": body.store is not False,
        "background": bool(body.background),
        "strict_tools": strict,
    }
    for name in _ECHOED:
        value = getattr(body, name)
        if value is not None:
            request[name] = value
    if body.text is not None:
        request["text"] = {
            "format": (
                body.text.format.model_dump(by_alias=True, exclude_none=True)
                if body.text.format
                else {"type": "text"}
            ),
            **({"verbosity": body.text.verbosity} if body.text.verbosity else {}),
        }
    if body.reasoning is not None:
        request["reasoning"] = {
            "effort": body.reasoning.effort,
            "summary": body.reasoning.summary or body.reasoning.generate_summary,
        }
    if body.conversation_id is not None:
        request["conversation"] = {"id": body.conversation_id}
    return RunConfig(
        model=model,
        instructions=body.instructions,
        tools=tools,
        parameters=parameters,
        options=options or None,
        metadata=body.metadata,
        request=request,
    )


def _tools(given: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Function tools in Parley's shape, and the names of the ``strict`` ones."""
    tools: list[dict[str, Any]] = []
    strict: list[str] = []
    names: set[str] = set()
    for i, tool in enumerate(given or ()):
        where = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise InvalidRequest(
                f"Invalid '{where}.type': only function tools are supported (got {kind!r}).",
                code="unsupported_tool",
                param=f"{where}.type",
            )
        try:
            spec = FunctionSpec(
                name=tool.get("name"),  # type: ignore[arg-type]
                description=tool.get("description") or "",
                parameters=tool.get("parameters") or {"type": "object", "properties": {}},
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error.get("loc", ()))
            raise InvalidRequest(
                f"Invalid '{where}.{field}': {error.get('msg')}",
                code="invalid_value",
                param=f"{where}.{field}",
            ) from None
        if spec.name in names:
            raise InvalidRequest(
                f"Invalid '{where}.name': the tool name {spec.name} is given twice.",
                code="invalid_value",
                param=f"{where}.name",
            )
        names.add(spec.name)
        tools.append({"type": "function", "function": spec.model_dump()})
        if tool.get("strict"):
            strict.append(spec.name)
    return tools, strict


def _tool_choice(choice: str | dict[str, Any], names: set[str]) -> str | dict[str, Any]:
    """The neutral ``ModelOptions.tool_choice`` of a Responses ``tool_choice``."""
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest(
                "Invalid 'tool_choice': expected auto, none, required or an object.",
                code="invalid_value",
                param="tool_choice",
            )
        return choice
    kind = choice.get("type")
    if kind == "function":
        name = choice.get("name")
        if name not in names:
            raise InvalidRequest(
                f"Invalid 'tool_choice.name': no function tool named {name!r} is given.",
                code="invalid_value",
                param="tool_choice.name",
            )
        return {"type": "function", "name": name}
    if kind == "allowed_tools":
        mode = choice.get("mode", "auto")
        allowed = choice.get("tools")
        if mode not in ("auto", "required") or not isinstance(allowed, list):
            raise InvalidRequest(
                "Invalid 'tool_choice': allowed_tools takes mode (auto or required) and tools.",
                code="invalid_value",
                param="tool_choice",
            )
        picked = []
        for tool in allowed:
            if not isinstance(tool, dict) or tool.get("name") not in names:
                raise InvalidRequest(
                    "Invalid 'tool_choice.tools': each names a function tool that is given.",
                    code="invalid_value",
                    param="tool_choice.tools",
                )
            picked.append({"type": "function", "name": tool["name"]})
        return {"type": "allowed_tools", "mode": mode, "tools": picked}
    raise InvalidRequest(
        f"Invalid 'tool_choice.type': {kind!r} is not supported.",
        code="invalid_value",
        param="tool_choice.type",
    )


async def plan(
    db: Database,
    *,
    user_id: str,
    body: ResponseCreate,
    held: dict[str, Run] | None = None,
) -> Plan:
    """Check the request against the store and decide where its turn runs. ``held``: the
    responses a WebSocket keeps for its connection (``store: false`` ones among them)."""
    if body.model is None:
        raise InvalidRequest(
            "Missing required parameter: 'model'.", code="missing_required_parameter", param="model"
        )
    if body.previous_response_id is not None and body.conversation is not None:
        raise InvalidRequest(
            "Give previous_response_id or conversation, not both.",
            code="invalid_value",
            param="conversation",
        )
    items = body.input
    if isinstance(items, list) and any(i.get("type") == "item_reference" for i in items):
        items = await db.read(reads.resolve_references, user_id=user_id, items=items)
    messages = parse_input(items)
    if not messages and body.previous_response_id is None and body.conversation is None:
        raise InvalidRequest(
            "Missing required parameter: 'input'.",
            code="missing_required_parameter",
            param="input",
        )
    store = body.store is not False
    if body.conversation is None and body.previous_response_id is None:
        target = ThreadTarget(scratch=not store)  # a new thread: nothing to read first
    else:
        target = await db.read(
            reads.thread_target,
            user_id=user_id,
            conversation=body.conversation_id,
            previous_id=body.previous_response_id,
            store=store,
            held=held or {},
        )
    return Plan(target=target, messages=messages, config=run_config(body, body.model), store=store)
