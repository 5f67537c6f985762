"""The host's looks at a running call's bounds, on a thread of their own, which stop the
sandbox the moment one is passed.

On the event loop, a busy loop or a queue of other jobs would let a fast writer pass the
disk bound by hundreds of megabytes before the kill; here the looks keep their pace
whatever the server does. A look that fails (the files could not be walked, /proc could
not be read) stops the sandbox too: a call never runs unwatched (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from parley.sandbox.files import Interrupted

log = logging.getLogger("parley.sandbox")

#: The bound a call met: the container's memory, its processes, the bytes or the entries
#: of /mnt/data, the kernel's CPU, the call's wall clock; ``watch`` when the host could
#: not look at them.
Bound = Literal["memory", "processes", "disk", "files", "cpu", "time", "watch"]

#: How often the host looks at a call's bounds; and how soon it looks again when the files
#: grow fast toward their bound (and first, as the call starts).
EVERY = 0.05
SOONEST = 0.005
#: The longest pause between two looks, whatever a scan of the files costs.
MOST = 0.15
#: How long a call's processes stay at their bound before the watch stops the sandbox: a
#: fork bomb holds every slot for as long as it runs, while code that meets the bound for
#: a moment (and handles the fork that failed) goes on.
HELD = 0.2


@dataclass(frozen=True, slots=True)
class Breach:
    """Why a sandbox must stop now: the bound it passed, said plainly."""

    bound: Bound
    why: str


class Watched(Protocol):
    """What the watch looks at: a sandbox's files, processes and memory."""

    @property
    def disk_room(self) -> int:
        """Bytes /mnt/data may hold."""

    def look_at_files(self, every: Callable[[], bool] | None = None) -> tuple[Breach | None, int]:
        """A breach of the files' bounds, or None; and the bytes they hold. ``every`` is
        called on the way; when it answers True the look raises files.Interrupted."""

    def look_at_processes(self) -> Breach | None:
        """The processes at their bound (a breach once held for HELD), or None."""

    def look_at_memory(self) -> Breach | None:
        """A breach of the memory bound, or None."""

    def fs_used(self) -> int | None:
        """Bytes used on the whole file system that holds /mnt/data (statvfs: cheap, and
        it grows with every write there, whoever writes); None when it cannot be read."""

    def pause_code(self) -> Breach | None:
        """Stop the code's processes (a breach when they will not stop)."""

    def resume_code(self) -> None:
        """Let the code's processes run again."""

    def stop(self) -> None:
        """Kill the sandbox at once (from any thread)."""


class Watch:
    """The looks at one call. ``found`` resolves with the breach that stopped the sandbox;
    ``end`` stops the looks."""

    def __init__(self, watched: Watched) -> None:
        self._watched = watched
        self._loop = asyncio.get_running_loop()
        self.found: asyncio.Future[Breach] = self._loop.create_future()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # a kill and ``end`` one after the other
        self._breach: Breach | None = None
        threading.Thread(target=self._run, name="parley-sandbox-watch", daemon=True).start()

    def end(self) -> Breach | None:
        """Stop looking; answers the breach for which the watch killed the sandbox (None:
        it did not), for good: no kill comes after this."""
        with self._lock:
            self._stop.set()
            return self._breach

    def _run(self) -> None:
        try:
            self._looks()
        except Exception as exc:  # noqa: BLE001 (any failure to look stops the sandbox)
            log.warning("a sandbox's bounds could not be checked: %r", exc)
            why = f"the server could not check the container's bounds ({type(exc).__name__})"
            self._kill(Breach("watch", why))

    def _looks(self) -> None:
        watched = self._watched
        room = watched.disk_room
        mark = watched.fs_used()
        then, (_, before) = time.monotonic(), watched.look_at_files()
        pause = SOONEST
        crowded_since: float | None = None  # when the processes were first seen at their bound
        while (urgent := self._wait(pause, mark, room - before)) is not None:
            began = time.monotonic()
            mark = watched.fs_used()
            if urgent:
                breach, size = self._look_stopped()
            else:
                breach, size = self._look_watching(mark, room - before)
            breach = breach or watched.look_at_memory()
            # The processes at their bound stop it once they have held it for HELD.
            crowded = None if breach is not None else watched.look_at_processes()
            if crowded is None:
                crowded_since = None
            elif crowded_since is None:
                crowded_since = began
            held = 0.0 if crowded_since is None else began - crowded_since
            if crowded is not None and held >= HELD:
                breach = crowded
            if breach is not None:
                self._kill(breach)
                return
            # Look again before the files could reach the bound at the pace they grow
            # (half the time it would take), so a fast writer is caught near it; but spend
            # at most a fifth of the time scanning a large /mnt/data, and never wait more
            # than MOST.
            pause = EVERY
            if size > before:
                left = (room - size) / ((size - before) / max(began - then, 1e-6))
                pause = max(SOONEST, min(EVERY, left / 2))
            pause = min(MOST, max(pause, 4 * (time.monotonic() - began)))
            if crowded is not None:
                pause = min(pause, max(SOONEST, HELD - held))
            then, before = began, size

    def _wait(self, pause: float, mark: int | None, left: int) -> bool | None:
        """Wait ``pause`` seconds for the next look; True when it must come at once (the
        file system grew by all the room the files had left at the last look: a walk of
        many folders takes long enough for a fast writer to pass the bound between two
        looks), None when the watch ended."""
        watched = self._watched
        deadline = time.monotonic() + pause
        while (wait := deadline - time.monotonic()) > 0:
            if self._stop.wait(min(SOONEST, wait)):
                return None
            used = watched.fs_used() if mark is not None else None
            if used is not None and mark is not None and used - mark >= left:
                return True
        return None if self._stop.is_set() else False

    def _look_watching(self, mark: int | None, left: int) -> tuple[Breach | None, int]:
        """The files' look while the code runs; but should the file system grow by all the
        room the files had left while the walk goes on (a long walk of many folders, a
        fast writer), the code's processes are stopped at once and the walk starts again."""
        watched = self._watched

        def grown() -> bool:
            used = watched.fs_used() if mark is not None else None
            return used is not None and mark is not None and used - mark >= left

        try:
            return watched.look_at_files(grown)
        except Interrupted:
            return self._look_stopped()

    def _look_stopped(self) -> tuple[Breach | None, int]:
        """The files' look with the code's processes stopped, so that nothing is written
        while they are counted: the count is then the truth, however long the walk."""
        watched = self._watched
        breach = watched.pause_code()
        if breach is not None:
            return breach, 0
        breach, size = watched.look_at_files()  # raises: the sandbox is stopped (fail closed)
        if breach is None:
            with self._lock:
                if not self._stop.is_set():  # else the call ended: its processes stay stopped
                    watched.resume_code()
        return breach, size

    def _kill(self, breach: Breach) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self._breach = breach
            self._watched.stop()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._settle, breach)

    def _settle(self, breach: Breach) -> None:
        if not self.found.done():
            self.found.set_result(breach)
