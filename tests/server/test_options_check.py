"""The options check (``kit.options.check``) with each face's table: a field passed on is a
400 naming it where the model's API has no such option, a refused field is a 400 naming it
when it asks for something, and a hint or a supported field is taken."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from parley.errors import InvalidRequest
from parley.server.faces.assistants.requests import RunCreate
from parley.server.faces.chat.requests import ChatCompletionCreate
from parley.server.faces.kit import options
from parley.server.faces.responses.protocol import ResponseCreate

SCHEMA = {"name": "w", "schema": {"type": "object"}}


@dataclass(frozen=True)
class Model:
    """What the check reads of a model (``engine.ModelProfile`` has it)."""

    kind: str
    refused: frozenset[str]


NO_JSON = Model("test", frozenset({"json", "seed"}))
ANYTHING = Model("demo", frozenset())


def chat(**fields: Any) -> ChatCompletionCreate:
    return ChatCompletionCreate(model="m/x", messages=[{"role": "user", "content": "hi"}], **fields)


def response(**fields: Any) -> ResponseCreate:
    return ResponseCreate(model="m/x", input="hi", **fields)


def run(**fields: Any) -> RunCreate:
    return RunCreate(assistant_id="asst_1", **fields)


def refusal(table: dict[str, options.Rule], body: Any, model: Model | None) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as refused:
        options.check(table, body, model)
    assert refused.value.code == "unsupported_parameter"
    return refused.value


@pytest.mark.parametrize(
    ("table", "body", "param"),
    [
        (
            options.CHAT,
            chat(response_format={"type": "json_schema", "json_schema": SCHEMA}),
            "response_format",
        ),
        (options.CHAT, chat(response_format={"type": "json_object"}), "response_format"),
        (options.CHAT, chat(seed=7), "seed"),
        (options.RESPONSES, response(text={"format": {"type": "json_object"}}), "text.format"),
        (
            options.RESPONSES,
            response(text={"format": {"type": "json_schema", **SCHEMA}}),
            "text.format",
        ),
        (options.ASSISTANTS, run(response_format={"type": "json_object"}), "response_format"),
    ],
)
def test_a_json_format_or_an_option_the_api_lacks_is_a_400_naming_it(
    table: dict[str, options.Rule], body: Any, param: str
) -> None:
    error = refusal(table, body, NO_JSON)
    assert error.param == param
    assert "(test API)" in error.message
    options.check(table, body, ANYTHING)  # where the API has it: passed on


@pytest.mark.parametrize(
    "body",
    [
        chat(response_format={"type": "text"}),
        response(text={"format": {"type": "text"}}),
        response(text={"verbosity": "low"}),
        run(response_format="auto"),
        chat(prompt_cache_retention="24h", user="u", n=1, logprobs=False, store=False),
    ],
)
def test_what_asks_for_nothing_the_api_lacks_is_taken(body: Any) -> None:
    table = {
        ChatCompletionCreate: options.CHAT,
        ResponseCreate: options.RESPONSES,
        RunCreate: options.ASSISTANTS,
    }[type(body)]
    options.check(table, body, NO_JSON)


@pytest.mark.parametrize(
    ("table", "body", "param"),
    [
        (options.CHAT, chat(n=2), "n"),
        (options.CHAT, chat(logprobs=True), "logprobs"),
        (options.CHAT, chat(top_logprobs=3), "top_logprobs"),
        (options.CHAT, chat(store=True), "store"),
        (options.CHAT, chat(modalities=["text", "audio"]), "modalities"),
        (options.CHAT, chat(functions=[]), "functions"),
        (options.RESPONSES, response(top_logprobs=2), "top_logprobs"),
    ],
)
def test_a_refused_field_is_a_400_naming_it_whatever_the_model(
    table: dict[str, options.Rule], body: Any, param: str
) -> None:
    assert refusal(table, body, None).param == param
    assert refusal(table, body, ANYTHING).param == param
