"""The containers this replica runs code in: the bridge between the containers the database
keeps (``store.containers``: their rows and their files, whose bytes are in the file storage
every replica reaches) and the sandboxes that run their Python here (``parley.sandbox``).

A container's Python lives on one replica at a time, its *home* (``containers.home``). A
call reaching a replica that is not the container's home starts the container again there:
its files are written from the file storage into a fresh ``/mnt/data``, a new Python starts,
and the replica becomes the home; the old home, at its next call, sees it is no longer the
home and starts again likewise. The files carry over; the variables of the Python that ran
elsewhere do not (the call says so: ``Result.restarted``).

Before each call the container's files are brought up to date with the database (a file added
or deleted through ``/v1/containers/{id}/files`` since), and after it the files the code
wrote or changed are stored (source ``assistant``) and those it deleted are forgotten.
Kernels whose container expired (its time without use, through a call or its files, ran
out), was deleted, or moved to another replica are closed by ``reap``; at start, sandboxes a dead server left running are killed
(``sandbox.pidfiles.sweep_orphans``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from parley.config import Settings
from parley.engine.hosted.container_files import (
    DATA,
    INCOMING,
    INCOMING_STALE,
    ContainerFiles,
    Live,
    once,
    relative,
)
from parley.engine.hosted.sandbox_calls import (
    Interpreter,
    Removed,
    Result,
    Skipped,
    Written,
    shown,
)
from parley.engine.usage import UsageCounter
from parley.errors import InvalidRequest, NotFound, ParleyError
from parley.files.storage import Storages
from parley.metrics import Metrics
from parley.store import containers as store
from parley.store.db import Database, new_id
from parley.store.files import StoredBytes
from parley.types import Usage

if TYPE_CHECKING:
    from parley.sandbox.files import Entry
    from parley.sandbox.replies import Outcome
    from parley.store.records import Container

log = logging.getLogger("parley.engine.containers")

#: The usage face of the containers made (docs/usage.md), the same as the containers API's.
USAGE_FACE = "containers"
#: Seconds between rounds of ``reap``.
REAP_SECONDS = 30.0


class Containers:
    """This replica's containers' sandboxes."""

    def __init__(self, db: Database, settings: Settings, metrics: Metrics) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        self.storages = Storages(settings, db)
        #: This process, as the ``home`` of the containers it runs (a restarted server is
        #: another home: its kernels are gone).
        self.node = new_id("node")
        self.root = settings.containers_directory()
        self.files = ContainerFiles(db, settings, self.storages, self.root)
        self.live: dict[str, Live] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._thread_locks: dict[str, asyncio.Lock] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._swept = False
        self._user: tuple[int | None] | None = None  # sandbox_user, once worked out
        #: Counts the containers a tool makes against the API key of the turn's request
        #: (the engine's, set by it), as ``POST /v1/containers`` counts its own.
        self.usage: UsageCounter | None = None

    async def start(self) -> None:
        """Kill the sandboxes an earlier life of this server left running (its pid files
        under the containers' directory), before any container starts here."""
        if self._swept:
            return
        self._swept = True
        from parley.sandbox.pidfiles import sweep_orphans

        try:
            killed = await asyncio.to_thread(sweep_orphans, self.root)
        except OSError:
            log.warning("could not look for sandboxes left running", exc_info=True)
            return
        if killed:
            log.warning("killed %d sandboxes a stopped server left running", killed)
        await asyncio.to_thread(_clear_stale, self.root / INCOMING, INCOMING_STALE)

    # ------------------------------------------------------------------ availability

    def unavailable(self) -> str | None:
        """Why this server cannot run the code interpreter (None: it can)."""
        from parley.sandbox.probe import code_interpreter_unavailable

        return code_interpreter_unavailable(self.settings)

    def sandbox_user(self) -> int | None:
        """The host uid this server's sandboxes run as (None: the server's own); worked out
        once (``sandbox.probe.sandbox_user``)."""
        if self._user is None:
            from parley.sandbox.probe import sandbox_user

            self._user = (sandbox_user(self.settings)[0],)
        return self._user[0]

    # ---------------------------------------------------------------------- resolve

    async def container_for(
        self,
        interpreter: Interpreter,
        *,
        user_id: str,
        thread_id: str,
        key_hash: str | None,
    ) -> Container:
        """The container a call runs in: the one the entry names (404 when it is not the
        user's; 400 when it expired), else the thread's auto container while it runs, else a
        new one holding the entry's files."""
        if interpreter.container_id is not None:
            found = await self.db.read(
                store.get_container, user_id=user_id, container_id=interpreter.container_id
            )
            if found.status != "running":
                raise InvalidRequest(
                    f"The container {found.id} has expired: make a new one.",
                    code="container_expired",
                )
            return found
        # Two calls of one answer find or make one container between them.
        if len(self._thread_locks) > 1024:
            self._thread_locks = {k: v for k, v in self._thread_locks.items() if v.locked()}
        async with self._thread_locks.setdefault(thread_id, asyncio.Lock()):
            return await self._thread_container(interpreter, user_id, thread_id, key_hash)

    async def _thread_container(
        self, interpreter: Interpreter, user_id: str, thread_id: str, key_hash: str | None
    ) -> Container:
        kept = await self.db.read(store.thread_container, user_id=user_id, thread_id=thread_id)
        if kept is not None:
            if interpreter.file_ids:  # files given since it was made (a message's attachments)
                await self._copy_in(kept, interpreter.file_ids)
            return kept
        made = await self.db.write(
            store.create_container,
            user_id=user_id,
            name=f"auto {thread_id}",
            memory_limit=interpreter.memory_limit or self.settings.code_interpreter_memory_limit,
            expires_after_minutes=self.settings.code_interpreter_idle_minutes,
            origin="auto",
            thread_id=thread_id,
            key_hash=key_hash,
            most=self.settings.code_interpreter_max_containers,
        )
        self.metrics.container_made()
        if self.usage is not None and key_hash is not None:
            self.usage.count(
                user_id=user_id,
                key_hash=key_hash,
                model=f"container/{made.memory_limit}",
                face=USAGE_FACE,
                used=Usage(),
            )
        await self._copy_in(made, interpreter.file_ids)
        return made

    async def _copy_in(self, container: Container, file_ids: Iterable[str]) -> None:
        """Copy the user's files ``file_ids`` into ``container`` at ``/mnt/data/<name>``,
        those not there yet (a file deleted since the request was checked is passed over;
        past the container's disk, the rest are)."""
        from parley.store import files as file_store

        there = {
            f.path for f in await self.db.read(store.all_container_files, container_id=container.id)
        }
        for file_id in file_ids:
            try:
                found = await self.db.read(
                    file_store.get_file, user_id=container.user_id, file_id=file_id
                )
            except NotFound:
                continue
            path = _file_path(found.filename, found.id)
            if path in there:
                continue
            stored = await self.storages.default.put(
                self.storages.of(found.storage).read(found.storage_key)
            )
            try:
                await self.db.write(
                    store.add_container_file,
                    user_id=container.user_id,
                    container_id=container.id,
                    path=path,
                    source="user",
                    stored=stored,
                    disk_bytes=self.settings.code_interpreter_disk_bytes,
                )
            except ParleyError:
                await self.storages.default.delete([stored.key])
                break
            there.add(path)

    # -------------------------------------------------------------------------- run

    async def run(self, container: Container, code: str, *, image_files: bool = False) -> Result:
        """Run ``code`` in ``container``'s Python on this replica (started here when it is
        not), its files synced before and stored after; with ``image_files``, each figure
        kept among the user's files too (purpose ``assistants_output``)."""
        lock = self._locks.setdefault(container.id, asyncio.Lock())
        async with lock:
            result = await self._run(container, code)
        if image_files and result.images:
            result = replace(
                result, images=[await self._as_file(container, i) for i in result.images]
            )
        return result

    async def _as_file(
        self, container: Container, image: tuple[Written, bytes]
    ) -> tuple[Written, bytes]:
        """A figure kept among the user's files as well (over their quota: not kept)."""
        from parley.store import files as file_store

        written, png = image
        stored = await self.storages.default.put(once(png))
        try:
            made = await self.db.write(
                file_store.create_file,
                user_id=container.user_id,
                filename=written.filename,
                purpose="assistants_output",
                size=stored.size,
                sha256=stored.sha256,
                mime_type="image/png",
                stored=StoredBytes(stored.kind, stored.key),
                expires_after=None,
                quota=self.settings.files_user_quota_bytes,
            )
        except ParleyError:
            await self.storages.default.delete([stored.key])
            return image
        return replace(written, image_file_id=made.id), png

    async def _run(self, container: Container, code: str) -> Result:

        self._start_reaper()
        previous = await self.db.write(store.claim_home, container_id=container.id, node=self.node)
        live = self.live.get(container.id)
        restarted = False
        if live is not None and previous != self.node:
            await self._close(container.id)  # another replica ran it since: start afresh
            live = None
        if live is None:
            restarted = previous is not None
            from parley.sandbox.runtime import SandboxError

            try:
                live = await self._start(container)
            except SandboxError as exc:
                log.warning("a container's sandbox could not start: %s", exc)
                why = f"the container's sandbox could not start on the server: {exc}"
                return Result("", [], [], error=why, ended="refused")
        else:
            await self.files.sync(container, live)
        before = await asyncio.to_thread(_scan, live.directory)
        outcome = await live.kernel.run(code)
        self.metrics.sandbox_call(outcome.ended, outcome.took)
        after = await asyncio.to_thread(_scan, live.directory)
        full = await self._past_bounds(container, live, outcome)
        written: list[Written] = []
        skipped = [Skipped(DATA, "the folder could not be listed")]
        if after is not None:  # else nothing is known of what the call did to its files
            written, skipped = await self.files.store_changes(
                container, live, before or {}, after, full=full
            )
        images, not_kept = await self.files.store_images(container, live, outcome.images)
        removed = await self._prune(live) if full else None
        return Result(
            logs=outcome.logs,
            images=images,
            files=written,
            error=outcome.error,
            restarted=restarted or outcome.restarted,
            took=outcome.took,
            ended=outcome.ended,
            skipped=(*skipped, *not_kept),
            removed=removed,
            limit=outcome.bound,
        )

    async def _past_bounds(self, container: Container, live: Live, outcome: Outcome) -> bool:
        """Whether the call was stopped because ``/mnt/data`` passed its bytes or its
        entries: left so, every later call would be stopped at once. A stop whose bound is
        not said, or that came of the server failing to look (``watch``), is answered by
        measuring (a failure to measure counts as over)."""
        bound = outcome.bound
        if bound in ("disk", "files"):
            return True
        if outcome.ended != "limit" or bound not in (None, "watch"):
            return False
        from parley.sandbox import files as sandbox_files
        from parley.sandbox.limits import Limits

        limits = Limits.of(self.settings, container.memory_limit)
        try:
            size, count = await asyncio.to_thread(
                sandbox_files.tally, live.directory, most=limits.disk_files + 1
            )
        except OSError:
            return True  # it cannot be measured: taken as over
        return size > limits.disk_bytes or count > limits.disk_files

    async def _prune(self, live: Live) -> Removed:
        """Remove from ``live``'s ``/mnt/data`` everything not stored (the files not in
        ``live.synced``, and the folders that then hold none), so the container is back
        within its bounds and its next call can run."""
        from parley.sandbox import files as sandbox_files

        keep = {relative(p) for p in live.synced}
        count, paths = await asyncio.to_thread(sandbox_files.prune, live.directory, keep)
        if count:
            log.info("removed %d entries past a container's bounds from its /mnt/data", count)
        return Removed(count, tuple(shown(DATA + p) for p in paths))

    async def _start(self, container: Container) -> Live:
        from parley.sandbox.limits import Limits
        from parley.sandbox.probe import sandbox_python
        from parley.sandbox.runtime import Kernel

        await self.start()
        user = await asyncio.to_thread(self.sandbox_user)
        directory = self.root / container.id
        await asyncio.to_thread(_empty, directory, user)
        live_files = await self.db.read(store.all_container_files, container_id=container.id)
        synced = {}
        for found in live_files:
            await self.files.fetch(found.storage, found.storage_key, directory, found.path)
            synced[found.path] = found.storage_key
        limits = Limits.of(self.settings, container.memory_limit)
        kernel = await Kernel.start(
            directory=directory,
            limits=limits,
            python=sandbox_python(self.settings),
            label=container.id,
            cgroup=self.settings.code_interpreter_cgroup != "off",
            require_cgroup=self.settings.code_interpreter_cgroup == "require",
            user=user,
        )
        live = Live(kernel, directory, synced)
        self.live[container.id] = live
        self.metrics.containers_alive(len(self.live))
        return live

    # ------------------------------------------------------------------------ upkeep

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        while self.live:
            await asyncio.sleep(REAP_SECONDS)
            try:
                await self.reap()
            except Exception:
                log.exception("closing expired containers' sandboxes failed; retrying")

    async def reap(self) -> int:
        """Close the kernels whose container expired, was deleted, or moved to another
        replica (the database says; a container kept in use through its files keeps its
        kernel). Returns how many closed."""
        ids = list(self.live)
        states = await self.db.read(store.container_states, container_ids=ids)
        closed = 0
        for cid in ids:
            if cid not in self.live or self._locks.get(cid, asyncio.Lock()).locked():
                continue
            state = states.get(cid)
            if state is None or state[0] != "running" or state[1] != self.node:
                await self._close(cid, remove=state is None or state[0] != "running")
                closed += 1
        return closed

    async def _close(self, container_id: str, *, remove: bool = False) -> None:
        live = self.live.pop(container_id, None)
        lock = self._locks.get(container_id)
        if lock is not None and not lock.locked():
            del self._locks[container_id]
        if live is None:
            return
        await live.kernel.close()
        if remove:
            await asyncio.to_thread(shutil.rmtree, live.directory, True)
        self.metrics.containers_alive(len(self.live))

    async def forget(self, container_id: str) -> None:
        """Close ``container_id``'s kernel here, and remove its directory (it was deleted)."""
        await self._close(container_id, remove=True)

    async def aclose(self) -> None:
        """Close every kernel (the engine stops)."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for cid in list(self.live):
            await self._close(cid)


def _scan(directory: Path) -> dict[str, Entry] | None:
    """``sandbox.files.scan``, tried again when a folder moved under the walk; None when
    no listing can be made (the code keeps moving folders, or locked one). Before a call,
    every file listed after it is then taken as changed; after it, nothing is stored or
    forgotten."""
    from parley.sandbox import files as sandbox_files

    for _ in range(3):
        try:
            return sandbox_files.scan(directory)
        except OSError:
            continue
    log.warning("a container's /mnt/data could not be listed")
    return None


def _clear_stale(folder: Path, older_than: float) -> None:
    """Remove the files of ``folder`` older than ``older_than`` seconds (those a server
    that died while writing them left)."""
    cutoff = time.time() - older_than
    try:
        with os.scandir(folder) as listed:
            entries = list(listed)
    except FileNotFoundError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)


def _empty(directory: Path, user: int | None) -> None:
    """A new, empty ``directory``, owned by the sandbox's ``user`` when it has one of its
    own (what the server writes in it then takes that owner: ``sandbox.files``)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700, exist_ok=True)
    if user is not None:
        os.chown(directory, user, user)


def _file_path(filename: str | None, file_id: str) -> str:
    """Where a file given to a container goes: ``/mnt/data/`` and its base name (its id
    when the name is not one a container can keep)."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return store.file_path(base)
    except ParleyError:
        return store.file_path(file_id)
