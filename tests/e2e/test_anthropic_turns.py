"""Turns through a real ``parley serve`` with the Anthropic adapter, against the fake
Anthropic server (constructed streams in the documented wire format): a tool loop, and what
goes back to the model on later turns (signed thinking blocks, images)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley import AsyncClient
from parley.testing.fake_anthropic import (
    Answer,
    FakeAnthropic,
    message_events,
    text,
    thinking,
    tool_use,
)
from tests.harness import FreshDatabase, ParleyServer

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
#: A signature with the characters base64 adds; it must come back byte for byte.
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGg+xBdjrkzLoky3dl1pk/iMOYds4fQ=="
#: A 1x1 PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def anthropic_config(fake: FakeAnthropic) -> str:
    return (
        f'[providers.claude]\nkind = "anthropic"\nbase_url = "{fake.base_url}"\n'
        'api_key = "sk-ant-test"\n'
    )


async def test_a_tool_loop_with_an_anthropic_model(tmp_path: Path) -> None:
    async with FakeAnthropic(api_key="sk-ant-test") as fake:
        fake.answer(
            Answer(
                message_events(
                    [tool_use("toolu_1", "get_weather", '{"city": ', '"Oslo"}')],
                    stop_reason="tool_use",
                )
            ),
            Answer(message_events([text("It is ", "sunny in Oslo.")])),
        )
        db = FreshDatabase(tmp_path)
        config = anthropic_config(fake)
        server = ParleyServer(database_url=db.url, workdir=tmp_path, config=config).start()
        try:
            async with AsyncClient(base_url=server.base_url, api_key=server.new_user()) as client:
                bot = await client.assistants.create(
                    name="c",
                    model="claude/claude-test-1",
                    tools=[WEATHER],
                    instructions="Be brief.",
                )
                calls: list[dict[str, Any]] = []

                def get_weather(city: str) -> str:
                    calls.append({"city": city})
                    return "sunny, 21C"

                result = await client.respond(
                    assistant_id=bot.id,
                    content="Weather in Oslo?",
                    tools={"get_weather": get_weather},
                )
        finally:
            server.stop()
            server.assert_clean_log()
            db.drop()
    assert calls == [{"city": "Oslo"}]
    assert result.status == "completed"
    assert result.text == "It is sunny in Oslo."
    first, second = (r.body for r in fake.requests if r.target.startswith("/v1/messages"))
    assert first["system"] == "Be brief." and first["tools"][0]["name"] == "get_weather"
    # Turn 2 was rebuilt from the database: the call, then its result in Anthropic's shape.
    assistant, results = second["messages"][1], second["messages"][2]
    assert assistant["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert results["content"][0]["type"] == "tool_result"
    assert results["content"][0]["tool_use_id"] == "toolu_1"


async def test_thinking_and_images_go_back_to_an_anthropic_model(tmp_path: Path) -> None:
    """Turn 1 thinks (signed) and calls a tool; the client submits the output; turn 2's call
    carries the thinking block, same signature, before the tool_use. Then a user message
    with an image reaches the model as an image block."""
    async with FakeAnthropic(api_key="sk-ant-test") as fake:
        fake.answer(
            Answer(
                message_events(
                    [
                        thinking("The user asks about Oslo; ", "use the tool.", signature=SIGNATURE),
                        tool_use("toolu_1", "get_weather", '{"city": "Oslo"}'),
                    ],
                    stop_reason="tool_use",
                )
            ),
            Answer(message_events([thinking("Sunny, say so.", signature="c2lnLTI="), text("Sunny.")])),
            Answer(message_events([text("A red pixel.")])),
        )  # fmt: skip
        db = FreshDatabase(tmp_path)
        server = ParleyServer(
            database_url=db.url, workdir=tmp_path, config=anthropic_config(fake)
        ).start()
        try:
            async with AsyncClient(base_url=server.base_url, api_key=server.new_user()) as client:
                bot = await client.assistants.create(
                    name="c",
                    model="claude/claude-test-1",
                    tools=[WEATHER],
                    parameters={"thinking": {"type": "enabled", "budget_tokens": 1024}},
                )
                result = await client.respond(
                    assistant_id=bot.id,
                    content="Weather in Oslo?",
                    tools={"get_weather": lambda city: f"sunny in {city}"},
                )
                assert (result.status, result.text) == ("completed", "Sunny.")
                assert result.thread_id is not None
                await client.messages.create_message(
                    thread_id=result.thread_id,
                    content="What is this?",
                    images=[f"data:image/png;base64,{PNG}"],
                )
                run = await client.runs.create_run(assistant_id=bot.id, thread_id=result.thread_id)
                turn = await client.completions.create(run_id=run.id, stream=False)
                assert (turn.status, turn.text) == ("completed", "A red pixel.")
        finally:
            server.stop()
            server.assert_clean_log()
            db.drop()
    first, second, third = (r.body for r in fake.requests if r.target.startswith("/v1/messages"))
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    signed = {
        "type": "thinking",
        "thinking": "The user asks about Oslo; use the tool.",
        "signature": SIGNATURE,
    }
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
    # Turn 2 was rebuilt from the database: the signed thinking first, then the call.
    assert second["messages"][1:] == [
        {"role": "assistant", "content": [signed, call]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny in Oslo"}
            ],
        },
    ]
    # The next run: the whole thread, thinking kept, and the image before its text.
    assert third["messages"][:3] == second["messages"]
    assert third["messages"][3:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Sunny, say so.", "signature": "c2lnLTI="},
                {"type": "text", "text": "Sunny."},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "text", "text": "What is this?"},
            ],
        },
    ]  # fmt: skip


async def test_thinking_with_a_nul_character_is_stored(tmp_path: Path) -> None:
    """PostgreSQL's JSON cannot hold U+0000: the kept thinking block gets U+FFFD instead,
    like the stored reasoning, and the turn completes."""
    async with FakeAnthropic(api_key="sk-ant-test") as fake:
        fake.answer(
            Answer(message_events([thinking("a\x00b", signature=SIGNATURE), text("Done.")])),
            Answer(message_events([text("Again.")])),
        )
        db = FreshDatabase(tmp_path)
        server = ParleyServer(
            database_url=db.url, workdir=tmp_path, config=anthropic_config(fake)
        ).start()
        try:
            async with AsyncClient(base_url=server.base_url, api_key=server.new_user()) as client:
                bot = await client.assistants.create(name="c", model="claude/claude-test-1")
                first = await client.process(assistant_id=bot.id, content="hi", stream=False)
                assert (first.status, first.text) == ("completed", "Done.")
                assert first.reasoning == "a\ufffdb"
                again = await client.process(
                    assistant_id=bot.id, content="more", thread_id=first.thread_id, stream=False
                )
                assert again.status == "completed"
        finally:
            server.stop()
            server.assert_clean_log()
            db.drop()
    second = [r.body for r in fake.requests if r.target.startswith("/v1/messages")][1]
    assert second["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "a\ufffdb",
        "signature": SIGNATURE,
    }
