"""Issue 29's validation defects, over HTTP on the suite's server: numbers a request brings
are bounded (and integers are integers) at the edge, on every face, and a run whose stored
numbers are out of range still reads (200) wherever it is listed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import httpx
import sqlalchemy as sa

from parley.store import tables
from parley.store.db import Database
from tests.e2e.helpers import assert_error, assert_invalid, create_run, create_thread
from tests.e2e.test_assistants_api import assistant, finished, thread

BIG = 10**30


# --------------------------------------------------------------- Assistants run numbers


def test_assistants_runs_refuse_counts_out_of_range(http: httpx.Client) -> None:
    bot = assistant(http, "demo/x")
    t = thread(http, "hello")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"max_completion_tokens": BIG}, "max_completion_tokens"),
        ({"max_prompt_tokens": BIG}, "max_prompt_tokens"),
        ({"max_completion_tokens": "10"}, "max_completion_tokens"),
        ({"max_prompt_tokens": 10.0}, "max_prompt_tokens"),
        ({"max_completion_tokens": True}, "max_completion_tokens"),
        (
            {"truncation_strategy": {"type": "last_messages", "last_messages": BIG}},
            "truncation_strategy.last_messages",
        ),
        ({"metadata": {"a": BIG}}, "metadata.a"),
    ]
    for fields, param in bad:
        body = {"assistant_id": bot["id"], **fields}
        assert_invalid(http.post(f"/threads/{t['id']}/runs", json=body), param)
        assert_invalid(http.post("/threads/runs", json=body), param)
    # Nothing was started: the thread has no run.
    listed = http.get(f"/threads/{t['id']}/runs")
    assert listed.status_code == 200 and listed.json()["data"] == [], listed.text


def test_assistants_and_native_runs_refuse_parameters_out_of_range(http: httpx.Client) -> None:
    bad = [{"max_tokens": BIG}, {"max_tokens": "10"}, {"temperature": "hot"}, {"seed": -BIG}]
    for parameters in bad:
        answer = http.post("/assistants", json={"model": "demo/x", "parameters": parameters})
        assert_invalid(answer, f"parameters.{next(iter(parameters))}")
    answer = http.post("/assistants", json={"model": "demo/x", "metadata": {"n": BIG}})
    assert_invalid(answer, "metadata.n")
    bot = assistant(http, "demo/x")
    t = create_thread(http)
    for parameters in bad:
        body = {"assistant_id": bot["id"], "thread_id": t["id"], "parameters": parameters}
        assert_invalid(http.post("/runs", json=body))
    # What is in range is taken.
    create_run(http, t["id"], bot["id"], parameters={"max_tokens": 50, "seed": 7, "top_p": 1})
    assistant(http, "demo/x", parameters={"max_tokens": 50, "temperature": 1, "vendor": "x"})


def _poison(url: str, run_id: str) -> None:
    """Store numbers no request may bring any longer in the run's row, as an older
    version could have."""

    def write(conn: sa.Connection) -> None:
        conn.execute(
            sa.update(tables.runs)
            .where(tables.runs.c.id == run_id)
            .values(
                request={
                    "face": "assistants",
                    "max_prompt_tokens": BIG,
                    "max_completion_tokens": BIG,
                },
                options={
                    "truncation": {"type": "last_messages", "last_messages": BIG},
                    "output_budget": BIG,
                },
                parameters={"temperature": "hot", "top_p": BIG, "max_tokens": BIG},
                metadata={"n": BIG},
            )
        )

    async def main() -> None:
        db = Database(url)
        try:
            await db.write(write)
        finally:
            await db.dispose()

    asyncio.run(main())


def test_a_run_whose_stored_numbers_are_out_of_range_still_reads(
    http: httpx.Client, server: Any
) -> None:
    bot = assistant(http, "demo/x")
    t = thread(http, "hello")
    run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"]}).json()
    assert finished(http, t["id"], run["id"])["status"] == "completed"
    _poison(server.database_url, run["id"])
    reads = [
        f"/threads/{t['id']}/runs/{run['id']}",
        f"/threads/{t['id']}/runs",
        f"/threads/{t['id']}/runs/{run['id']}/steps",
        f"/runs/{run['id']}",
        "/runs",
        f"/threads/{t['id']}/messages",
    ]
    for path in reads:
        answer = http.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
    # Not a response (404), nor a conversation's items to break either.
    assert http.get(f"/responses/{run['id']}").status_code in (200, 404)
    assert http.get(f"/conversations/{t['id']}/items").status_code == 200
    read = http.get(f"/threads/{t['id']}/runs/{run['id']}").json()
    assert read["max_completion_tokens"] is None and read["max_prompt_tokens"] is None, read
    assert read["truncation_strategy"] == {"type": "auto", "last_messages": None}, read
    assert read["temperature"] is None and read["top_p"] is None, read


# ------------------------------------------------------------- integers are integers


def test_integer_parameters_of_responses_and_chat_are_json_integers(http: httpx.Client) -> None:
    responses = {
        "max_output_tokens": ["10", 10.0, True, BIG],
        "max_tool_calls": ["3", 3.0],
        "top_logprobs": ["2", 2.0],
    }
    for param, values in responses.items():
        for value in values:
            body = {"model": "demo/x", "input": "hi", param: value}
            assert_invalid(http.post("/responses", json=body), param)
    chat = {
        "max_tokens": ["10", 10.0, True],
        "max_completion_tokens": ["10", 10.5],
        "n": ["1", 1.0],
        "top_logprobs": ["2"],
        "seed": ["7", 7.0],
    }
    message = [{"role": "user", "content": "hi"}]
    for param, values in chat.items():
        for value in values:
            body = {"model": "demo/x", "messages": message, param: value}
            assert_invalid(http.post("/chat/completions", json=body), param)
    # Integers are taken.
    answer = http.post(
        "/responses", json={"model": "demo/x", "input": "hi", "max_output_tokens": 10}
    )
    assert answer.status_code == 200, answer.text
    body = {"model": "demo/x", "messages": message, "max_tokens": 10, "seed": 7, "n": 1}
    answer = http.post("/chat/completions", json=body)
    assert answer.status_code == 200, answer.text


# -------------------------------------------------------------------- reasoning items


def test_a_reasoning_input_item_needs_its_summary(http: httpx.Client) -> None:
    """The specification's reasoning item: ``summary`` (a list of ``summary_text`` parts)
    is required; ``content``, when given, is a list of ``reasoning_text`` parts."""
    bad: list[tuple[dict[str, Any], str]] = [
        ({"type": "reasoning"}, "input[1].summary"),
        (
            {"type": "reasoning", "content": [{"type": "reasoning_text", "text": "x"}]},
            "input[1].summary",
        ),
        ({"type": "reasoning", "summary": "think"}, "input[1].summary"),
        (
            {"type": "reasoning", "summary": [{"type": "input_text", "text": "x"}]},
            "input[1].summary[0].type",
        ),
        ({"type": "reasoning", "summary": [], "content": "x"}, "input[1].content"),
        (
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "summary_text", "text": "x"}],
            },
            "input[1].content[0].type",
        ),
        (
            {"type": "reasoning", "summary": [], "encrypted_content": 5},
            "input[1].encrypted_content",
        ),
    ]
    for item, param in bad:
        items = [{"role": "user", "content": "hi"}, item, {"role": "assistant", "content": "ok"}]
        answer = http.post("/responses", json={"model": "demo/x", "input": items})
        error = assert_error(answer, 400)
        assert error["param"] == param, (item, error)
    good = [
        {"type": "reasoning", "summary": []},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "x"}], "content": None},
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "y"}]},
    ]
    for item in good:
        items = [{"role": "user", "content": "hi"}, item, {"role": "assistant", "content": "ok"}]
        answer = http.post("/responses", json={"model": "demo/x", "input": items})
        assert answer.status_code == 200, (item, answer.text)


# ------------------------------------------------------------------------------ headers


def _raw_get(server: Any, headers: list[tuple[str, str]], path: str = "/healthz") -> bytes:
    """A GET with ``headers`` over a socket of its own, and what the server answered
    before it closed (empty when it reset the connection first)."""
    host, port = "127.0.0.1", server.port
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    received = b""
    with socket.create_connection((host, port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may stop reading, then reset
            sock.sendall(request)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


def _status(answer: bytes) -> int | None:
    first = answer.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) > 1 else None


def test_headers_are_bounded_in_size_and_number(server: Any) -> None:
    # Just past the bounds: the whole head is read, and refused with a JSON 431.
    cases = [
        [("X-Big", "a" * 70_000)],
        [(f"X-Many-{i}", "x") for i in range(300)],
    ]
    for headers in cases:
        answer = _raw_get(server, headers)
        assert _status(answer) == 431, answer[:300]
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"application/json" in head.lower(), head
        error = json.loads(body)["error"]
        assert error["code"] == "request_headers_too_large", error
        assert error["message"], error
    # Far past them (1 MB, 10,000 headers): refused, or cut off, never served.
    for headers in ([("X-Big", "a" * 1_000_000)], [(f"X-H{i}", "x") for i in range(10_000)]):
        assert _status(_raw_get(server, headers)) in (431, None)
    # Within them: served.
    fine = [("X-Big", "a" * 30_000)] + [(f"X-Many-{i}", "x") for i in range(90)]
    assert _status(_raw_get(server, fine)) == 200
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200


# ------------------------------------------------------------------------------ OPTIONS


def _allow(answer: httpx.Response) -> set[str]:
    return {m.strip() for m in answer.headers.get("allow", "").split(",") if m.strip()}


def test_options_allows_exactly_the_methods_of_the_path_template(
    http: httpx.Client, server: Any
) -> None:
    """Every path of the OpenAPI document, its parameters filled in: ``OPTIONS`` answers
    204 with ``Allow`` naming that template's methods, never a sibling template's (a
    literal segment like ``/v1/threads/runs`` is not ``/v1/threads/{thread_id}``)."""
    document = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    checked = 0
    for template, operations in document["paths"].items():
        methods = {m.upper() for m in operations if m in ("get", "post", "patch", "delete", "put")}
        path = template
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            path = path[:start] + "x_1" + path[end + 1 :]
        answer = http.options(path.removeprefix("/v1") if path.startswith("/v1/") else path)
        if not path.startswith("/v1/"):
            answer = httpx.options(f"{server.base_url}{path}", timeout=10)
        assert answer.status_code == 204, (template, answer.status_code, answer.text)
        assert _allow(answer) == methods | {"OPTIONS"}, (template, answer.headers.get("allow"))
        checked += 1
    assert checked > 40, checked
