"""An MCP tool's secrets (``headers`` and ``authorization``) reach its server and nothing
else: a ``parley serve`` of the module's own (its log at debug, the most it says), a
scripted Anthropic fake as the model and a real MCP server on loopback that records the
headers of every request it gets.

One run uses both secrets, random each time: a streamed response in a conversation whose
model calls ``echo`` (no approval), then a response that asks for approval and the approval
that runs the call (the secrets sent again, as the server keeps none, and with an
idempotency key), a background response that calls it, and requests refused with the
secrets in them. The MCP server got both with every request; neither is anywhere in the database (SQLite's files and a dump of
its rows, or a dump of every PostgreSQL table's rows), in Redis when the server uses one,
in the server's log, or in any answer the API gave (created responses, the stream, GETs,
replays, input items, the conversation's items).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import make_url

from tests.e2e.responses_helpers import sse_events
from tests.e2e.responses_providers_helpers import (
    AnthropicUpstream,
    Call,
    CallsTurn,
    Received,
    RecordingMCP,
    TextTurn,
    check_json,
)
from tests.harness import FreshDatabase, ParleyServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUESTION = "Use the tool."


@dataclass
class Run:
    """What the module's run left: the secrets, every answer's body, the MCP server's
    record, and where to look for leaks."""

    secret: str
    token: str
    mcp: RecordingMCP
    server: ParleyServer
    db: FreshDatabase
    url: str = ""
    key: str = ""
    upstream: AnthropicUpstream | None = None
    answers: list[str] = field(default_factory=list)
    #: What the MCP server received during the run.
    received: list[Received] = field(default_factory=list)
    conversation: str = ""
    responses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def both(self) -> tuple[str, str]:
        return self.secret, self.token


class Recorder:
    """An httpx client whose every answer's body is kept."""

    def __init__(self, http: httpx.AsyncClient, answers: list[str]) -> None:
        self.http = http
        self.answers = answers

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = await self.http.request(method, path, **kwargs)
        self.answers.append(answer.text)
        assert answer.status_code == 200, answer.text
        return answer

    async def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return dict((await self.request(method, path, **kwargs)).json())


def mcp_tool(url: str, secret: str, token: str, approval: str) -> dict[str, Any]:
    return {
        "type": "mcp",
        "server_label": "vault",
        "server_url": url,
        "allowed_tools": ["echo"],
        "require_approval": approval,
        "headers": {"X-Secret": secret},
        "authorization": token,
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Run]:
    tmp = tmp_path_factory.mktemp("mcp-secrets")
    upstream = AnthropicUpstream(tmp, 4)
    await upstream.start()
    mcp = RecordingMCP()
    db = FreshDatabase(tmp)
    env = {"PARLEY_MCP_ALLOW_URLS": "127.0.0.1", "PARLEY_LOG_LEVEL": "debug"}
    server = ParleyServer(database_url=db.url, workdir=tmp, config=upstream.config(), env=env)
    secret, token = f"xsecret{secrets.token_hex(16)}", f"xtoken{secrets.token_hex(16)}"
    try:
        with mcp.serve() as url:
            server.start()
            done = Run(secret, token, mcp, server, db, url, server.new_user(), upstream)
            async with httpx.AsyncClient(
                base_url=f"{server.base_url}/v1",
                headers={"Authorization": f"Bearer {done.key}"},
                timeout=20,
                event_hooks={"response": [check_json]},
            ) as http:
                await use_the_secrets(Recorder(http, done.answers), upstream, url, done)
            done.received = list(mcp.received)
            yield done
        server.stop()
        server.assert_clean_log()
    finally:
        server.stop()
        db.drop()
        await upstream.aclose()


async def use_the_secrets(http: Recorder, upstream: AnthropicUpstream, url: str, run: Run) -> None:
    """The run: a streamed call in a conversation, then an approval and its call."""
    call = Call(upstream.call_ids[0], "echo", {"text": "hi"})
    free, asked = upstream.take(), upstream.take()
    (model,) = upstream.script(free, CallsTurn((call,)), TextTurn())[:1]
    conversation = await http.json("POST", "/conversations", json={})
    run.conversation = conversation["id"]
    never = mcp_tool(url, run.secret, run.token, "never")
    body = {"model": model, "input": QUESTION, "tools": [never], "conversation": run.conversation}
    streamed = await http.request("POST", "/responses", json={**body, "stream": True})
    assert "response.mcp_call.completed" in streamed.text
    (model,) = upstream.script(asked, CallsTurn((call,)), TextTurn())[:1]
    always = mcp_tool(url, run.secret, run.token, "always")
    first = await http.json(
        "POST", "/responses", json={"model": model, "input": QUESTION, "tools": [always]}
    )
    request = first["output"][-1]
    assert request["type"] == "mcp_approval_request", first["output"]
    approval = {
        "type": "mcp_approval_response",
        "approval_request_id": request["id"],
        "approve": True,
    }
    second = await http.json(
        "POST",
        "/responses",
        json={
            "model": model,
            "input": [approval],
            "tools": [always],
            "previous_response_id": first["id"],
        },
        headers={"Idempotency-Key": f"approval-{secrets.token_hex(4)}"},
    )
    assert [i["type"] for i in second["output"]] == ["mcp_call", "message"], second["output"]
    assert second["output"][0]["output"] == "hi"
    background = await run_in_background(http, upstream, url, run)
    await refused_requests(http, url, run)
    final = sse_events(streamed.text)[-1]["response"]
    for response_id in (final["id"], first["id"], second["id"], background):
        run.responses.append(await http.json("GET", f"/responses/{response_id}"))
        await http.request("GET", f"/responses/{response_id}/input_items")
        await http.request("GET", f"/responses/{response_id}", params={"stream": "true"})
    await http.request("GET", f"/conversations/{run.conversation}/items")
    await http.request("GET", f"/conversations/{run.conversation}")


async def run_in_background(http: Recorder, upstream: AnthropicUpstream, url: str, run: Run) -> str:
    """A background response that calls the tool, polled to its end; its id."""
    slot = upstream.take()
    call = Call(upstream.call_ids[0], "echo", {"text": "hi"})
    model, _ = upstream.script(slot, CallsTurn((call,)), TextTurn())
    never = mcp_tool(url, run.secret, run.token, "never")
    body = {"model": model, "input": QUESTION, "tools": [never], "background": True}
    response = await http.json("POST", "/responses", json=body)
    deadline = time.monotonic() + 15
    while response["status"] in ("queued", "in_progress"):
        assert time.monotonic() < deadline, response
        await asyncio.sleep(0.05)
        response = await http.json("GET", f"/responses/{response['id']}")
    assert response["status"] == "completed", response
    kinds = [i["type"] for i in response["output"] if i["type"] != "reasoning"]
    assert kinds == ["mcp_list_tools", "mcp_call", "message"], response["output"]
    assert response["output"][-2]["output"] == "hi", response["output"]
    return str(response["id"])


async def refused_requests(http: Recorder, url: str, run: Run) -> None:
    """Requests refused with the secrets in them: their errors do not say them."""
    tool = mcp_tool(url, run.secret, run.token, "never")
    bad = [
        {"model": "claude0/claude-test-1", "input": QUESTION, "tools": [tool], "temperature": "hot"},
        {"model": "nope/nothing", "input": QUESTION, "tools": [tool]},
        {"model": "claude0/claude-test-1", "input": QUESTION, "tools": [{**tool, "server_url": "http://10.0.0.1/mcp"}]},
        {"model": "claude0/claude-test-1", "input": QUESTION, "tools": [{**tool, "headers": {"X-Secret": run.secret + "\n"}}]},
    ]  # fmt: skip
    for body in bad:
        answer = await http.http.post("/responses", json=body)
        run.answers.append(answer.text)
        assert answer.status_code in (400, 404), answer.text


# ------------------------------------------------------------------- where to look


def database_text(db: FreshDatabase) -> str:
    """Every row of every table, as text; for SQLite, its files' bytes as well."""
    url = make_url(db.url)
    if db.kind == "sqlite":
        path = Path(str(url.database))
        files = [p for p in path.parent.glob(f"{path.name}*") if p.is_file()]
        raw = b"".join(p.read_bytes() for p in files)
        with sqlite3.connect(path) as conn:
            dump = "\n".join(conn.iterdump())
        return raw.decode("latin-1") + dump
    import psycopg

    with psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        dbname=url.database,
    ) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ]
        assert tables, "no table to search"
        rows = [
            str(row[0])
            for table in tables
            for row in conn.execute(f'SELECT t::text FROM "{table}" t')  # type: ignore[call-overload]
        ]
    return "\n".join(rows)


def redis_text() -> str:
    """Every key and value of the test Redis (when the server uses one), as text."""
    url = os.environ.get("PARLEY_TEST_REDIS_URL")
    if not url:
        return ""
    import redis

    client = redis.Redis.from_url(url)
    parts: list[str] = []
    try:
        for key in client.scan_iter(count=1000):
            parts.append(repr(key))
            kind = client.type(key)
            if kind == b"string":
                parts.append(repr(client.get(key)))
            elif kind == b"stream":
                parts.append(repr(client.xrange(key)))
            elif kind == b"hash":
                parts.append(repr(client.hgetall(key)))
            elif kind == b"list":
                parts.append(repr(client.lrange(key, 0, -1)))
            elif kind in (b"set", b"zset"):
                parts.append(repr(client.zrange(key, 0, -1) if kind == b"zset" else client.smembers(key)))  # fmt: skip
    finally:
        client.close()
    return "\n".join(parts)


# ----------------------------------------------------------------------------- tests


async def test_the_mcp_server_got_both_secrets_with_every_request(run: Run) -> None:
    received = run.received
    methods = [r.method for r in received]
    # Three calls (in the conversation, after the approval, in the background), each
    # session listing first (the SDK's client may list again before a call).
    assert methods.count("tools/call") == 3 and methods.count("tools/list") >= 3, methods
    for request in received:
        assert request.headers.get("x-secret") == run.secret, request
        assert request.headers.get("authorization") == f"Bearer {run.token}", request


async def test_no_answer_holds_a_secret(run: Run) -> None:
    assert len(run.answers) >= 10
    for answer in run.answers:
        for secret in run.both:
            assert secret not in answer, answer
    # The tools are answered back, without their headers.
    for response in run.responses:
        for tool in response["tools"]:
            assert tool["type"] == "mcp" and tool.get("headers") in (None, {}), tool
            assert "authorization" not in tool, tool


async def test_the_database_holds_no_secret(run: Run) -> None:
    text = database_text(run.db)
    assert run.conversation in text  # the search reaches the run's rows
    for secret in run.both:
        assert secret not in text


async def test_redis_holds_no_secret(run: Run) -> None:
    if not os.environ.get("PARLEY_TEST_REDIS_URL"):
        pytest.skip("the server uses no Redis")
    text = redis_text()
    for secret in run.both:
        assert secret not in text


async def test_the_log_holds_no_secret(run: Run) -> None:
    log = run.server.log()
    assert log  # at debug, the server says things
    for secret in run.both:
        assert secret not in log


async def test_an_approval_without_the_secrets_sends_none(run: Run) -> None:
    """The secrets are not kept for the approval: an approval sent without them (the tool
    given again without headers) reaches the server without them."""
    assert run.upstream is not None
    slot = run.upstream.take()
    call = Call(run.upstream.call_ids[0], "echo", {"text": "hi"})
    model, _ = run.upstream.script(slot, CallsTurn((call,)), TextTurn())
    always = mcp_tool(run.url, run.secret, run.token, "always")
    async with httpx.AsyncClient(
        base_url=f"{run.server.base_url}/v1",
        headers={"Authorization": f"Bearer {run.key}"},
        timeout=20,
        event_hooks={"response": [check_json]},
    ) as http:
        body = {"model": model, "input": QUESTION, "tools": [always]}
        asked = (await http.post("/responses", json=body)).json()
        request = asked["output"][-1]
        assert request["type"] == "mcp_approval_request", asked["output"]
        bare = {k: v for k, v in always.items() if k not in ("headers", "authorization")}
        approval = {
            "type": "mcp_approval_response",
            "approval_request_id": request["id"],
            "approve": True,
        }
        before = len(run.mcp.received)
        answer = await http.post(
            "/responses",
            json={
                "model": model,
                "input": [approval],
                "tools": [bare],
                "previous_response_id": asked["id"],
            },
        )
    assert answer.status_code == 200, answer.text
    (sent,) = run.mcp.calls()[len(run.mcp.calls()) - 1 :]
    assert sent in run.mcp.received[before:]
    assert "x-secret" not in sent.headers and "authorization" not in sent.headers, sent
    done = answer.json()
    assert [i["type"] for i in done["output"]] == ["mcp_call", "message"], done["output"]
    assert done["output"][0]["output"] == "hi"
