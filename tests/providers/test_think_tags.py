from __future__ import annotations

from typing import Any

import pytest

from parley.events import ReasoningPart, TextPart
from parley.providers.think_tags import ThinkTagSplitter


def _split(chunks: list[str]) -> tuple[str, str]:
    splitter = ThinkTagSplitter()
    parts = [p for chunk in chunks for p in splitter.feed(chunk)] + splitter.flush()
    text = "".join(p.text for p in parts if isinstance(p, TextPart))
    reasoning = "".join(p.text for p in parts if isinstance(p, ReasoningPart))
    return text, reasoning


@pytest.mark.parametrize(
    "chunks",
    [
        ["<think>let me see</think>\n\nThe answer is 4."],
        ["<think>", "let me", " see", "</think>", "\n\nThe answer", " is 4."],
        ["<thi", "nk>let me see</th", "ink>\n\nThe answer is 4."],
        list("<think>let me see</think>\n\nThe answer is 4."),  # one character a chunk
    ],
)
def test_tags_are_found_however_the_text_is_cut(chunks: list[str]) -> None:
    assert _split(chunks) == ("The answer is 4.", "let me see")


def test_text_without_tags_passes_through_unchanged() -> None:
    assert _split(["a < b and ", "<b>bold</b>", " <thin"]) == ("a < b and <b>bold</b> <thin", "")


def test_an_unclosed_think_is_all_reasoning() -> None:
    assert _split(["<think>still thinking when the stream ", "ended"]) == (
        "",
        "still thinking when the stream ended",
    )


def test_text_after_the_answer_started_keeps_its_spaces() -> None:
    assert _split(["Hi", " there", "\n", "again"]) == ("Hi there\nagain", "")


async def test_the_adapter_splits_think_tags_when_asked(fake: Any) -> None:
    from parley.providers.accumulator import AnswerAccumulator
    from parley.providers.base import ChatMessage, ModelRequest
    from parley.providers.openai_chat import OpenAIChatProvider
    from parley.types import Role

    said = "<think>first add, then check</think> The answer is 4."
    request = ModelRequest(model="echo", messages=[ChatMessage(role=Role.USER, content=said)])
    results = {}
    for think_tags in (True, False):
        provider = OpenAIChatProvider(fake.base_url, api_key="k", think_tags=think_tags)
        acc = AnswerAccumulator()
        async for part in provider.stream(request):
            acc.add(part)
        await provider.aclose()
        results[think_tags] = (acc.text, acc.reasoning)
    assert results[True] == ("The answer is 4.", "first add, then check")
    assert results[False] == (said, "")  # off by default: the text as sent


def test_reasoning_goes_back_on_tool_call_turns_only_when_asked() -> None:
    from parley.providers.base import ChatMessage, ModelRequest
    from parley.providers.openai_chat import request_body
    from parley.types import Role, ToolCall

    call = ToolCall(id="c1", name="add", arguments={"a": 2})
    request = ModelRequest(
        model="deepseek-reasoner",
        messages=[
            ChatMessage(role=Role.USER, content="2+2?"),
            ChatMessage(role=Role.ASSISTANT, reasoning="use the tool", tool_calls=[call]),
            ChatMessage(role=Role.TOOL, content="4", tool_call_id="c1"),
            ChatMessage(role=Role.ASSISTANT, content="4", reasoning="done"),
        ],
    )
    sent = request_body(request, reasoning_back=True)["messages"]
    assert sent[1]["reasoning_content"] == "use the tool"
    assert "reasoning_content" not in sent[3]  # not a tool-call turn
    assert all("reasoning_content" not in m for m in request_body(request)["messages"])


def test_the_profile_comes_from_the_config(tmp_path: Any, monkeypatch: Any) -> None:
    from parley.config import Settings
    from parley.providers.registry import ProviderRegistry

    monkeypatch.setenv("DEEPSEEK_API_KEY", "k")
    config = tmp_path / "p.toml"
    config.write_text(
        '[providers.local]\nkind = "openai-chat"\nbase_url = "http://x/v1"\nthink_tags = true\n'
    )
    registry = ProviderRegistry(Settings(config=config))
    local, _ = registry.resolve("local/m")
    deepseek, _ = registry.resolve("deepseek/deepseek-reasoner")
    assert (local._think_tags, local._reasoning_back) == (True, False)  # type: ignore[attr-defined]
    assert (deepseek._think_tags, deepseek._reasoning_back) == (False, True)  # type: ignore[attr-defined]


def test_content_given_as_typed_chunks_mistral_style() -> None:
    from parley.events import ReasoningPart as R
    from parley.events import TextPart as T
    from parley.providers.openai_chat import chunk_events

    thinking = (
        b'{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":'
        b'[{"type":"text","text":"Two plus two"}]}]},"finish_reason":null}]}'
    )
    answer = (
        b'{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"is 4."}]},'
        b'"finish_reason":null}]}'
    )
    assert chunk_events(thinking) == [R("Two plus two")]
    assert chunk_events(answer) == [T("is 4.")]
    assert chunk_events(b'{"choices":[{"index":0,"delta":{"content":"plain"}}]}') == [T("plain")]
