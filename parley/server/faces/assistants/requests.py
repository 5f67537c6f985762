"""The Assistants API's run requests, and how they become a turn: the messages a run adds
to its thread (``NewMessage``) and how its model is called (``RunConfig``), from the
request's overrides over the assistant's own settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from parley.engine import FileInputs, NewMessage, RunConfig
from parley.errors import InvalidRequest
from parley.server.faces.kit import options as face_options
from parley.server.faces.kit.bodies import (
    Body,
    Count,
    MessageCreate,
    Metadata,
    ReasoningEffort,
    ThreadCreate,
    ToolOutput,
    ToolResources,
    Tools,
)
from parley.server.faces.kit.file_inputs import settle
from parley.server.faces.kit.readers import (
    ASSISTANTS,
    hosted_kinds,
    read_output_format,
    read_sampling,
    read_tool_choice,
    tool_names,
)
from parley.server.faces.kit.resources import RunRecord
from parley.store.records import Assistant
from parley.types import Role

#: What the stored run keeps of the request, to answer it back (``RunPublic``).
FACE = "assistants"


class TruncationStrategy(Body):
    type: Literal["auto", "last_messages"]
    last_messages: Count | None = None

    @model_validator(mode="after")
    def _count_given(self) -> TruncationStrategy:
        if self.type == "last_messages" and self.last_messages is None:
            raise ValueError("last_messages needs a number of messages")
        return self


class _RunFields(Tools):
    """What a run may set over its assistant's settings."""

    assistant_id: str = Field(min_length=1, max_length=64)
    model: str | None = Field(default=None, min_length=3, max_length=256)
    instructions: str | None = Field(default=None, max_length=256_000)
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool | None = None
    max_prompt_tokens: Count | None = None
    max_completion_tokens: Count | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: str | dict[str, Any] | None = None
    reasoning_effort: ReasoningEffort | None = None
    tool_resources: ToolResources = None


class RunCreate(_RunFields):
    """``POST /v1/threads/{thread_id}/runs``."""

    additional_instructions: str | None = Field(default=None, max_length=256_000)
    additional_messages: list[MessageCreate] | None = Field(default=None, max_length=32)


class ThreadAndRunCreate(_RunFields):
    """``POST /v1/threads/runs``: a new thread and its first run."""

    thread: ThreadCreate | None = None


class RunUpdate(Body):
    metadata: Metadata | None = None


class ToolOutputsStream(Body):
    """``POST /v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs``."""

    tool_outputs: list[ToolOutput] = Field(min_length=1)
    stream: bool | None = None


async def added_messages(
    files: FileInputs, messages: list[MessageCreate] | None, *, user_id: str
) -> list[NewMessage]:
    """``new_messages``, their images by file read (``kit.file_inputs.settle``). Raises
    ``NotFound`` for a file that is not the user's, ``InvalidRequest`` for one that is no
    image."""
    return await settle(files, new_messages(messages), user_id=user_id, model=None)


def new_messages(messages: list[MessageCreate] | None) -> list[NewMessage]:
    """The messages a request adds, as the engine takes them (images by file still to be
    read: ``added_messages``)."""
    return [
        NewMessage(
            role=Role(m.role),
            content=m.text(),
            images=m.image_urls() or None,
            metadata=m.metadata or None,
        )
        for m in messages or ()
    ]


def assistant_options(
    body: Any, base: dict[str, Any] | None, model: face_options.Capabilities | None
) -> dict[str, Any]:
    """The model options of an assistant, or of a run over its assistant's (``base``), for
    ``model`` (``kit.options``: a JSON format where its API has none is a 400):
    ``response_format`` and ``reasoning_effort`` (and for a run, its tool choice and
    whether calls may come in parallel)."""
    face_options.check(face_options.ASSISTANTS, body, model)
    options = dict(base or {})
    fmt = body.response_format
    if fmt == "auto":
        options.pop("response_format", None)
    elif isinstance(fmt, dict):
        options["response_format"] = read_output_format(fmt, ASSISTANTS)
    elif fmt is not None:
        raise InvalidRequest(
            "Invalid 'response_format': expected \"auto\" or an object with a type.",
            code="invalid_value",
            param="response_format",
        )
    if body.reasoning_effort is not None:
        options["reasoning_effort"] = body.reasoning_effort
    return options


def sampling(body: Any, base: dict[str, Any]) -> dict[str, Any]:
    """Model parameters: ``base``, with the request's sampling options (``kit.readers``)."""
    return read_sampling(body, base)


def run_config(
    body: RunCreate | ThreadAndRunCreate,
    assistant: Assistant,
    model: face_options.Capabilities | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> RunConfig:
    """How the run calls its model: the assistant's settings, with what the request sets
    (``tools``: the request's, as kept: ``kit.hosted.kept_tools``)."""
    instructions = assistant.instructions if body.instructions is None else body.instructions
    extra = getattr(body, "additional_instructions", None)
    if extra:
        instructions = f"{instructions}\n\n{extra}" if instructions else extra
    if tools is None:
        tools = assistant.tools if body.tools is None else [t.model_dump() for t in body.tools]
    parameters = sampling(body, assistant.parameters)
    options = assistant_options(body, assistant.options, model)
    if body.tool_choice is not None:
        choice = read_tool_choice(
            body.tool_choice, tool_names(tools), ASSISTANTS, hosted_kinds(tools)
        )
        options["tool_choice"] = choice
    if body.parallel_tool_calls is not None:
        options["parallel_tool_calls"] = body.parallel_tool_calls
    truncation: dict[str, Any] = {}
    strategy = body.truncation_strategy
    if strategy is not None and strategy.type == "last_messages":
        truncation.update(strategy.model_dump())
    if body.max_prompt_tokens is not None:
        truncation.update(
            type=truncation.get("type", "auto"), max_prompt_tokens=body.max_prompt_tokens
        )
    if truncation:
        options["truncation"] = truncation
    if body.max_completion_tokens is not None:
        # For the whole run: each model call gets what its earlier calls left of it.
        options["output_budget"] = body.max_completion_tokens
    request: RunRecord = {
        "face": FACE,
        "max_prompt_tokens": body.max_prompt_tokens,
        "max_completion_tokens": body.max_completion_tokens,
    }
    return RunConfig(
        model=body.model or assistant.model,
        instructions=instructions,
        tools=tools,
        parameters=parameters,
        options=options or None,
        metadata=body.metadata or {},
        request=request,
        assistant_id=assistant.id,
    )
