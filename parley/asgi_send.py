"""A middleware's ``send`` that only passes messages on (``PassingSend``): it may look at a
message or add to it, and awaits nothing but the ``send`` it wraps, which it names
(``inner``). Under a stack of them is the server's own ``send``: the direct write of a
turn's stream (``server.faces.kit.direct_write``) finds it there, and may step a message
through the stack at once. ``metrics_http.RequestMetrics`` and ``server.logs.AccessLog``
wrap their ``send`` so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import Message, Send

__all__ = ["PassingSend"]


class PassingSend:
    """``passing``, a middleware's send that awaits nothing but ``inner`` (once, with the
    message), as a ``send`` that says so. Calling it is calling ``passing``: the awaitable
    is its own, no step is added."""

    __slots__ = ("_passing", "inner")

    def __init__(self, inner: Send, passing: Callable[[Message], Awaitable[None]]) -> None:
        self.inner = inner
        self._passing = passing

    def __call__(self, message: Message) -> Awaitable[None]:
        return self._passing(message)
