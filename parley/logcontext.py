"""Which request and which run a log line belongs to.

Two context variables: ``request_id``, set by the server's access log (``server.logs``) for
the whole handling of a request, and ``run_id``, set by the engine in the task of each turn.
asyncio copies the context into every task it creates, so whatever a request or a turn
logs, even from a task of its own, carries them; ``ContextFilter`` puts them on the record.

Standard library only: the engine and the server both use it, and it imports nothing of
ours (the engine must not import the server).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

__all__ = ["ContextFilter", "request_id", "run_id"]

#: The ``X-Request-ID`` of the request being handled.
request_id: ContextVar[str | None] = ContextVar("parley_request_id", default=None)
#: The run whose turn is running.
run_id: ContextVar[str | None] = ContextVar("parley_run_id", default=None)


class ContextFilter(logging.Filter):
    """Sets ``request_id`` and ``run_id`` on every record a handler emits (``None`` outside
    a request or a turn). On the handler, not the loggers: a record the level drops is
    never made, so this costs nothing on the hot paths while logging is quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.run_id = run_id.get()
        return True
