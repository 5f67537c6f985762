"""The SDK's models read the server's Assistants v2 shapes, and give easy paths into them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from parley.sdk import ContentPart, Image, ImagePart, Message, Run, TextPart
from parley.types import RunStatus
from tests.sdk.fake import message_body, required_action, run_body

PHOTO = "https://images.example.test/cat.jpg"


def test_a_messages_text_joins_its_text_parts_and_images_lists_its_image_parts() -> None:
    body = message_body("first", images=(PHOTO,))
    body["content"].append({"type": "text", "text": {"value": "second", "annotations": []}})
    message = Message.model_validate(body)
    assert [type(p) for p in message.content] == [TextPart, ImagePart, TextPart]
    assert message.text == "first\n\nsecond"
    assert message.images == [Image(url=PHOTO, detail="auto")]
    assert message.images[0].url == PHOTO


def test_a_message_of_only_images_or_only_tool_calls_has_empty_text() -> None:
    assert Message.model_validate(message_body("", images=(PHOTO,))).text == ""
    calls = message_body(
        "", role="assistant", tool_calls=[{"id": "call_1", "name": "f", "arguments": {}}]
    )
    calls["content"] = []
    message = Message.model_validate(calls)
    assert (message.text, message.images, message.tool_calls[0].name) == ("", [], "f")


def test_a_part_of_a_kind_the_sdk_does_not_know_is_kept() -> None:
    body = message_body("hi")
    body["content"].append({"type": "refusal", "refusal": "no"})
    message = Message.model_validate(body)
    assert isinstance(message.content[1], ContentPart)
    assert message.content[1].model_dump() == {"type": "refusal", "refusal": "no"}
    assert message.text == "hi"


def test_a_text_part_without_its_text_is_refused() -> None:
    body = message_body("hi")
    body["content"] = [{"type": "text"}]
    with pytest.raises(ValidationError):
        Message.model_validate(body)


def test_requires_action_reads_as_action_required() -> None:
    run = Run.model_validate(
        run_body("requires_action", required_action=required_action(("get_time", {"tz": "UTC"})))
    )
    assert run.status is RunStatus.ACTION_REQUIRED and run.status == "action_required"
    assert run.required_action is not None
    assert [a.tool_call_id for a in run.required_action.actions] == ["call_1_0"]
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_1_0", "function", "get_time")
    # The other statuses are read as they are; an unknown one is refused.
    assert Run.model_validate(run_body("completed")).status is RunStatus.COMPLETED
    with pytest.raises(ValidationError):
        Run.model_validate(run_body("requiring"))


def test_a_runs_usage_has_openais_counts_and_parleys() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "input_tokens": 10,
        "output_tokens": 4,
        "reasoning_tokens": 1,
        "cached_tokens": 2,
    }
    run = Run.model_validate(run_body("completed", usage=usage))
    assert run.usage.model_dump() == usage
    assert (run.instructions, run.parallel_tool_calls) == ("", True)
