"""U+0000 is stored as U+FFFD on every database (PostgreSQL holds NUL in neither text nor
JSONB): in a model's tool-call arguments and text. Nothing fails, nothing is half-written,
and the answer is the same on SQLite and PostgreSQL. A client's NUL is refused (a 422, a 400
on the Assistants paths) before anything is stored (``test_bad_input.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.helpers import (
    WEATHER,
    actions,
    assert_error,
    assert_invalid,
    create_assistant,
    get_run,
    messages,
    replayed_tool_calls,
    stream_process,
    submit_outputs,
)

#: The arguments text of a tool call with a NUL in a string (a JSON escape, as sent).
NUL_ARGUMENTS = '{"city": "Os\\u0000lo"}'
CLEANED = {"city": "Os\ufffdlo"}


def test_a_nul_in_tool_call_arguments_pauses_the_run_for_its_tool(
    http: httpx.Client, tmp_path: Path
) -> None:
    model = replayed_tool_calls(tmp_path / "nul.sse", ("call_nul", "get_weather", NUL_ARGUMENTS))
    bot = create_assistant(http, model, tools=[WEATHER])
    turn = stream_process(http, assistant_id=bot["id"], content="weather")
    assert turn.final_status == "action_required", turn.types
    assert turn.types[-1] == "done" and "error" not in turn.types
    (item,) = turn.manifest
    assert item["arguments"] == CLEANED  # the manifest is what is stored
    (action,) = actions(http, turn.run_id)
    assert action["arguments"] == CLEANED
    thread_id = get_run(http, turn.run_id)["thread_id"]
    assert messages(http, thread_id)[-1]["tool_calls"][0]["arguments"] == CLEANED

    submit_outputs(http, turn.run_id, {"call_nul": "sunny"})
    assert messages(http, thread_id)[-1]["content"] == "sunny"


def test_a_nul_in_tool_call_arguments_without_streaming(http: httpx.Client, tmp_path: Path) -> None:
    model = replayed_tool_calls(tmp_path / "nul.sse", ("call_nul", "get_weather", NUL_ARGUMENTS))
    bot = create_assistant(http, model, tools=[WEATHER])
    answer = http.post(
        "/process", json={"assistant_id": bot["id"], "content": "weather", "stream": False}
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "action_required", result
    assert [a["arguments"] for a in result["actions"]] == [CLEANED]
    assert get_run(http, result["run_id"])["status"] == "requires_action"


def test_a_nul_in_the_models_text_is_stored_cleaned(http: httpx.Client, tmp_path: Path) -> None:
    chunks = [{"role": "assistant", "content": "one\x00"}, {"content": "two"}]
    lines = [
        {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d}]}
        for d in chunks
    ]
    path = tmp_path / "text.sse"
    path.write_text("".join(f"data: {json.dumps(x)}\n\n" for x in lines) + "data: [DONE]\n\n")
    bot = create_assistant(http, f"fake/replay:{path}")
    turn = stream_process(http, assistant_id=bot["id"], content="hello")
    assert turn.final_status == "completed", turn.types
    assert turn.text == "one\x00two"  # live, as the model sent it
    stored = messages(http, get_run(http, turn.run_id)["thread_id"])
    assert stored[-1]["content"] == "one\ufffdtwo"


def test_a_nul_in_an_id_finds_nothing(http: httpx.Client) -> None:
    for path in ("/threads/thread_%00x", "/runs/run_%00x", "/assistants/asst_%00x"):
        assert_error(http.get(path), 404)


def test_a_nul_in_a_query_is_refused(http: httpx.Client) -> None:
    thread = http.post("/threads", json={}).json()
    assert_error(http.get("/runs", params={"thread_id": "thread_\x00x"}), 422)
    # an Assistants path: OpenAI's shape and status
    assert_invalid(http.get(f"/threads/{thread['id']}/messages", params={"after": "msg_\x00"}))
