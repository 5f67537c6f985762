"""The bound on concurrent exchanges: each streaming ``POST /api/messages/process`` holds one
of ``ExchangeSlots``' slots (and one server thread) until it ends.

    slots = ExchangeSlots(64)
    slot = slots.take()          # None: every slot is taken, answer ``busy_response``
    ... response.call_on_close(slot.release)

A slot is given back once, when the WSGI server closes the response: the exchange ended,
failed, or its browser left (the app then finishes the run unwatched, so the slot is free
once that turn is over).
"""

from __future__ import annotations

import threading

from flask import Response, jsonify

from parley.web.backend import Problem

__all__ = [
    "BUSY_RETRY_AFTER",
    "DEFAULT_MAX_EXCHANGES",
    "SLOTS",
    "ExchangeSlots",
    "Slot",
    "busy_problem",
    "busy_response",
]

#: Where the app keeps its ``ExchangeSlots``: ``app.extensions[SLOTS]``.
SLOTS = "parley_web.exchange_slots"
#: Exchanges streaming at once unless configured (``--max-exchanges``).
DEFAULT_MAX_EXCHANGES = 64
#: Seconds a busy answer asks the browser to wait (``Retry-After``).
BUSY_RETRY_AFTER = 5


class Slot:
    """One taken slot; ``release`` gives it back (again: no effect)."""

    def __init__(self, slots: ExchangeSlots) -> None:
        self._slots: ExchangeSlots | None = slots

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots._give_back()


class ExchangeSlots:
    """At most ``limit`` exchanges at once; safe to use from many request threads."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the bound on concurrent exchanges must be at least 1")
        self.limit = limit
        self._in_use = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._in_use

    def take(self) -> Slot | None:
        """A slot, or None at once when all are taken."""
        with self._lock:
            if self._in_use >= self.limit:
                return None
            self._in_use += 1
        return Slot(self)

    def _give_back(self) -> None:
        with self._lock:
            self._in_use -= 1


def busy_problem(limit: int) -> Problem:
    noun = "chat is" if limit == 1 else "chats are"
    return Problem(
        503, "busy", f"The server is busy: {limit} {noun} streaming; try again in a moment."
    )


def busy_response(limit: int) -> Response:
    """The answer to an exchange over the bound: 503, ``Retry-After`` and the JSON error the
    page shows (``{"error": {"type": "busy", "message": ...}}``)."""
    problem = busy_problem(limit)
    response = jsonify(problem.body())
    response.status_code = problem.status
    response.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
    return response
