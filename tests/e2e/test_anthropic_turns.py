"""A tool loop through a real ``parley serve`` with the Anthropic adapter, against the fake
Anthropic server (constructed streams in the documented wire format)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley import AsyncClient
from parley.testing.fake_anthropic import Answer, FakeAnthropic, message_events, text, tool_use
from tests.harness import FreshDatabase, ParleyServer

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


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
        config = (
            f'[providers.claude]\nkind = "anthropic"\nbase_url = "{fake.base_url}"\n'
            'api_key = "sk-ant-test"\n'
        )
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
