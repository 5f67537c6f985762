"""A stored assistant message as items: its reasoning and text in the order the model gave
them, with the ids the response's stream gave them."""

from __future__ import annotations

from typing import Any

from parley.server.faces.responses.items import message_id_of, message_items, without_segment
from parley.store.records import Message

TOKEN = "0123456789abcdef01234567"


def assistant(content: str, reasoning: str | None, layout: Any = None) -> Message:
    return Message(
        id=f"msg_{TOKEN}",
        thread_id="thread_x",
        seq=2,
        role="assistant",
        content=content,
        reasoning=reasoning,
        tool_calls=[{"id": "call_1", "name": "f", "arguments": {}}],
        tool_call_id=None,
        run_id="run_x",
        created_at=0.0,
        layout=layout,
    )


def shown(message: Message) -> list[tuple[str, str, Any]]:
    """``(type, id, parts)`` of each item: the text, or the reasoning's content and summary."""
    out: list[tuple[str, str, Any]] = []
    for item in message_items(message):
        if item["type"] == "message":
            out.append(("message", item["id"], [p["text"] for p in item["content"]]))
        elif item["type"] == "reasoning":
            parts = ([p["text"] for p in item["content"]], [p["text"] for p in item["summary"]])
            out.append(("reasoning", item["id"], parts))
        else:
            out.append((item["type"], item["id"][:3], None))
    return out


def test_a_message_without_a_layout_is_its_reasoning_then_its_text() -> None:
    assert shown(assistant("Hello.", "Hm.")) == [
        ("reasoning", f"rs_{TOKEN}", (["Hm."], [])),
        ("message", f"msg_{TOKEN}", ["Hello."]),
        ("function_call", "fc_", None),
    ]


def test_alternating_reasoning_and_text_are_items_numbered_by_kind() -> None:
    layout = [["reasoning", 3], ["text", 6], ["reasoning", 4], ["summary", 5], ["text", 3]]
    message = assistant("Hello.Bye", "Hm. NowShort", layout)
    assert shown(message) == [
        ("reasoning", f"rs_{TOKEN}", (["Hm."], [])),
        ("message", f"msg_{TOKEN}", ["Hello."]),
        ("reasoning", f"rs_{TOKEN}_2", ([" Now"], [])),
        ("reasoning", f"rs_{TOKEN}_3", ([], ["Short"])),
        ("message", f"msg_{TOKEN}_2", ["Bye"]),
        ("function_call", "fc_", None),
    ]
    for item_id in (f"rs_{TOKEN}_3", f"msg_{TOKEN}_2", f"rs_{TOKEN}"):
        assert message_id_of(item_id) == f"msg_{TOKEN}"


def test_one_item_of_a_message_goes_and_the_rest_keep_their_order() -> None:
    layout = [["reasoning", 3], ["text", 6], ["reasoning", 4], ["text", 3]]
    message = assistant("Hello.Bye", "Hm. Now", layout)
    content, reasoning, left = without_segment(message, f"rs_{TOKEN}_2")
    assert (content, reasoning) == ("Hello.Bye", "Hm.")
    assert left == [["reasoning", 3], ["text", 6], ["text", 3]]
    # Two texts side by side are still two items, as the stream showed them.
    kept = assistant(content, reasoning, left)
    assert [i["id"] for i in message_items(kept)][:3] == [
        f"rs_{TOKEN}",
        f"msg_{TOKEN}",
        f"msg_{TOKEN}_2",
    ]
    # What is left in the plain order needs no layout.
    thought_again = assistant(
        "Hello.", "Hm. Now", [["reasoning", 3], ["text", 6], ["reasoning", 4]]
    )
    assert without_segment(thought_again, f"rs_{TOKEN}_2") == ("Hello.", "Hm.", None)
    assert without_segment(assistant("Hello.", "Hm."), f"rs_{TOKEN}") == ("Hello.", None, None)
