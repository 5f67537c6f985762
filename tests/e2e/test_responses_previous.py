"""A ``previous_response_id`` that names no response of the caller is a 400 with ``param``
``previous_response_id`` and ``code`` ``previous_response_not_found``, as OpenAI and the
Open Responses specification answer it: the same for an unknown id, another user's
response and a response kept with ``store: false``, on ``/responses`` (streamed or not)
and ``/responses/compact``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.responses_helpers import create, openai_error, thread_ids

TEXT = "fake/text:3"
UNKNOWN = "run_000000000000000000000000"


def _refusal(answer: httpx.Response, response_id: str) -> dict[str, Any]:
    """The refusal, its message with the id taken out."""
    error = openai_error(answer, 400, "previous_response_id", "previous_response_not_found")
    assert response_id in error["message"], error
    return {**error, "message": error["message"].replace(response_id, "ID")}


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/responses", {"input": "on"}),
        ("/responses", {"input": "on", "stream": True}),
        ("/responses/compact", {}),
    ],
    ids=["create", "create streamed", "compact"],
)
def test_a_previous_response_id_not_the_callers_is_400(
    http: httpx.Client, other: httpx.Client, path: str, extra: dict[str, Any]
) -> None:
    theirs = create(other, model=TEXT, input="theirs")["id"]
    unkept = create(http, model=TEXT, input="unkept", store=False)["id"]
    threads = thread_ids(http)
    refusals = []
    for response_id in (UNKNOWN, theirs, unkept):
        body = {"model": TEXT, "previous_response_id": response_id, **extra}
        refusals.append(_refusal(http.post(path, json=body), response_id))
    assert refusals[0] == refusals[1] == refusals[2], refusals
    assert thread_ids(http) == threads
