"""Build the app's routes before the first requests need them, off the event loop.

FastAPI (0.16x) builds an included router's routes lazily: the first request that reaches
a router analyses the signatures and models of every route in it (about 0.25 s of CPU for
all of Parley's, on a quiet machine). On the event loop that held every other request; on a
loaded machine the first request of a router stalled the loop for over a second. The
server's start-up runs ``build_routes`` on a thread instead (once a start, a quarter of a
second of CPU beside the loop). A request that reaches a router while the thread builds it
waits for what is left of that router's build (FastAPI's own lock, taken on the loop): no
longer than it would have taken to build it itself. A FastAPI that builds its routes as
they are included has nothing here to build: ``build_routes`` then returns 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, routing

#: FastAPI's wrapper of an included router, where it keeps the routes it built (absent from
#: the FastAPIs that build their routes as they are included).
_INCLUDED: Any = getattr(routing, "_IncludedRouter", None)


def build_routes(app: FastAPI) -> int:
    """Build every lazily built route of ``app`` (each is built once: again, or after a
    request built it, this only counts it); the number of such routes, 0 when FastAPI
    builds none lazily."""
    if _INCLUDED is None:
        return 0
    return _build(app.router.routes)


def _build(routes: Iterable[Any]) -> int:
    built = 0
    for route in routes:
        if isinstance(route, _INCLUDED):
            candidates = route.effective_candidates()
            built += sum(1 for c in candidates if not isinstance(c, _INCLUDED))
            built += _build(candidates)
            route.effective_low_priority_routes()
            time.sleep(0)  # let the loop's thread have the interpreter between routers
    return built
