"""The ``code_interpreter`` tool on ``POST /v1/responses``, through the official ``openai``
SDK, with real sandboxes: the demo model runs the code of a message that starts with
``python``; a fake upstream of each provider kind calls the ``python`` function in its own
wire format. A chart comes back as an image output and as a file of the container, cited
in the answer; a container keeps its variables between calls, and loses them once expired;
code that reaches for the network, the host or the server's secrets gets a clean error in
the call's logs, and the server goes on."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter
from sqlalchemy import create_engine, update

import parley
from parley.store.db import normalise_url
from parley.store.tables import containers
from tests.code_interpreter.conftest import LIMITS, needs_sandbox, needs_stack, sandboxes_of
from tests.e2e.responses_providers_helpers import (
    ANSWER,
    AnthropicUpstream,
    Call,
    CallsTurn,
    OllamaUpstream,
    ResponsesUpstream,
    TextTurn,
    Upstream,
    serving_with,
)
from tests.e2e.test_mcp_providers import offered_names, results_of
from tests.harness import ParleyServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUEUED: dict[str, type[Upstream]] = {
    "openai-responses": ResponsesUpstream,
    "anthropic": AnthropicUpstream,
    "ollama": OllamaUpstream,
}
INCLUDE = ["code_interpreter_call.outputs"]
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
#: A secret in the server's environment, which no code may read.
SECRET = "sk-host-secret-7f3a"


class Served:
    def __init__(
        self, server: ParleyServer, http: httpx.AsyncClient, upstreams: dict[str, Upstream]
    ) -> None:
        self.server, self.http, self.upstreams = server, http, upstreams
        key = http.headers["Authorization"].removeprefix("Bearer ")
        self.sdk = openai.AsyncOpenAI(
            base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=60
        )

    def expire(self, container_id: str) -> None:
        """Move the container's last use back past its expiry."""
        engine = create_engine(normalise_url(self.server.database_url))
        with engine.begin() as conn:
            conn.execute(
                update(containers)
                .where(containers.c.id == container_id)
                .values(last_active_at=time.time() - 3 * 3600)
            )
        engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    needs_sandbox()
    tmp = tmp_path_factory.mktemp("code-interpreter")
    upstreams = {kind: cls(tmp, 2) for kind, cls in QUEUED.items()}
    env = {**LIMITS, "PARLEY_TEST_HOST_SECRET": SECRET}
    async with serving_with(tmp, upstreams, env) as (server, http):
        served = Served(server, http, upstreams)
        try:
            yield served
        finally:
            await served.sdk.close()


def code_call(response: Any) -> Any:
    (call,) = [i for i in response.output if i.type == "code_interpreter_call"]
    return call


def logs_of(call: Any) -> str:
    return "".join(o.logs for o in call.outputs or () if o.type == "logs")


async def test_a_chart_comes_back_as_an_image_and_a_cited_file(served: Served) -> None:
    needs_stack()
    code = (
        "python import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "xs = np.arange(10)\n"
        "plt.plot(xs, xs ** 2)\n"
        "print('sum of squares:', int((xs ** 2).sum()))\n"
        "open('/mnt/data/squares.csv', 'w').write('x,y\\n3,9\\n')"
    )
    stream = await served.sdk.responses.create(
        model="demo/parley", input=code, tools=[AUTO], include=INCLUDE, stream=True
    )
    events = [event async for event in stream]
    for event in events:  # each validates as the SDK's own event type
        STREAM_EVENT.validate_python(event.model_dump())
    names = [e.type for e in events]
    code_events = [n for n in names if n.startswith("response.code_interpreter_call")]
    assert code_events == [
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
    ]
    response = events[-1].response  # type: ignore[union-attr]
    assert response.status == "completed"
    call = code_call(response)
    assert call.id.startswith("ci_") and call.container_id.startswith("cntr_")
    assert call.code.startswith("import matplotlib")
    assert "sum of squares: 285" in logs_of(call)
    (image,) = [o for o in call.outputs if o.type == "image"]
    assert image.url.startswith("data:image/png;base64,")
    png = base64.b64decode(image.url.split(",", 1)[1])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # The figure and the CSV are files of the container, and the answer cites them.
    listed = {f.path: f async for f in served.sdk.containers.files.list(call.container_id)}
    assert "/mnt/data/squares.csv" in listed
    figures = [p for p in listed if p.endswith(".png")]
    assert len(figures) == 1 and listed[figures[0]].source == "assistant"
    content = await served.sdk.containers.files.content.retrieve(
        listed[figures[0]].id, container_id=call.container_id
    )
    assert content.read() == png
    text = response.output[-1].content[0]
    cited = [a for a in text.annotations if a.type == "container_file_citation"]
    assert {c.filename for c in cited} >= {"squares.csv"}
    for c in cited:
        assert c.container_id == call.container_id and c.file_id in {f.id for f in listed.values()}
        assert text.text[c.start_index : c.end_index].endswith(c.filename)
    stored = await served.sdk.responses.retrieve(response.id)
    assert stored.model_dump()["output"] == response.model_dump()["output"]


async def test_outputs_show_only_when_asked_for(served: Served) -> None:
    response = await served.sdk.responses.create(
        model="demo/parley", input="python print(1 + 1)", tools=[AUTO]
    )
    assert code_call(response).outputs is None
    assert (await served.sdk.responses.retrieve(response.id)).output == response.output
    again = await served.sdk.responses.retrieve(response.id, include=INCLUDE)  # type: ignore[arg-type]
    assert logs_of(code_call(again)) == "2\n"


async def test_a_container_keeps_its_variables_until_it_expires(served: Served) -> None:
    made = await served.sdk.containers.create(name="notebook")
    tool = {"type": "code_interpreter", "container": made.id}
    first = await served.sdk.responses.create(
        model="demo/parley", input="python total = 40 + 2", tools=[tool], include=INCLUDE
    )
    assert code_call(first).container_id == made.id
    second = await served.sdk.responses.create(
        model="demo/parley", input="python print(total)", tools=[tool], include=INCLUDE
    )
    assert logs_of(code_call(second)).strip() == "42"
    served.expire(made.id)
    assert (await served.sdk.containers.retrieve(made.id)).status == "expired"
    with pytest.raises(openai.BadRequestError) as refused:
        await served.sdk.responses.create(
            model="demo/parley", input="python print(total)", tools=[tool]
        )
    assert refused.value.body["param"] == "tools[0].container"  # type: ignore[index]
    # A conversation's own container is made again once expired: the variable is gone.
    auto = await served.sdk.responses.create(
        model="demo/parley", input="python kept = 'yes'", tools=[AUTO], include=INCLUDE
    )
    served.expire(code_call(auto).container_id)
    later = await served.sdk.responses.create(
        model="demo/parley",
        input="python print(kept)",
        tools=[AUTO],
        include=INCLUDE,
        previous_response_id=auto.id,
    )
    assert code_call(later).container_id != code_call(auto).container_id
    assert "NameError" in logs_of(code_call(later))


async def test_escapes_end_as_clean_errors_and_the_server_goes_on(served: Served) -> None:
    port = served.server.port
    # The host's secrets, the server's database and code, and its data directory.
    database = served.server.database_url.removeprefix("sqlite:///")
    hidden = [
        "/etc/shadow",
        "/root/.ssh",
        database,
        str(Path(parley.__file__)),
        str(served.server.workdir),
        str(Path(sys.prefix) / "pyvenv.cfg"),
    ]
    probes = {
        "network": (
            "import socket\n"
            f"for where in [('127.0.0.1', {port}), ('10.0.0.1', 80)]:\n"
            "    s = socket.socket(); s.settimeout(1)\n"
            "    try:\n"
            "        s.connect(where); print('reached', where)\n"
            "    except OSError as e:\n"
            "        print('refused', where[1], type(e).__name__)\n"
        ),
        "secrets": (
            "import os\n"
            "print(sorted(os.environ))\n"
            f"print('secret' if any('{SECRET}' in v for v in os.environ.values()) else 'clean')"
        ),
        "host": (
            "import os\n"
            f"print([os.path.exists(p) for p in {hidden!r}])\n"
            "print(len([p for p in os.listdir('/proc') if p.isdigit()]) < 10)\n"
            "try:\n"
            "    open('/usr/evil', 'w')\n"
            "except OSError as e:\n"
            "    print('read-only', e.errno)\n"
        ),
        "loop": "while True:\n    pass",
    }
    for name, code in probes.items():
        response = await served.sdk.responses.create(
            model="demo/parley", input=f"python {code}", tools=[AUTO], include=INCLUDE
        )
        assert response.status == "completed", (name, response)
        call = code_call(response)
        logs = logs_of(call)
        if name == "network":
            assert "reached" not in logs and logs.count("refused") == 2, logs
        elif name == "secrets":
            assert logs.strip().endswith("clean") and "PARLEY" not in logs, logs
        elif name == "host":
            flags = "[" + ", ".join(["False"] * len(hidden)) + "]"
            assert logs.splitlines()[:3] == [flags, "True", "read-only 30"], logs
        else:
            assert "4 s" in logs or "interrupted" in logs, logs
    health = await served.http.get(f"{served.server.base_url}/healthz")
    assert health.status_code == 200


async def test_megabytes_of_output_are_cut(served: Served) -> None:
    response = await served.sdk.responses.create(
        model="demo/parley",
        input="python print('x' * 5_000_000)",
        tools=[AUTO],
        include=INCLUDE,
    )
    logs = logs_of(code_call(response))
    assert len(logs) < 12_000 and "cut" in logs


async def test_bad_tools_are_refused_by_field(served: Served) -> None:
    other = served.server.new_user("someone")
    theirs = openai.AsyncOpenAI(
        base_url=f"{served.server.base_url}/v1", api_key=other, max_retries=0
    )
    try:
        their_container = await theirs.containers.create(name="theirs")
    finally:
        await theirs.close()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"type": "code_interpreter"}, 400, "tools[0].container"),
        ({"type": "code_interpreter", "container": 5}, 400, "tools[0].container"),
        ({"type": "code_interpreter", "container": their_container.id}, 404, "tools[0].container"),
        (
            {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "2g"}},
            400,
            "tools[0].container.memory_limit",
        ),
        (
            {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-no"]}},
            404,
            "tools[0].container.file_ids",
        ),
        (
            {
                "type": "code_interpreter",
                "container": {"type": "auto", "network_policy": {"type": "allowlist"}},
            },
            400,
            "tools[0].container.network_policy",
        ),
    ]
    for tool, status, param in cases:
        answer = await served.http.post(
            "/responses", json={"model": "demo/parley", "input": "hi", "tools": [tool]}
        )
        assert answer.status_code == status, (tool, answer.text)
        assert answer.json()["error"]["param"] == param, (tool, answer.text)
    chat = await served.http.post(
        "/chat/completions",
        json={
            "model": "demo/parley",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [AUTO],
        },
    )
    assert chat.status_code == 400


@pytest.mark.parametrize("kind", list(QUEUED))
async def test_the_call_reaches_each_provider(served: Served, kind: str) -> None:
    upstream = served.upstreams[kind]
    slot = upstream.take()
    call = Call(upstream.call_ids[0], "python", {"code": "print(6 * 7)"})
    model, _ = upstream.script(slot, CallsTurn((call,)), TextTurn())
    answer = await served.http.post(
        "/responses",
        json={"model": model, "input": "What is 6 times 7?", "tools": [AUTO], "include": INCLUDE},
    )
    assert answer.status_code == 200, answer.text
    response = answer.json()
    kinds = [i["type"] for i in response["output"] if i["type"] != "reasoning"]
    assert kinds == ["code_interpreter_call", "message"], response["output"]
    ran = response["output"][[i["type"] for i in response["output"]].index("code_interpreter_call")]
    assert ran["code"] == "print(6 * 7)" and ran["outputs"] == [{"type": "logs", "logs": "42\n"}]
    assert response["output"][-1]["content"][0]["text"] == "".join(ANSWER)
    asked, told = upstream.requests(slot)
    assert offered_names(kind, asked) == ["python"]
    ((_, result),) = results_of(kind, told)
    assert result.strip() == "42"


async def test_an_auto_container_counts_in_the_key_s_usage(served: Served) -> None:
    key = served.server.new_user("counted")
    async with httpx.AsyncClient(
        base_url=f"{served.server.base_url}/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as http:
        tool = {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "4g"}}
        made = await http.post(
            "/responses", json={"model": "demo/parley", "input": "python 1", "tools": [tool]}
        )
        assert made.status_code == 200, made.text
        deadline = time.monotonic() + 15
        while True:
            report = (await http.get("/usage", params={"group_by": "face,model"})).json()
            lines = [line for line in report["data"] if line["face"] == "containers"]
            if lines or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert [(line["model"], line["requests"]) for line in lines] == [("container/4g", 1)]


async def test_a_deleted_container_s_sandbox_is_closed_at_once(served: Served) -> None:
    made = await served.sdk.containers.create(name="short-lived")
    tool = {"type": "code_interpreter", "container": made.id}
    await served.sdk.responses.create(model="demo/parley", input="python x = 1", tools=[tool])
    assert sandboxes_of(made.id), "the container's sandbox is not running"
    await served.sdk.containers.delete(made.id)
    assert sandboxes_of(made.id) == []
    with pytest.raises(openai.NotFoundError):
        await served.sdk.responses.create(model="demo/parley", input="python x", tools=[tool])


async def test_a_resent_code_item_is_taken(served: Served) -> None:
    """A client that keeps its own history sends the call back: it is accepted, and the
    model's next call sees its output again (the demo quotes the last tool result)."""
    first = await served.sdk.responses.create(
        model="demo/parley",
        input="python print('seen again')",
        tools=[AUTO],
        include=INCLUDE,
        store=False,
    )
    history: list[Any] = [{"role": "user", "content": "python print('seen again')"}]
    history += [i.model_dump(exclude_none=True) for i in first.output if i.type != "reasoning"]
    again = await served.sdk.responses.create(model="demo/parley", input=history)
    assert again.status == "completed"
    assert "seen again" in again.output_text
    bad = [*history[:1], {"type": "code_interpreter_call", "id": "ci_1", "code": 5}]
    with pytest.raises(openai.BadRequestError) as refused:
        await served.sdk.responses.create(model="demo/parley", input=bad)
    assert refused.value.body["param"] == "input[1].code"  # type: ignore[index]


async def test_two_calls_of_one_answer_share_the_conversation_s_container(served: Served) -> None:
    upstream = served.upstreams["openai-responses"]
    slot = upstream.take()
    first, second = upstream.call_ids
    calls = (Call(first, "python", {"code": "a = 1"}), Call(second, "python", {"code": "b = 2"}))
    model, _ = upstream.script(slot, CallsTurn(calls), TextTurn())
    answer = await served.http.post(
        "/responses", json={"model": model, "input": "Set two variables.", "tools": [AUTO]}
    )
    assert answer.status_code == 200, answer.text
    ran = [i for i in answer.json()["output"] if i["type"] == "code_interpreter_call"]
    assert len(ran) == 2 and ran[0]["container_id"] == ran[1]["container_id"]


async def test_a_long_tool_round_is_compacted_in_the_middle_of_a_response(
    served: Served,
) -> None:
    """``context_management``: a call's output alone passes the threshold, so before the
    model's next call the server summarises the request and keeps the newest round only;
    the compaction shows between the call and the answer."""
    answer = await served.http.post(
        "/responses",
        json={
            "model": "demo/parley",
            "input": "python print('y' * 8000)",
            "tools": [AUTO],
            "context_management": [{"type": "compaction", "compact_threshold": 1000}],
        },
    )
    assert answer.status_code == 200, answer.text
    response = answer.json()
    kinds = [i["type"] for i in response["output"] if i["type"] != "reasoning"]
    assert kinds == ["code_interpreter_call", "compaction", "message"], kinds
    assert "yyyy" in "".join(
        p["text"] for i in response["output"] if i["type"] == "message" for p in i["content"]
    )
    again = await served.http.get(f"/responses/{response['id']}")
    assert again.json()["output"] == response["output"]
