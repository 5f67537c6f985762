"""What the browser is told of an SDK error (``problem_of``)."""

from __future__ import annotations

import pytest

from parley.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    ParleyError,
    PayloadTooLarge,
    ValidationFailed,
)
from parley.web.backend import Problem, problem_of

BASE_URL = "http://127.0.0.1:8700"


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        # a failed validation: 422 on the server's own paths, 400 on the Assistants paths
        (ValidationFailed("Bad.", status_code=422), Problem(422, "validation_error", "Bad.")),
        (ValidationFailed("Bad.", status_code=400), Problem(422, "validation_error", "Bad.")),
        (InvalidRequest("No.", status_code=400), Problem(400, "invalid_request", "No.")),
        (PayloadTooLarge("Big.", status_code=413), Problem(413, "payload_too_large", "Big.")),
        (Conflict("Busy.", code="thread_busy"), Problem(409, "thread_busy", "Busy.")),
        (NotFound("Gone.", code="thread_not_found"), Problem(404, "not_found", "Gone.")),
    ],
)
def test_an_sdk_error_keeps_the_status_of_its_class(error: ParleyError, problem: Problem) -> None:
    assert problem_of(error, BASE_URL) == problem
