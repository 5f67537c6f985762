"""``server.logs.Redact``: a line that quotes a credential reaches the log without it
(the net under ``logs.protect``, which keeps the libraries' debug lines out)."""

from __future__ import annotations

import io
import logging

import pytest

from parley.server.logs import Redact, redact

KEY = "pk_Y8gRRnlc02g7-t-8BoRMBOeSS7wQkdkriOu9KYuGbHQ"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (f"< authorization: Bearer {KEY}", "< authorization: Bearer ***"),
        ("< Authorization: bearer abc.def-ghi", "< Authorization: bearer ***"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
        (f"< x-api-key: {KEY}", "< x-api-key: ***"),
        (f"{{'X-API-Key': '{KEY}'}}", "{'X-API-Key': '***'}"),
        (f"key={KEY} and sk-proj-abcdefgh12", "key=pk_*** and sk-***"),
        ("GET /v1/assistants 200 1.2ms 15B 127.0.0.1:5 user_1", None),
    ],
)
def test_credentials_are_hidden(line: str, shown: str | None) -> None:
    assert redact(line) == (line if shown is None else shown)


def test_a_handler_with_redact_writes_no_key() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(Redact())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("header %s: %s", "authorization", f"Bearer {KEY}")
        logger.warning("bad format %s %s", "one")  # left to the handler's own error path
    finally:
        logger.removeHandler(handler)
    assert out.getvalue().splitlines()[0] == "header authorization: Bearer ***"
    assert KEY not in out.getvalue()


def test_a_traceback_is_scrubbed_too() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(Redact())
    logger = logging.getLogger("tests.redaction.traceback")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(f"refused https://example.invalid/v1?key=AIzaSecret0 with {KEY}")
        except ValueError:
            logger.exception("the call failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "Traceback" in text and "?key=*** with pk_***" in text, text
    assert KEY not in text and "AIzaSecret0" not in text
