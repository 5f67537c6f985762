"""``parley import --from-dir``: a folder of JSON files in the Assistants API's shapes (as
people exported them: list pages newest first, plain arrays), imported into a server's
database; what cannot come is reported; bad folders and files are clear errors that a run
again, once fixed, finishes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import FreshDatabase, ParleyServer


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    tmp = tmp_path_factory.mktemp("target")
    db = FreshDatabase(tmp)
    srv = ParleyServer(database_url=db.url, workdir=tmp)
    try:
        yield srv.start()
    finally:
        srv.stop()
        srv.assert_clean_log()
        db.drop()


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }


def _text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": []}}


def _message(mid: str, role: str, at: int, *parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": mid,
        "object": "thread.message",
        "created_at": at,
        "thread_id": "thread_A",
        "status": "completed",
        "role": role,
        "content": list(parts),
        "assistant_id": "asst_1" if role == "assistant" else None,
        "run_id": None,
        "attachments": [],
        "metadata": {},
        **extra,
    }


ASSISTANT = {
    "id": "asst_1",
    "object": "assistant",
    "created_at": 900,
    "name": "Forecaster",
    "description": None,
    "model": "gpt-4o",
    "instructions": "Say the weather.",
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": False,
            },
        },
        {"type": "file_search", "file_search": {"max_num_results": 5}},
        {"type": "code_interpreter"},
        {"type": "browser"},
    ],
    "tool_resources": {},
    "metadata": {"source": "export"},
    "temperature": 0.5,
    "top_p": 1.0,
    "response_format": "auto",
}

MESSAGES = [
    _message("msg_1", "user", 1000, _text("Weather in Oslo?"), metadata={"n": "1"}),
    _message("msg_2", "assistant", 1002, _text("It is cold in Oslo."), run_id="run_1"),
    _message(
        "msg_3",
        "user",
        1003,
        _text("Look at this"),
        {"type": "image_file", "image_file": {"file_id": "file_1"}},
        attachments=[{"file_id": "file_2", "tools": [{"type": "file_search"}]}],
    ),
    _message("msg_4", "assistant", 1004, status="in_progress", run_id="run_2"),
]

RUNS = [
    {
        "id": "run_1",
        "object": "thread.run",
        "created_at": 1001,
        "thread_id": "thread_A",
        "assistant_id": "asst_1",
        "status": "completed",
        "started_at": 1001,
        "completed_at": 1002,
        "model": "gpt-4o",
        "instructions": "Say the weather.",
        "tools": ASSISTANT["tools"],
        "metadata": {"try": "1"},
        "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
        "last_error": None,
    },
    {
        "id": "run_2",
        "object": "thread.run",
        "created_at": 1004,
        "thread_id": "thread_A",
        "assistant_id": "asst_1",
        "status": "in_progress",
        "model": "gpt-4o",
        "tools": [],
        "metadata": {},
        "usage": None,
    },
]

STEPS = [
    {
        "id": "step_1",
        "object": "thread.run.step",
        "created_at": 1001,
        "completed_at": 1001,
        "run_id": "run_1",
        "type": "tool_calls",
        "status": "completed",
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Oslo"}',
                        "output": "-5 C",
                    },
                },
                {
                    "id": "call_2",
                    "type": "code_interpreter",
                    "code_interpreter": {"input": "1+1", "outputs": []},
                },
            ],
        },
    },
    {
        "id": "step_2",
        "object": "thread.run.step",
        "created_at": 1002,
        "run_id": "run_1",
        "type": "message_creation",
        "status": "completed",
        "step_details": {"type": "message_creation", "message_creation": {"message_id": "msg_2"}},
    },
]


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def _export(root: Path) -> Path:
    """The folder: an assistant page, thread A (messages newest first, as the API lists
    them by default; a run with its steps; a run still going) and thread B (a plain
    array, no thread.json)."""
    _write(root / "assistants.json", _page([ASSISTANT]))
    a = root / "threads" / "thread_A"
    _write(
        a / "thread.json",
        {
            "id": "thread_A",
            "object": "thread",
            "created_at": 999,
            "metadata": {"k": "v"},
            "tool_resources": {"code_interpreter": {"file_ids": ["file_9"]}},
        },
    )
    _write(a / "messages.json", _page(MESSAGES[::-1]))
    _write(a / "runs.json", _page(RUNS))
    _write(a / "runs" / "run_1" / "steps.json", _page(STEPS))
    b = root / "threads" / "thread_B"
    _write(b / "messages.json", [_message("msg_b1", "user", 2000, _text("Hello"))])
    return root


def _threads(http: httpx.Client) -> dict[str, str]:
    """The user's threads: by the source id the import printed."""
    listed = http.get("/threads", params={"limit": 100}).json()["data"]
    return {t["id"]: t for t in listed}


def _items(http: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    answer = http.get(f"/conversations/{thread_id}/items", params={"order": "asc", "limit": 100})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def _imported(stdout: str, source_id: str) -> str:
    line = next(x for x in stdout.splitlines() if x.startswith(f"thread {source_id} -> "))
    return line.split(" -> ")[1].split(" ")[0]


def test_a_folder_comes_in_order_with_what_is_left_out_reported(
    target: ParleyServer, tmp_path: Path
) -> None:
    user_key = target.new_user("importer")
    with target.client(user_key) as http:
        user_id = http.get("/me").json()["id"]
    root = _export(tmp_path / "export")
    done = target.cli("import", "--from-dir", str(root), "--user", user_id)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "imported: 1 assistants (0 already there), 2 threads (0 already there)" in out
    assert "6 messages, 1 tool calls, 1 runs" in out
    for reason in (
        "assistant: tool of type 'browser'",
        "file_search kept without its vector stores",
        "run still going (status 'in_progress')",
        "message still being written",
        "message content: image_file part",
        "1 x message attachments",
        "tool call of type 'code_interpreter'",
        "thread: tool_resources",
    ):
        assert reason in out, out
    thread_a = _imported(out, "thread_A")
    with target.client(user_key) as http:
        assert set(_threads(http)) == {thread_a, _imported(out, "thread_B")}
        thread = http.get(f"/threads/{thread_a}").json()
        assert (thread["metadata"], thread["created_at"]) == ({"k": "v"}, 999)
        items = _items(http, thread_a)
        assert [(i["type"], i.get("role")) for i in items] == [
            ("message", "user"),
            ("function_call", None),
            ("function_call_output", None),
            ("message", "assistant"),
            ("message", "user"),
        ]
        assert items[1]["call_id"] == items[2]["call_id"] == "call_1"
        assert json.loads(items[1]["arguments"]) == {"city": "Oslo"}
        assert items[2]["output"] == "-5 C"
        assert items[3]["content"][0]["text"] == "It is cold in Oslo."
        assert items[4]["content"] == [{"type": "input_text", "text": "Look at this"}]
        messages = http.get(f"/threads/{thread_a}/messages", params={"order": "asc"}).json()
        assert [(m["created_at"], m["metadata"]) for m in messages["data"]] == [
            (1000, {"n": "1"}),
            (1002, {}),
            (1003, {}),
        ]
        [assistant] = http.get("/assistants").json()["data"]
        assert (assistant["model"], assistant["created_at"], assistant["metadata"]) == (
            "gpt-4o",
            900,
            {"source": "export"},
        )
        assert [t["type"] for t in assistant["tools"]] == [
            "function",
            "file_search",
            "code_interpreter",
        ]
        assert assistant["temperature"] == 0.5
        [run] = http.get(f"/threads/{thread_a}/runs").json()["data"]
        assert (run["status"], run["assistant_id"], run["metadata"]) == (
            "completed",
            assistant["id"],
            {"try": "1"},
        )
        assert (run["created_at"], run["completed_at"]) == (1001, 1002)
        assert run["usage"]["prompt_tokens"] == 30 and run["usage"]["completion_tokens"] == 12
        assert messages["data"][1]["run_id"] == run["id"]

        # It goes on through the Responses API, as a conversation.
        answer = http.post(
            "/responses",
            json={"model": "demo/parley", "conversation": thread_a, "input": "And Bergen?"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "completed"
        after = _items(http, thread_a)
        assert after[:5] == items
        assert after[5]["role"] == "user" and after[-1]["role"] == "assistant"

    # The first import's admin user saw none of it.
    with target.client(target.admin_key) as http:
        assert thread_a not in _threads(http)

    # Once the run has ended, a second import adds only its message, after the others.
    ended = [
        {**m, "status": "completed", "content": [_text("Sunny.")]} if m["id"] == "msg_4" else m
        for m in MESSAGES
    ]
    _write(root / "threads" / "thread_A" / "messages.json", _page(ended[::-1]))
    again = target.cli("import", "--from-dir", str(root), "--user", user_id)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "imported: 0 assistants (1 already there), 0 threads (2 already there)" in again.stdout
    with target.client(user_key) as http:
        last = _items(http, thread_a)
        assert last[: len(after)] == after
        assert [i["content"][0]["text"] for i in last[len(after) :]] == ["Sunny."]


def test_a_missing_folder_or_a_bad_user_is_refused(target: ParleyServer, tmp_path: Path) -> None:
    missing = target.cli("import", "--from-dir", str(tmp_path / "nothere"))
    assert missing.returncode == 1
    assert "nothere: no such folder" in missing.stderr
    root = _export(tmp_path / "export")
    nobody = target.cli("import", "--from-dir", str(root), "--user", "user_nobody")
    assert nobody.returncode == 2 and "no user with id user_nobody" in nobody.stderr


def test_a_broken_file_fails_its_thread_only_and_a_run_again_finishes(
    target: ParleyServer, tmp_path: Path
) -> None:
    root = _export(tmp_path / "export")
    broken = root / "threads" / "thread_A" / "runs.json"
    broken.write_text('{"object": "list", "data": [')
    first = target.cli("import", "--from-dir", str(root), "--origin", "broken-export")
    assert first.returncode == 1
    assert f"thread thread_A: {broken}: not JSON" in first.stderr
    assert "failed: 1 threads" in first.stdout
    assert "-> " in first.stdout and "thread thread_B" in first.stdout
    with target.client(target.admin_key) as http:
        before = set(_threads(http))
    _write(broken, _page(RUNS))
    second = target.cli("import", "--from-dir", str(root), "--origin", "broken-export")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 threads (1 already there)" in second.stdout
    with target.client(target.admin_key) as http:
        now = _threads(http)
        [added] = set(now) - before
        assert len(_items(http, added)) == 5


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('{"data": "nope"}', "expected a list, or an object with a 'data' list"),
        ('[{"object": "thread.message"}]', "entry 0 has no id"),
        ("[1]", "entry 0 is not an object"),
    ],
)
def test_files_of_the_wrong_shape_are_named(
    target: ParleyServer, tmp_path: Path, content: str, said: str
) -> None:
    root = tmp_path / "export"
    (root / "threads" / "t1").mkdir(parents=True)
    path = root / "threads" / "t1" / "messages.json"
    path.write_text(content)
    done = target.cli("import", "--from-dir", str(root))
    assert done.returncode == 1
    assert f"{path}: {said}" in done.stderr


def test_a_file_over_the_cap_is_not_read(target: ParleyServer, tmp_path: Path) -> None:
    root = _export(tmp_path / "export")
    done = target.cli("import", "--from-dir", str(root), "--max-file-mb", "0.0001")
    assert done.returncode == 1
    assert "assistants.json: " in done.stderr and "--max-file-mb raises it" in done.stderr
