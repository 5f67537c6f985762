"""From a ``response.create`` request to what the engine takes: where its messages go
(``ThreadTarget``), the messages, and the run's ``RunConfig``. Shared by the HTTP route and
the WebSocket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from parley.engine import (
    NewMessage,
    RunConfig,
    ThreadTarget,
    TurnHandle,
    UsageSource,
    entry_types,
)
from parley.errors import InvalidRequest, ParleyError
from parley.mcp.servers import Who
from parley.providers.options import PROMPT_CACHE_KINDS
from parley.server.deps import Services
from parley.server.faces.kit import options as face_options
from parley.server.faces.kit.file_inputs import settle
from parley.server.faces.kit.hosted import check_owned, read_hosted
from parley.server.faces.kit.naming import messages_from
from parley.server.faces.kit.readers import (
    RESPONSES,
    hosted_kinds,
    read_output_format,
    read_sampling,
    read_tool_choice,
    read_tools,
    stored_tools,
    tool_names,
)
from parley.server.faces.responses import client_tools, compaction, reads
from parley.server.faces.responses.items import parse_input
from parley.server.faces.responses.protocol import ResponseCreate, ResponseRecord
from parley.store.records import Run

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
    #: The request, for what depends on the model's provider (``for_model``).
    body: ResponseCreate
    #: The headers of the servers of its hosted tools, by label: the turn's, never kept.
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)


def for_model(planned: Plan, model: face_options.Capabilities) -> None:
    """Check the request against its model's API (``kit.options``: a field passed on to
    an API that has no such option is a 400 naming it) and pass on what that API takes:
    ``prompt_cache_retention`` to OpenAI's APIs. Raises ``InvalidRequest``."""
    face_options.check(face_options.RESPONSES, planned.body, model)
    retention = planned.body.prompt_cache_retention
    if retention is not None and model.kind in PROMPT_CACHE_KINDS:
        planned.config.parameters["prompt_cache_retention"] = retention


async def start(svc: Services, user_id: str, planned: Plan, key_hash: str) -> TurnHandle:
    """Start the planned response's turn under the caller's rate-limit slot, which holds
    the model's context window of a daily budget (a turn's one model call fits it; None,
    the rest of the budget, when it is unknown)."""
    profile = svc.engine.profile(planned.config.model)  # the model, resolved once
    for_model(planned, profile)
    async with svc.limits.run_slot(key_hash, profile.window) as slot:
        with messages_from("input"):
            turn = await svc.engine.start_items_turn(
                user_id=user_id,
                target=planned.target,
                messages=planned.messages,
                config=planned.config,
                source=UsageSource(key_hash, "responses"),
                secrets=planned.secrets,
            )
        slot.hold_until(turn.when_done)
    return turn


@contextmanager
def _named(previous: str | None, conversation: str | None) -> Iterator[None]:
    """The engine's word on where a response goes, in this face's words: a
    ``previous_response_id`` it cannot continue is a 400 naming that field, and a
    ``conversation`` that is none of the caller's a 404 naming it."""
    try:
        yield
    except ParleyError as exc:
        if previous is not None and exc.code == "previous_run_not_found":
            raise reads.previous_not_found(previous) from None
        if previous is not None and exc.code == "previous_run_in_progress":
            raise reads.previous_in_progress(previous) from None
        if conversation is not None and exc.code == "thread_not_found":
            raise reads.conversation_not_found(conversation, "conversation") from None
        raise


def run_config(body: ResponseCreate, model: str) -> RunConfig:
    """The run's model, tools, parameters and options, and what is kept to echo back."""
    plain, kinds = client_tools.read(body.tools)
    tools, strict = read_tools(plain, RESPONSES)
    parameters = read_sampling(body, most=body.max_output_tokens)
    options: dict[str, Any] = {}
    if body.tool_choice is not None:
        given_choice = body.tool_choice
        if isinstance(given_choice, dict) and given_choice.get("type") == "custom":
            name = client_tools.flat_name(
                str(given_choice.get("name")), given_choice.get("namespace")
            )
            given_choice = {"type": "function", "name": name}
        choice = read_tool_choice(
            given_choice, tool_names(tools), RESPONSES, hosted_kinds(body.tools or [])
        )
        options["tool_choice"] = choice
    if body.parallel_tool_calls is not None:
        options["parallel_tool_calls"] = body.parallel_tool_calls
    if body.max_tool_calls is not None:  # the calls of tools the server runs, per response
        options["max_tool_calls"] = body.max_tool_calls
    # "auto" drops the oldest turns to fit the model's context window; "disabled" (the
    # default) fails a response that does not fit instead (``engine.context``).
    options["truncation"] = {"type": "auto" if body.truncation == "auto" else "disabled"}
    # The server compacts the context on its own past a threshold (``engine.compaction``).
    compacting = compaction.context_options(body.context_management)
    if compacting is not None:
        options["compaction"] = compacting
    fmt = body.text.format if body.text is not None else None
    if fmt is not None:
        given = fmt.model_dump(by_alias=True, exclude_none=True)
        options["response_format"] = read_output_format(given, RESPONSES, "text.format")
    if body.reasoning is not None:
        if body.reasoning.effort is not None:
            options["reasoning_effort"] = body.reasoning.effort
        summary = body.reasoning.summary or body.reasoning.generate_summary
        if summary is not None:
            options["reasoning_summary"] = summary
    return RunConfig(
        model=model,
        instructions=body.instructions,
        tools=stored_tools(tools),
        parameters=parameters,
        options=options or None,
        metadata=body.metadata,
        request=_kept(body, strict, kinds, plain),
    )


def _kept(
    body: ResponseCreate,
    strict: list[str],
    kinds: dict[str, dict[str, Any]],
    plain: list[Any] | None,
) -> ResponseRecord:
    """What the run keeps of the request, to answer it back as it was sent."""
    request: ResponseRecord = {
        "api": "responses",
        "store": body.store is not False,
        "background": bool(body.background),
        "strict_tools": strict,
    }
    if kinds or plain is not body.tools:  # answered back as given (no secret among them)
        request["tool_kinds"] = kinds
        request["tools_given"] = [
            t
            for t in body.tools or ()
            if isinstance(t, dict) and t.get("type") in client_tools.KINDS
        ]
    for name in _ECHOED:
        value = getattr(body, name)
        if value is not None:
            request[name] = value  # type: ignore[literal-required]
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
    return request


async def plan(
    svc: Services,
    *,
    user_id: str,
    body: ResponseCreate,
    held: dict[str, Run] | None = None,
    who: Who | None = None,
) -> Plan:
    """Check the request against the store and place its turn (``Engine.place``): on in its
    conversation, or after its previous response. ``held``: the responses a WebSocket
    keeps for its connection (``store: false`` ones among them)."""
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
    choice = body.tool_choice
    forced = isinstance(choice, dict) and choice.get("type") in entry_types("web_search")
    if forced and not svc.settings.web_search_url:  # taken, not offered: none to force
        raise InvalidRequest(
            "web_search cannot be required here: this server has no web search service "
            "(its operator sets PARLEY_WEB_SEARCH_URL).",
            code="invalid_value",
            param="tool_choice",
        )
    items = body.input
    if isinstance(items, list) and any(i.get("type") == "item_reference" for i in items):
        items = await svc.db.read(reads.resolve_references, user_id=user_id, items=items)
    messages = parse_input(items, files=True)
    messages = await settle(svc.engine.files, messages, user_id=user_id, model=body.model)
    if not messages and body.previous_response_id is None and body.conversation is None:
        raise InvalidRequest(
            "Missing required parameter: 'input'.",
            code="missing_required_parameter",
            param="input",
        )
    store = body.store is not False
    previous, conversation = body.previous_response_id, body.conversation_id
    if previous is not None:
        wanted = ThreadTarget.after_run(previous, scratch=not store, held=previous in (held or {}))
    else:  # a store: false one goes into a scratch copy of its conversation
        wanted = ThreadTarget(thread_id=conversation, scratch=not store)
    with _named(previous, conversation):
        target = await svc.engine.place(user_id=user_id, target=wanted)
    config = run_config(body, body.model)
    hosted = read_hosted(
        body.tools,
        settings=svc.settings,
        policy=svc.mcp_addresses,
        who=who or Who(user_id),
        include=body.include,
    )
    await check_owned(svc.db, user_id=user_id, tools=body.tools or [])
    if hosted.entries:
        config = replace(config, tools=[*config.tools, *hosted.entries])
    return Plan(
        target=target,
        messages=messages,
        config=config,
        store=store,
        body=body,
        secrets=hosted.secrets,
    )
