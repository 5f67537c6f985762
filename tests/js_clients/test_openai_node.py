"""OpenAI's Node SDK (the npm ``openai`` package, run by the bun of ``tests/compliance``) on
Parley. On ``/v1/responses``: its ``responses.stream()`` helper throws "Unhandled response
stream event" on any event outside OpenAI's own names, so reasoning must stream as
``response.reasoning_text.*`` to it. On the Assistants API: its ``AssistantStream`` helper's
events (``toolCallCreated``, ``toolCallDelta``, ``toolCallDone``, ``textDone``,
``imageFileDone``, ...) fire with what OpenAI's stream gives them. ``make test`` installs
the pinned package (``npm ci --prefix tests/js_clients``); without it this skips, and fails
under CI."""

from __future__ import annotations

import json
from typing import Any

from parley.testing.fake_upstream import expected_text, tool_arguments, tool_results_text
from tests.code_interpreter.conftest import needs_sandbox, needs_stack
from tests.js_clients.bun import script_report
from tests.openai_sdk.assistants import streamed_message

#: Code the demo model runs with the code interpreter: a line of logs, and a figure.
FIGURE = "python import matplotlib.pyplot as plt\nprint('drawn')\nlines = plt.plot([1, 4, 9])"
WEATHER = {"function": {"parameters": {"properties": {"city": {"type": "string"}}}}}


def test_the_node_sdks_stream_helper_takes_a_reasoning_models_stream(
    server: Any, user_key: str
) -> None:
    base = f"{server.base_url}/v1"
    report = script_report(
        "openai_node.ts", "openai", "the openai Node client", base, user_key, "demo/parley"
    )
    assert "error" not in report, report
    assert "response.reasoning_text.delta" in report["types"]
    assert "response.reasoning.delta" not in report["types"]
    assert report["reasoning"] == report["finalReasoning"] != ""  # the helper built the item
    assert report["text"].startswith('Demo model: you said "Think, then answer."')
    assert report["types"][-1] == "response.completed"


def _assistants(server: Any, user_key: str, *args: str) -> dict[str, Any]:
    base = f"{server.base_url}/v1"
    report = script_report(
        "openai_node_assistants.ts", "openai", "the openai Node client", base, user_key, *args
    )
    assert "error" not in report, report
    return report


def test_the_node_assistant_stream_hands_a_function_calls_arguments_in_pieces(
    server: Any, user_key: str
) -> None:
    report = _assistants(server, user_key, "function", "fake/auto")
    asked = report["asked"]
    names = [name for name, _ in asked]
    assert names[0] == "toolCallCreated" and names[-1] == "toolCallDone", names
    assert set(names[1:-1]) == {"toolCallDelta"} and len(names) > 3, names
    [call_id] = report["required"]
    created, done = asked[0][1], asked[-1][1]
    assert (created["id"], created["type"]) == (call_id, "function")
    assert created["function"] == {"name": "get_weather", "arguments": "", "output": None}
    pieces = [delta for _, delta in asked[1:-1]]
    assert {(d["index"], d["type"]) for d in pieces} == {(0, "function")}
    arguments = done["function"]["arguments"]
    assert "".join(d["function"]["arguments"] for d in pieces) == arguments
    assert json.loads(arguments) == tool_arguments(WEATHER, 0)

    answered = report["answered"]
    names = [name for name, _ in answered]
    assert names == streamed_message(len(names), node=True), names
    answer = tool_results_text([("get_weather", "22 C")])
    assert "".join(text for name, text in answered if name == "textDelta") == answer
    assert answered[-2:] == [["textDone", answer], ["messageDone", ["text"]]]
    assert report["status"] == "completed"


def test_the_node_assistant_stream_takes_text_then_a_call_in_one_answer(
    server: Any, user_key: str
) -> None:
    """A model that writes, then calls a function: the message ends (``textDone``,
    ``messageDone``) before the call's step starts, as the helper demands of a stream."""
    report = _assistants(server, user_key, "function", "fake/preface:3")
    names = [name for name, _ in report["asked"]]
    assert names == [
        "messageCreated",
        "textCreated",
        *["textDelta"] * 3,
        "textDone",
        "messageDone",
        "toolCallCreated",
        *["toolCallDelta"] * (len(names) - 9),
        "toolCallDone",
    ], names
    assert report["asked"][5] == ["textDone", expected_text(3)]
    assert report["status"] == "completed"


def test_the_node_assistant_stream_hands_code_its_outputs_and_the_text_after_a_figure(
    server: Any, user_key: str
) -> None:
    needs_sandbox()
    needs_stack()
    report = _assistants(server, user_key, "code", "demo/parley", FIGURE)
    assert report["status"] == "completed", report
    seen = report["seen"]
    names = [name for name, _ in seen]
    calls = names[: names.index("toolCallDone") + 1]
    assert calls[0] == "toolCallCreated" and set(calls[1:-1]) == {"toolCallDelta"}, names
    created, *deltas, done = [given for _, given in seen[: len(calls)]]
    assert created["type"] == "code_interpreter"
    assert created["code_interpreter"] == {"input": "", "outputs": []}
    code = FIGURE.removeprefix("python ")
    inputs = [d["code_interpreter"]["input"] for d in deltas if "input" in d["code_interpreter"]]
    assert len(inputs) > 1 and "".join(inputs) == code  # the code in pieces
    outputs = deltas[-1]["code_interpreter"]["outputs"]  # then, once it ran, its outputs
    assert [(o["index"], o["type"]) for o in outputs] == [(0, "logs"), (1, "image")]
    assert outputs[0]["logs"] == "drawn\n"
    figure = outputs[1]["image"]["file_id"]
    assert done["code_interpreter"]["input"] == code
    assert [o["type"] for o in done["code_interpreter"]["outputs"]] == ["logs", "image"]

    # The answer: the figure is its first part, the text its second, and both end.
    image, text = report["answer"]
    assert image == {"type": "image_file", "image_file": {"file_id": figure}}
    message = seen[len(calls) :]
    names = [name for name, _ in message]
    assert names == streamed_message(len(names), figure=True, node=True), names
    assert message[3] == ["imageFileDone", figure]
    written = "".join(given for name, given in message if name == "textDelta")
    assert written == text["text"]["value"]
    assert message[-2:] == [["textDone", written], ["messageDone", ["image_file", "text"]]]
