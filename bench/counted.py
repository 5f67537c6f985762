"""``parley`` with its tasks and database jobs counted, switched by signals.

    python bench/counted.py OUT serve --port N

Counts, while switched on, each asyncio task the server's event loop creates (by the name
of its coroutine) and each job handed to the database threads (by the transaction's
function, marked ``later`` for the bookkeeping line): every one is a hand-off, a wake-up
of the loop or of a database thread. ``SIGUSR1`` starts fresh counts, ``SIGUSR2`` stops
and writes them to ``OUT`` as JSON (``{"tasks": {...}, "jobs": {...}}``). Used by
``bench/wakeups.py``.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
from profiled import run_switched


def main() -> None:
    out, args = Path(sys.argv[1]), sys.argv[2:]
    tasks: collections.Counter[str] = collections.Counter()
    jobs: collections.Counter[str] = collections.Counter()
    on = threading.Event()
    lock = threading.Lock()

    def start(_: int, __: FrameType | None) -> None:
        with lock:
            tasks.clear()
            jobs.clear()
        on.set()

    def stop(_: int, __: FrameType | None) -> None:
        on.clear()
        with lock:
            out.write_bytes(orjson.dumps({"tasks": tasks, "jobs": jobs}))

    from parley.store import db, workers

    submit = workers.Workers.submit

    def counted_submit(self: workers.Workers, fn: Any, arg: Any, **kw: Any) -> Any:
        if on.is_set():
            job = getattr(getattr(arg, "fn", None), "__qualname__", None) or fn.__qualname__
            with lock:
                jobs[job + (" later" if kw.get("later") else "")] += 1
        return submit(self, fn, arg, **kw)

    workers.Workers.submit = counted_submit  # type: ignore[method-assign]

    inline = db.Database._inline

    def counted_inline(self: db.Database, call: Any, *, later: bool) -> Any:
        future = inline(self, call, later=later)
        if future is not None and on.is_set():  # a write the event loop runs itself
            job = call.fn.__qualname__ + (" later" if later else "") + " on the loop"
            with lock:
                jobs[job] += 1
        return future

    db.Database._inline = counted_inline  # type: ignore[method-assign]

    import uvicorn.server

    startup = uvicorn.server.Server.startup

    async def counted_startup(self: uvicorn.server.Server, *a: Any, **kw: Any) -> None:
        def factory(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **options: Any
        ) -> asyncio.Task[Any]:
            if on.is_set():
                tasks[getattr(coro, "__qualname__", type(coro).__name__)] += 1
            return asyncio.Task(coro, loop=loop, **options)

        asyncio.get_running_loop().set_task_factory(factory)  # type: ignore[arg-type]
        await startup(self, *a, **kw)

    uvicorn.server.Server.startup = counted_startup  # type: ignore[method-assign]
    run_switched(start, stop, args)


if __name__ == "__main__":
    main()
