"""Chat Completions and the model's context window, with the official ``openai`` SDK: a
request whose messages and tools are estimated at more tokens than the window is refused
as OpenAI refuses it (400 ``context_length_exceeded``, ``param`` ``messages``) before any
upstream call; nothing is ever dropped from it. ``small/text:3`` has a window of
``SMALL_WINDOW`` tokens (``tests.harness``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from parley.engine.context import CHARS_PER_TOKEN
from tests.e2e.helpers import upstream_requests
from tests.harness import SMALL_WINDOW

MODEL = "small/text:3"


@pytest.fixture
def client(server: Any, user_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=user_key, max_retries=0) as sdk:
        yield sdk


def words(marker: str, tokens: int) -> str:
    """A message of about ``tokens`` tokens by the estimate, starting with ``marker``."""
    return marker + " " + "lorem ipsum " * (tokens * CHARS_PER_TOKEN // 12)


def history(marker: str, turns: int) -> list[dict[str, Any]]:
    """``turns`` questions and answers, each message about 100 tokens, then a question."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for i in range(turns):
        messages.append({"role": "user", "content": words(f"{marker} question {i}", 100)})
        messages.append({"role": "assistant", "content": words(f"answer {i}", 100)})
    messages.append({"role": "user", "content": f"{marker}: and now?"})
    return messages


@pytest.mark.parametrize("stream", [False, True])
def test_messages_larger_than_the_window_are_refused_before_any_upstream_call(
    client: openai.OpenAI, upstream: Any, stream: bool
) -> None:
    marker = f"zebrachatwide{int(stream)}"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=history(marker, 15), stream=stream)
    error = caught.value
    assert error.status_code == 400
    assert error.code == "context_length_exceeded"
    assert error.param == "messages"
    assert f"maximum context length is {SMALL_WINDOW:,} tokens" in error.message
    assert "Please reduce the length of the messages" in error.message
    assert upstream_requests(upstream, marker) == []


def test_tools_count_against_the_window(client: openai.OpenAI, upstream: Any) -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    tools = [
        {
            "type": "function",
            "function": {"name": f"tool_{i}", "description": "d" * 800, "parameters": schema},
        }
        for i in range(12)
    ]
    messages = [{"role": "user", "content": "zebrachattools: which tool?"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    assert caught.value.code == "context_length_exceeded"
    assert "messages and tools" in caught.value.message
    assert upstream_requests(upstream, "zebrachattools") == []
    answer = client.chat.completions.create(model=MODEL, messages=messages, tools=tools[:2])
    assert answer.choices[0].finish_reason == "stop"


def test_a_request_within_the_window_goes_whole_to_the_upstream(
    client: openai.OpenAI, upstream: Any
) -> None:
    """Within the estimate the upstream judges: nothing is dropped, even when the room
    left for the answer is small."""
    messages = history("zebrachatfits", 8)  # about 1,700 tokens of 2,000
    answer = client.chat.completions.create(model=MODEL, messages=messages)
    assert answer.choices[0].message.content
    [sent] = upstream_requests(upstream, "zebrachatfits")
    assert len(sent["messages"]) == len(messages)


def test_a_model_whose_window_is_unknown_is_left_to_its_upstream(
    client: openai.OpenAI, upstream: Any
) -> None:
    messages = history("zebrachatunknown", 15)
    answer = client.chat.completions.create(model="fake/text:3", messages=messages)
    assert answer.choices[0].message.content
    [sent] = upstream_requests(upstream, "zebrachatunknown")
    assert len(sent["messages"]) == len(messages)
