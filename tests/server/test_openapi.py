"""The OpenAPI document names every answer an operation gives, in the one error shape; a
wrong method answers 405 with every method of the path in ``Allow``, and ``OPTIONS`` a 204
with them."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.config import Settings
from parley.server.app import create_app

ERROR = {"$ref": "#/components/schemas/ErrorPublic"}
OPENAI_ERROR = {"$ref": "#/components/schemas/OpenAIErrorPublic"}
#: The paths whose errors take OpenAI's shape: the OpenAI faces, Assistants v2 included.
OPENAI_PATHS = (
    "/v1/responses",
    "/v1/conversations",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/assistants",
    "/v1/threads",
    "/v1/files",
    "/v1/uploads",
    "/v1/vector_stores",
    "/v1/containers",
)
#: The operations that take an ``Idempotency-Key``.
IDEMPOTENT = {
    ("POST", "/v1/responses"),
    ("POST", "/v1/conversations"),
    ("POST", "/v1/conversations/{conversation_id}/items"),
    ("POST", "/v1/assistants"),
    ("POST", "/v1/threads"),
    ("POST", "/v1/threads/{thread_id}/messages"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/runs"),
    ("POST", "/v1/threads/runs"),
    ("POST", "/v1/threads/{thread_id}/runs"),
    ("POST", "/v1/process"),
    ("POST", "/v1/completions"),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(database_url="sqlite://")).openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_fastapi_validation_shape_is_gone(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert "HTTPValidationError" not in str(document["paths"])
    error = schemas["ErrorBody"]
    assert error["required"] == ["type", "message"]
    assert set(error["properties"]) == {"type", "message", "code", "details"}
    openai = schemas["OpenAIErrorBody"]
    assert set(openai["required"]) == {"type", "message", "param", "code"}


def test_every_error_answer_has_the_error_shape(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                openai = path.startswith(OPENAI_PATHS)
                shape = OPENAI_ERROR if openai else ERROR
                where = (method, path, status)
                assert answer["content"] == {"application/json": {"schema": shape}}, where
                own_type = answer.get("headers", {}).get("X-Parley-Error-Type")
                assert (own_type is not None and own_type["required"]) is openai, where


def test_errors_follow_from_the_shape_of_each_operation(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        statuses = set(operation["responses"])
        places = {p["in"] for p in operation.get("parameters", ())}
        keyed = (method, path) in IDEMPOTENT
        where = (method, path, sorted(statuses))
        if path.startswith("/v1/"):
            assert {"401", "429"} <= statuses, where
            assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
            retry_after = operation["responses"]["429"]["headers"]["Retry-After"]
            assert retry_after["required"] is True
        else:
            assert not {"401", "429"} & statuses, where
        if "path" in places:
            assert "404" in statuses, where
        if keyed:  # the Idempotency-Key: malformed, in use, reused
            assert {"400", "409", "422"} <= statuses, where
            for status, answer in operation["responses"].items():
                if status.startswith("2"):
                    assert answer["headers"]["Idempotent-Replayed"]["required"] is False
        if path.startswith(OPENAI_PATHS):  # OpenAI's shape: a bad body or query is a 400
            if not keyed:  # (a 422 is only a reused Idempotency-Key)
                assert "422" not in statuses, where
            if "requestBody" in operation or "query" in places:
                assert "400" in statuses, where
        elif "requestBody" in operation:
            assert {"400", "413", "422"} <= statuses, where
        elif "query" not in places:
            assert "422" not in statuses, where  # nothing to validate


def test_the_creating_operations_take_an_idempotency_key(document: dict[str, Any]) -> None:
    taking = set()
    for method, path, operation in operations(document):
        for parameter in operation.get("parameters", ()):
            if parameter["in"] == "header" and parameter["name"] == "Idempotency-Key":
                assert parameter["required"] is False
                assert parameter["schema"] == {"type": "string", "minLength": 1, "maxLength": 255}
                taking.add((method, path))
    assert taking == IDEMPOTENT


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/v1/users", {"403"}),
        ("POST", "/v1/runs", {"404", "409"}),
        ("GET", "/v1/runs", {"400", "404"}),
        ("DELETE", "/v1/threads/{thread_id}", {"409"}),
        ("POST", "/v1/messages", {"404", "409"}),
        ("POST", "/v1/completions", {"404", "409", "503"}),
        ("POST", "/v1/process", {"404", "409", "503"}),
        ("GET", "/v1/runs/{run_id}/events", {"400"}),
    ],
)
def test_errors_of_their_own(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert statuses <= set(document["paths"][path][method.lower()]["responses"])


#: The operations that answer once a model's provider has: each lists the statuses of an
#: upstream failure (``parley.errors.UPSTREAM_FAILURES``), none a 500.
UPSTREAM_CALLS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/responses/compact"),
    ("POST", "/v1/vector_stores/{vector_store_id}/search"),
]


@pytest.mark.parametrize(("method", "path"), UPSTREAM_CALLS)
def test_the_operations_that_call_a_provider_list_its_failures(
    document: dict[str, Any], method: str, path: str
) -> None:
    responses = document["paths"][path][method.lower()]["responses"]
    assert "500" not in responses
    for status in ("400", "429", "502", "504"):
        headers = responses[status]["headers"]
        assert headers["X-Should-Retry"]["required"] is False, status
        assert headers["X-Should-Retry"]["schema"]["enum"] == ["true", "false"]
        assert headers["X-Parley-Error-Type"]["required"] is True, status
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert "upstream_invalid_request" in responses["400"]["description"]
    assert "upstream_rate_limited" in responses["429"]["description"]
    assert responses["502"]["description"].startswith("`model_error`")
    assert responses["504"]["description"].startswith("`model_error`")


def test_streams_are_event_streams(document: dict[str, Any]) -> None:
    paths = document["paths"]
    events = paths["/v1/runs/{run_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    for turn in ("/v1/completions", "/v1/process"):
        content = paths[turn]["post"]["responses"]["200"]["content"]
        assert set(content) == {"text/event-stream", "application/json"}
        assert content["application/json"]["schema"] == {
            "$ref": "#/components/schemas/TurnResultPublic"
        }


def test_links_lead_from_a_resource_to_the_operations_taking_its_id(
    document: dict[str, Any],
) -> None:
    created = document["paths"]["/v1/runs"]["post"]["responses"]["201"]["links"]
    assert created["get_run_v1_runs__run_id__get"] == {
        "operationId": "get_run_v1_runs__run_id__get",
        "parameters": {"path.run_id": "$response.body#/id"},
    }
    assert created["completions_v1_completions_post"]["requestBody"]["run_id"] == (
        "$response.body#/id"
    )


def test_the_assistants_api_creations_answer_200_and_parleys_own_201(
    document: dict[str, Any],
) -> None:
    """As OpenAI's document has it for the paths Parley shares with it."""
    paths = document["paths"]
    shared = ("/v1/assistants", "/v1/threads", "/v1/threads/{thread_id}/messages")
    for path in (*shared, "/v1/threads/runs", "/v1/threads/{thread_id}/runs"):
        success = [s for s in paths[path]["post"]["responses"] if s.startswith("2")]
        assert success == ["200"], (path, success)
    for path in ("/v1/messages", "/v1/runs", "/v1/users", "/v1/api_keys"):
        success = [s for s in paths[path]["post"]["responses"] if s.startswith("2")]
        assert success == ["201"], (path, success)


def test_the_server_serves_the_document(server: Any) -> None:
    answer = httpx.get(f"{server.base_url}/openapi.json")
    assert answer.status_code == 200
    assert "ErrorPublic" in answer.json()["components"]["schemas"]


async def test_the_first_document_is_built_off_the_event_loop() -> None:
    """Building the document walks every route's models (over half a second of CPU): the
    loop goes on meanwhile, and the requests that come during the build share it."""
    app = create_app(Settings(database_url="sqlite://"))
    # As ``parley serve`` does once loaded: what is loaded leaves the collector's passes.
    # Else a full pass over this test process's heap (every test module and what earlier
    # tests kept; half a second under load) holds the interpreter during the build.
    gc.freeze()
    try:
        await _build_beside_the_loop(app)
    finally:
        gc.unfreeze()


async def _build_beside_the_loop(app: Any) -> None:
    ticks: list[float] = []

    async def ticking() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.002)

    ticker = asyncio.create_task(ticking())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://parley") as http:
        started = time.perf_counter()
        answers = await asyncio.gather(*(http.get("/openapi.json") for _ in range(3)))
        took = time.perf_counter() - started
    ticker.cancel()
    assert [a.status_code for a in answers] == [200] * 3
    assert answers[0].content == answers[1].content == answers[2].content
    assert answers[0].json() == app.openapi()
    assert len(ticks) > 10, "the loop did not run while the document was built"
    gaps = sorted(b - a for a, b in itertools.pairwise(ticks))
    # The loop woke throughout: no gap near the build's own length.
    assert gaps[-1] < took / 2, (gaps[-1], took)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/assistants/asst_x", "DELETE, GET, POST"),
        ("PATCH", "/v1/threads", "GET, POST"),
        ("DELETE", "/v1/threads/thread_x/messages", "GET, POST"),
        ("HEAD", "/v1/me", "GET"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_a_wrong_method_names_every_method_of_the_path(
    server: Any, user_key: str, method: str, path: str, allowed: str
) -> None:
    answer = httpx.request(
        method, f"{server.base_url}{path}", headers={"Authorization": f"Bearer {user_key}"}
    )
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    if method != "HEAD":
        error = {"type": "invalid_request", "message": "Method not allowed on this endpoint."}
        if path.startswith(OPENAI_PATHS):  # OpenAI's shape
            error.update(param=None, code=None)
            assert answer.headers["x-parley-error-type"] == "invalid_request"
        assert answer.json() == {"error": error}


def test_options_names_the_methods_of_the_path_without_cors(server: Any) -> None:
    # a browser's preflight, with CORS off: answered (not 405), and nothing allows the origin
    answer = httpx.options(
        f"{server.base_url}/v1/threads",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert answer.status_code == 204
    assert answer.headers["allow"] == "GET, POST, OPTIONS"
    assert not any(h.startswith("access-control-") for h in answer.headers)
    assert httpx.options(f"{server.base_url}/v1/nowhere").status_code == 404
