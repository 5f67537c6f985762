"""``/export md``: a thread's messages, as the server answers them, written as Markdown."""

from __future__ import annotations

from parley.sdk import Message
from parley.terminal.repl import export_markdown
from tests.sdk.fake import message_body


def test_markdown_has_each_messages_text_its_tool_calls_and_the_tool_results() -> None:
    call = {"id": "call_1", "name": "get_time", "arguments": {"tz": "UTC"}}
    calls_only = message_body("", message_id="msg_2", role="assistant", tool_calls=[call])
    calls_only["content"] = []  # a message that holds only tool calls has no text part
    messages = [
        message_body("What time is it?", message_id="msg_1"),
        calls_only,
        message_body("12:00", message_id="msg_3", role="tool", tool_call_id="call_1"),
        message_body("It is noon.", message_id="msg_4", role="assistant"),
    ]
    text = export_markdown("thread_1", [Message.model_validate(m) for m in messages])
    assert text == "\n".join(
        [
            "# Parley conversation thread_1",
            "",
            "## user",
            "",
            "What time is it?",
            "",
            "## assistant",
            "",
            '- tool call `get_time` {"tz": "UTC"}',
            "",
            "**tool result** (`call_1`):",
            "",
            "```",
            "12:00",
            "```",
            "",
            "## assistant",
            "",
            "It is noon.",
            "",
        ]
    )
