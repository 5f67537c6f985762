"""No log line holds an API key or a message's content, at every level: a server at
``PARLEY_LOG_LEVEL=debug`` (where the libraries' own loggers say the most: uvicorn's, the
``websockets`` library's, SQLAlchemy's, aiosqlite's, the HTTP clients') is sent keys in
every header Parley reads, over HTTP and the Responses WebSocket, and content both ways;
its log must name neither."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import check_sse_response
from tests.e2e.responses_helpers import output_text, websocket
from tests.e2e.sse import stream_events
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

#: Words of content, sent and echoed back (``fake/echo``): none may reach the log.
WORDS = ("zebrasecretword", "quartzprivateword")
CONTENT = " ".join(WORDS)


@pytest.fixture(params=["text", "json"])
def debug_server(
    request: pytest.FixtureRequest, upstream: Any, tmp_path: Any
) -> Iterator[ParleyServer]:
    db = FreshDatabase(tmp_path)
    env = {"PARLEY_LOG_LEVEL": "debug", "PARLEY_LOG_FORMAT": request.param}
    config = provider_config(upstream.base_url, free_port())
    server = ParleyServer(database_url=db.url, workdir=tmp_path, config=config, env=env)
    try:
        yield server.start()
    finally:
        server.stop()
        db.drop()


def test_a_debug_log_holds_no_key_and_no_content(debug_server: ParleyServer) -> None:
    server = debug_server
    key = server.new_user()
    secret = key.removeprefix("pk_")
    wrong = "pk_wrongkeyneverissued0123456789"
    with server.client(key) as http:
        bot = http.post("/assistants", json={"name": "echo", "model": "fake/echo"}).json()
        body = {"assistant_id": bot["id"], "content": CONTENT}
        with http.stream("POST", "/process", json=body) as response:
            check_sse_response(response)
            events = list(stream_events(response))
        assert events[-1].event == "done", events[-3:]
        made = http.post("/responses", json={"model": "fake/echo", "input": CONTENT})
        assert made.status_code == 200, made.text
        assert WORDS[0] in made.text
    # The other headers a key may come in, and a key that is no key.
    assert httpx.get(f"{server.base_url}/v1/me", headers={"X-API-Key": key}).status_code == 200
    refused = httpx.get(f"{server.base_url}/v1/me", headers={"Authorization": f"Bearer {wrong}"})
    assert refused.status_code == 401
    with websocket(server, key) as socket:
        response = socket.create(model="fake/echo", input=CONTENT)
    assert WORDS[0] in output_text(response)
    with websocket(server, key, header="X-API-Key") as socket:
        socket.create(model="fake/echo", input=CONTENT)

    server.stop()
    log = server.log()
    lines = log.splitlines()
    # The requests were logged (access lines, at info), so the rest could have been.
    assert sum("parley.access" in line for line in lines) >= 6, log[:2000]
    if server.env["PARLEY_LOG_FORMAT"] == "json":
        for line in lines:
            json.loads(line)  # one object a line, uvicorn's and the libraries' too
    leaks = [
        line
        for line in lines
        if any(word in line for word in (key, secret, secret[:16], wrong, *WORDS))
        or re.search(r"Bearer (?!\*\*\*)", line)
        or re.search(r"[<>] (TEXT|BINARY) ", line)  # a WebSocket frame, content and all
    ]
    assert not leaks, f"{len(leaks)} lines hold a key or content:\n" + "\n".join(leaks[:40])
    server.assert_clean_log()
