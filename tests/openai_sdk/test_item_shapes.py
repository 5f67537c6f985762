"""Every kind of item and streaming event the Responses face writes, in OpenAI's shapes: each
is validated strictly by the ``openai`` package's own pydantic models, and held to what
OpenAI does with a field that has no value.

Strict validation finds a missing required field, a wrong type or an unknown item type; it
lets a null through wherever the type says ``Optional``. OpenAI's habit is narrower, and
clients' schemas hold to it (the AI SDK refuses ``"error": null`` on an ``mcp_list_tools``):
a field the types require (``Optional[X]`` with no default: required and nullable in the
OpenAPI document) is always sent, null when empty; an optional one is left out when it has
no value, except the few OpenAI sends as null (``NULL_WHEN_EMPTY``). A field the types do
not have at all is a departure too, unless OpenAPI's schema has it (``OPENAPI_ONLY``).

The items come from a server of their own (web search needs its search service) driving the
fake upstream, the demo model, a real MCP server on loopback, a vector store and, with
bubblewrap, a real sandbox: each response created, streamed (OpenAI's event names), read
back, its input items listed, and its conversation's items listed and read one by one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

import httpx
import pytest
from openai.types.conversations import ConversationItem
from openai.types.responses import ResponseItem, ResponseOutputItem, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from parley.sandbox.probe import unavailable as sandbox_unavailable
from parley.testing.fake_search import FakeSearch
from tests.e2e.responses_helpers import check_sequence
from tests.e2e.sse import parse
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config
from tests.js_clients.test_vercel_ai_hosted import owls_store
from tests.mcp.conftest import _threaded
from tests.terminal.mcp_server import ODD_TOOLS, TOOLS, build_server, http_app
from tests.unavailable import unavailable

#: The fields the ``openai`` types make optional that OpenAI sends as null when empty, by
#: model and field: those its recorded streams show so (an ``mcp_call`` added before it
#: ran, or that ran without an approval; a file search whose results were not asked for),
#: and those OpenAPI's schema requires, nullable (``CodeInterpreterToolCall``).
NULL_WHEN_EMPTY = frozenset(
    {
        ("McpCall", "output"),
        ("McpCall", "error"),
        ("McpCall", "approval_request_id"),
        ("ResponseFileSearchToolCall", "results"),
        ("ResponseCodeInterpreterToolCall", "code"),
        ("ResponseCodeInterpreterToolCall", "outputs"),
    }
)
#: Fields OpenAPI's schema requires that the ``openai`` types leave out: the function's
#: ``name`` of ``ResponseFunctionCallArgumentsDoneEvent``, and the ``status`` of a custom
#: tool's call and output (``CustomToolCallResource``, ``CustomToolCallOutputResource``;
#: the AI SDK requires the call's too).
OPENAPI_ONLY = frozenset(
    {
        ("ResponseFunctionCallArgumentsDoneEvent", "name"),
        ("ResponseCustomToolCall", "status"),
        ("ResponseCustomToolCallOutput", "status"),
    }
)
#: Models whose fields are the response's, not an item's: only their ``output`` is walked.
OUTPUT_ONLY = frozenset({"Response"})

#: What each list of items is, in the ``openai`` package's terms (unions of models).
OUTPUT_ITEM: Any = ResponseOutputItem
STORED_ITEM: Any = ResponseItem
CONVERSATION_ITEM: Any = ConversationItem
STREAM_EVENT: Any = ResponseStreamEvent

#: Every item type the face writes, each made by at least one request below.
ITEM_TYPES = (
    "message",
    "reasoning",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "mcp_list_tools",
    "mcp_call",
    "mcp_approval_request",
    "mcp_approval_response",
    "file_search_call",
    "web_search_call",
    "code_interpreter_call",
    "compaction",
)
LABEL = "tests"
AUTO = "fake/auto:2"
DEMO = "demo/parley"
#: A tool the MCP server lists without a description (and no tool has annotations).
BARE = "odd name/with.dots"
#: The parameters of the client's function.
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@dataclass
class Seen:
    """What the server wrote: ``(where, the openai union it must be one of, JSON)``, and the
    stream events ``(where, JSON)``."""

    items: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, where: str, union: Any, items: list[dict[str, Any]]) -> None:
        self.items += [(f"{where}[{n}]", union, item) for n, item in enumerate(items)]

    def of_type(self, kind: str) -> list[tuple[str, Any, dict[str, Any]]]:
        """The items of ``kind``, and the items of that kind the events carry."""
        found = [seen for seen in self.items if seen[2].get("type") == kind]
        for where, event in self.events:
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == kind:
                found.append((f"{where} {event['type']}.item", OUTPUT_ITEM, item))
        return found


def departures(raw: Any, model: Any, where: str) -> list[str]:
    """Where ``raw`` (JSON the server wrote) departs from OpenAI's habits, walking it beside
    ``model`` (the ``openai`` model it validated as): a field the model does not have, and
    a null where OpenAI leaves the field out."""
    if isinstance(model, BaseModel) and isinstance(raw, dict):
        name = type(model).__name__
        fields = {(f.alias or key): (key, f) for key, f in type(model).model_fields.items()}
        found: list[str] = []
        for key, value in raw.items():
            if name in OUTPUT_ONLY and key != "output":
                continue
            known = fields.get(key)
            if known is None:
                if (name, key) not in OPENAPI_ONLY:
                    found.append(f"{where}.{key}: {name} has no such field")
            elif value is None:
                if not known[1].is_required() and (name, key) not in NULL_WHEN_EMPTY:
                    found.append(f"{where}.{key}: null, where OpenAI leaves it out ({name})")
            else:
                found += departures(value, getattr(model, known[0]), f"{where}.{key}")
        return found
    if isinstance(model, list) and isinstance(raw, list):
        return [
            gap
            for n, (one, typed) in enumerate(zip(raw, model, strict=True))
            for gap in departures(one, typed, f"{where}[{n}]")
        ]
    return []


def problems(where: str, union: Any, raw: dict[str, Any]) -> list[str]:
    """How ``raw`` departs from the member of the ``openai`` ``union`` of its type:
    validated strictly, then walked (``departures``)."""
    try:
        model = adapter(union, str(raw.get("type"))).validate_python(raw, strict=True)
    except ValueError as exc:  # pydantic's ValidationError
        return [f"{where}: not {raw.get('type')!r} as openai types it: {exc}"]
    return departures(raw, model, where)


@functools.cache
def adapter(union: Any, kind: str) -> TypeAdapter[Any]:
    """The validator of ``union``'s members whose ``type`` is ``kind`` (an input and an
    output message share ``message``), or of the whole union when none is: pydantic then
    tries every member, as it does not take these unions as discriminated."""
    members = get_args(get_args(union)[0] if get_origin(union) is Annotated else union)
    typed = [m for m in members if kind in type_values(m)]
    if not typed:
        return TypeAdapter(union)
    return TypeAdapter(typed[0] if len(typed) == 1 else Union[tuple(typed)])  # noqa: UP007


def type_values(member: Any) -> tuple[Any, ...]:
    """The ``type`` values a member of a union takes (none when it is not a model)."""
    typed = getattr(member, "model_fields", {}).get("type")
    return () if typed is None else get_args(typed.annotation)


# ------------------------------------------------------------------------------ the server


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """A real MCP server on loopback: the test server's tools and one without a
    description."""
    tools = [*TOOLS.values(), ODD_TOOLS[BARE]]
    with _threaded(http_app(build_server("test", tools, 1000))) as base:
        yield f"{base}/mcp"


@pytest.fixture(scope="module")
def served(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    tmp = tmp_path_factory.mktemp("item-shapes")
    db = FreshDatabase(tmp)
    env = {"PARLEY_MCP_ALLOW_URLS": "127.0.0.1", "PARLEY_ACTION_EXPIRY_SECONDS": "600"}
    with FakeSearch() as search:
        env["PARLEY_WEB_SEARCH_URL"] = search.url
        server = ParleyServer(
            database_url=db.url,
            workdir=tmp,
            config=provider_config(upstream.base_url, free_port()),
            env=env,
        ).start()
        try:
            yield server
        finally:
            code = server.stop()
            db.drop()
        server.assert_clean_log()
        assert code in (0, -15), server.log()


def mcp(url: str, approval: str, tool: str) -> dict[str, Any]:
    """The MCP server offering ``tool`` alone, under a label of its own (a conversation
    keeps a label's first list)."""
    return {
        "type": "mcp",
        "server_label": f"{LABEL}_{tool}".replace(" ", "_").replace("/", "_").replace(".", "_"),
        "server_url": url,
        "require_approval": approval,
        "allowed_tools": [tool],
    }


class Driver:
    """Requests of one user in one conversation, created or streamed (OpenAI's event
    names), each response's items collected, read back and listed as input items."""

    def __init__(self, http: httpx.Client, seen: Seen, *, streamed: bool) -> None:
        self.http, self.seen, self.streamed = http, seen, streamed
        made = http.post("/conversations", json={})
        assert made.status_code == 200, made.text
        self.conversation = str(made.json()["id"])

    def create(self, name: str, **body: Any) -> dict[str, Any]:
        body = {"conversation": self.conversation, **body}
        if self.streamed:
            name = f"{name} streamed"
            events = self.stream(body)
            self.seen.events += [(f"{name}[{n}]", e) for n, e in enumerate(events)]
            response: dict[str, Any] = events[-1]["response"]
        else:
            answer = self.http.post("/responses", json=body)
            assert answer.status_code == 200, answer.text
            response = answer.json()
        self.seen.add(f"{name} output", OUTPUT_ITEM, response["output"])
        again = self.http.get(f"/responses/{response['id']}").json()
        self.seen.add(f"{name} read back", OUTPUT_ITEM, again["output"])
        listed = self.http.get(f"/responses/{response['id']}/input_items").json()
        self.seen.add(f"{name} input_items", STORED_ITEM, listed["data"])
        return response

    def stream(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The events of a streamed response (the demo model quotes a file search's
        results, which the e2e helpers' leak check would take for a traceback)."""
        with self.http.stream("POST", "/responses", json={**body, "stream": True}) as answer:
            assert answer.status_code == 200, answer.read()
            text = answer.read().decode()
        head, done, _ = text.rpartition("data: [DONE]\n\n")
        assert done, text[-300:]
        events = [event.data for event in parse(head)]
        check_sequence(events)
        return events

    def items(self) -> None:
        """The conversation's items, listed and read one by one."""
        path = f"/conversations/{self.conversation}/items"
        listed = self.http.get(path, params={"limit": 100}).json()
        assert not listed["has_more"]
        self.seen.add("conversation items", CONVERSATION_ITEM, listed["data"])
        for item in listed["data"]:
            one = self.http.get(f"{path}/{item['id']}")
            assert one.status_code == 200, (item, one.text)
            self.seen.add(f"conversation item {item['id']}", CONVERSATION_ITEM, [one.json()])


def make_every_kind(drive: Driver, mcp_url: str, store_id: str) -> None:
    """One conversation's requests, which make every kind of item between them."""
    drive.create("reasoning", model="fake/reasoning:3", input="Think first.")
    weather = {"type": "function", "name": "get_weather", "parameters": WEATHER}
    asked = drive.create("function", model=AUTO, input="Weather?", tools=[weather])
    output = {"type": "function_call_output", "call_id": asked["output"][-1]["call_id"]}
    drive.create("function output", model=AUTO, input=[{**output, "output": "22 C"}])
    shout = {"type": "custom", "name": "shout", "description": "Shout it."}
    asked = drive.create("custom", model=AUTO, input="Shout.", tools=[shout])
    output = {"type": "custom_tool_call_output", "call_id": asked["output"][-1]["call_id"]}
    drive.create("custom output", model=AUTO, input=[{**output, "output": "HEY"}], tools=[shout])
    for tool in ("echo", "fail", BARE):
        drive.create(f"mcp {tool}", model=AUTO, input="Go.", tools=[mcp(mcp_url, "never", tool)])
    dead = {**mcp(f"http://127.0.0.1:{free_port()}/mcp", "never", "echo"), "server_label": "gone"}
    drive.create("mcp unreachable", model=AUTO, input="Go.", tools=[dead])
    always = mcp(mcp_url, "always", "echo")
    asked = drive.create("mcp approval", model=AUTO, input="Go.", tools=[always])
    approval = {"type": "mcp_approval_response", "approve": True}
    approval["approval_request_id"] = asked["output"][-1]["id"]
    drive.create("mcp approved", model=AUTO, input=[approval], tools=[always])
    search = {"type": "file_search", "vector_store_ids": [store_id]}
    found = "file_search how do owls hunt?"
    drive.create("file search", model=DEMO, input=found, tools=[search])
    results = ["file_search_call.results"]
    drive.create("file search results", model=DEMO, input=found, tools=[search], include=results)
    drive.create("web search", model=DEMO, input="web_search owls", tools=[{"type": "web_search"}])
    if sandbox_unavailable() is None:
        interpreter = {"type": "code_interpreter", "container": {"type": "auto"}}
        drive.create("code", model=DEMO, input="python print(6 * 7)", tools=[interpreter])
    drive.items()


@pytest.fixture(scope="module")
def seen(served: ParleyServer, mcp_url: str) -> Seen:
    """Every item and event of two conversations that make each kind of item: one created
    response by response, one streamed."""
    key = served.new_user("shapes")
    store_id = owls_store(served, key)
    seen = Seen()
    with served.client(key, timeout=60) as http:
        http.headers["X-Parley-Event-Names"] = "openai"  # OpenAI's reasoning event names
        for streamed in (False, True):
            make_every_kind(Driver(http, seen, streamed=streamed), mcp_url, store_id)
        compacted = http.post("/responses/compact", json={"model": DEMO, "input": "Sum it up."})
        assert compacted.status_code == 200, compacted.text
        seen.add("compact output", STORED_ITEM, compacted.json()["output"])
    return seen


# ------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("kind", ITEM_TYPES)
def test_each_kind_of_item_is_in_openais_shape(seen: Seen, kind: str) -> None:
    if kind == "code_interpreter_call" and sandbox_unavailable() is not None:
        unavailable(str(sandbox_unavailable()))
    found = seen.of_type(kind)
    assert found, f"no request made a {kind} item"
    gaps = [gap for where, union, raw in found for gap in problems(where, union, raw)]
    assert gaps == [], "\n".join(gaps)


def test_every_stream_event_is_in_openais_shape(seen: Seen) -> None:
    gaps = [gap for where, event in seen.events for gap in problems(where, STREAM_EVENT, event)]
    assert gaps == [], "\n".join(gaps)


def test_no_item_type_goes_unchecked(seen: Seen) -> None:
    """The kinds above are all the face wrote here (a new kind gets a row in the table)."""
    kinds = {raw.get("type") for _, _, raw in seen.items}
    kinds |= {e["item"]["type"] for _, e in seen.events if isinstance(e.get("item"), dict)}
    assert kinds <= set(ITEM_TYPES), kinds - set(ITEM_TYPES)


def test_a_tool_list_has_no_error_unless_it_failed(seen: Seen) -> None:
    """OpenAI leaves ``error`` out of a list that worked (the AI SDK refuses a null), and
    ``description`` and ``annotations`` out of a tool that has none."""
    lists = [(where, raw) for where, _, raw in seen.of_type("mcp_list_tools")]
    listed = [raw for _, raw in lists if raw["server_label"] != "gone" and raw["tools"]]
    failed = [
        raw for where, raw in lists if raw["server_label"] == "gone" and ".added" not in where
    ]
    assert listed and failed, lists
    for raw in listed:
        assert "error" not in raw, raw
        for tool in raw["tools"]:
            assert "annotations" not in tool, tool
    bare = [t for raw in listed for t in raw["tools"] if t["name"] == BARE]
    assert bare and all("description" not in t for t in bare), bare
    for raw in failed:
        assert isinstance(raw.get("error"), str) and raw["error"], raw
    added = [
        e["item"]
        for _, e in seen.events
        if e["type"] == "response.output_item.added" and e["item"]["type"] == "mcp_list_tools"
    ]
    assert added and all("error" not in item for item in added), added


def test_an_mcp_call_sends_its_empty_fields_as_null(seen: Seen) -> None:
    """As OpenAI's: ``output``, ``error`` and ``approval_request_id`` are there, null when
    empty; a failed call's ``error`` is the error object."""
    calls = [raw for _, _, raw in seen.of_type("mcp_call")]
    assert calls
    for raw in calls:
        assert {"output", "error", "approval_request_id"} <= set(raw), raw
    failed = [raw for raw in calls if raw["name"] == "fail" and raw["status"] == "failed"]
    assert failed and all(raw["error"]["type"] == "mcp_tool_execution_error" for raw in failed)
    approved = [raw for raw in calls if raw["approval_request_id"]]
    assert approved and all(raw["approval_request_id"].startswith("mcpr_") for raw in approved)


def test_the_checks_catch_a_null_openai_leaves_out() -> None:
    """The walker itself: a tool list with ``"error": null`` (what the face wrote before)
    departs; without it, or with an error, it does not."""
    listed = {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "s", "tools": []}
    assert problems("listed", OUTPUT_ITEM, listed) == []
    assert problems("failed", OUTPUT_ITEM, {**listed, "error": "down"}) == []
    assert problems("null", OUTPUT_ITEM, {**listed, "error": None}) == [
        "null.error: null, where OpenAI leaves it out (McpListTools)"
    ]
    tool = {"name": "t", "input_schema": {}, "annotations": None}
    assert problems("tool", OUTPUT_ITEM, {**listed, "tools": [tool]}) == [
        "tool.tools[0].annotations: null, where OpenAI leaves it out (McpListToolsTool)"
    ]
    assert problems("extra", OUTPUT_ITEM, {**listed, "status": "completed"}) == [
        "extra.status: McpListTools has no such field"
    ]
