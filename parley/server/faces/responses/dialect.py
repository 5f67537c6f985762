"""The dialect of a Responses stream's event names: the Open Responses specification's
(``response.reasoning.delta``) or OpenAI's (``response.reasoning_text.delta``), chosen per
request (``event_dialect``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from parley.errors import InvalidRequest

#: The request header that chooses the dialect of the stream's event names.
DIALECT_HEADER = "X-Parley-Event-Names"
Dialect = Literal["open-responses", "openai"]
#: The names of the reasoning text's delta and done events, by dialect.
REASONING_EVENTS: dict[str, tuple[str, str]] = {
    "open-responses": ("response.reasoning.delta", "response.reasoning.done"),
    "openai": ("response.reasoning_text.delta", "response.reasoning_text.done"),
}


def event_dialect(headers: Iterable[tuple[str, str]]) -> Dialect:
    """The dialect a request's headers ask for: ``X-Parley-Event-Names`` when sent, else
    ``openai`` for OpenAI's generated SDKs (``X-Stainless-*`` headers: openai-node's stream
    helper throws on a name it does not know), else ``open-responses``.

    Raises:
        InvalidRequest: ``X-Parley-Event-Names`` is neither dialect.
    """
    stainless = False
    for name, value in headers:
        name = name.lower()
        if name == DIALECT_HEADER.lower():
            chosen = value.strip().lower()
            if chosen == "openai":
                return "openai"
            if chosen == "open-responses":
                return "open-responses"
            raise InvalidRequest(
                f"{DIALECT_HEADER} must be openai or open-responses, not {value[:64]!r}.",
                code="invalid_header",
            )
        stainless = stainless or name.startswith("x-stainless-")
    return "openai" if stainless else "open-responses"
