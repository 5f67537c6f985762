"""One sandboxed Python per container ("kernel"), kept alive between calls like a notebook's.

``Kernel.start`` runs ``kernel.py`` with the sandbox's Python inside bubblewrap
(``parley.sandbox.command``: every namespace new, nothing of the server's environment,
only /mnt/data and small tmpfs writable), in a cgroup of its own where the host delegates
one (``parley.sandbox.cgroups``: its memory and processes bounded as a whole), with the
limits the kernel sets on itself before any code of the user runs. ``Kernel.run`` sends it
a cell and waits for the answer, while a watch (``parley.sandbox.watch``) looks at the
call's wall clock, the directory's size, the sandbox's processes and, without a cgroup,
their memory. Between calls the code's processes are stopped (SIGSTOP): nothing the code
left running goes on unwatched.

Everything that comes out of the sandbox is untrusted: replies are length-framed JSON read
with a hard size cap on a pipe of their own, checked field by field, and taken only when
they name the call they answer; anything else and the sandbox is killed ("crashed"). The
kernel's own stdout is /dev/null and its stderr a pipe the host drains, keeping only a
short tail (for the reason of a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from parley.sandbox import bounds, cgroups, procs, seccomp
from parley.sandbox.command import (
    SPAWN_ENVIRONMENT,
    command,
    holding,
    kernel_script,
    launch,
)
from parley.sandbox.limits import Limits, size_text
from parley.sandbox.pidfiles import write_pid_file
from parley.sandbox.probe import bwrap_path, denies_userns
from parley.sandbox.replies import IMAGE_BYTES, IMAGES, Ended, Malformed, Outcome, outcome_of
from parley.sandbox.watch import Breach, Watch

log = logging.getLogger("parley.sandbox")

#: Seconds a kernel has to start, and to stop after the SIGINT of a call past its time.
START_TIMEOUT = 20.0
INTERRUPT_GRACE = 2.0
#: Bytes of the kernel's stderr kept (its last words, when it dies).
STDERR_TAIL = 4096

_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,200}")

_CLOSED = "the container's Python was stopped: the container was closed"


class SandboxError(Exception):
    """A sandbox could not be started (bubblewrap refused, the Python would not run)."""


class Kernel:
    """A container's sandboxed Python. Start it with ``Kernel.start``."""

    def __init__(
        self,
        *,
        directory: Path,
        limits: Limits,
        python: Path,
        label: str,
        cgroup: bool = True,
        require_cgroup: bool = False,
        user: int | None = None,
    ) -> None:
        if not _LABEL.fullmatch(label):
            raise ValueError("a kernel's label is letters, digits, '_', '.' and '-'")
        self.directory = directory
        self.limits = limits
        self.python = python
        self.label = label
        #: Whether to bound the sandbox with a cgroup where one can be made (else the
        #: watch sums its processes' memory).
        self.cgroup = cgroup
        #: Whether a sandbox without its cgroup may not run at all (SandboxError).
        self.require_cgroup = require_cgroup
        #: The host uid (and gid) the sandbox runs as (a server run as root: see
        #: ``probe.sandbox_user``); None: the server's own.
        self.user = user
        self._lock = asyncio.Lock()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._read_transport: asyncio.ReadTransport | None = None
        self._drain: asyncio.Task[None] | None = None
        self._tail = b""
        #: bwrap's init inside the sandbox (pid 1 there), and the kernel's Python.
        self._init: int | None = None
        self._inner: int | None = None
        self._group: cgroups.Group | None = None
        self._oom_kills = 0
        self._death_told = True
        self._killed = False
        self._closed = False
        self._pid_file = directory.parent / ".pids" / f"{label}.pid"

    @classmethod
    async def start(
        cls,
        *,
        directory: Path,
        limits: Limits,
        python: Path,
        label: str,
        cgroup: bool = True,
        require_cgroup: bool = False,
        user: int | None = None,
    ) -> Kernel:
        """Start the sandboxed kernel with ``directory`` (a host directory, created if
        missing, mode 0700) bound read-write at /mnt/data. ``label`` (the container id) is
        written into a pid file so orphans can be found after a crash. ``cgroup``: bound it
        with a cgroup where this server can make one (``require_cgroup``: or not at all).
        ``user``: the host uid it runs as (the server's own by default). SandboxError when
        it cannot start."""
        kernel = cls(
            directory=directory,
            limits=limits,
            python=python,
            label=label,
            cgroup=cgroup,
            require_cgroup=require_cgroup,
            user=user,
        )
        await kernel._spawn()
        return kernel

    @property
    def alive(self) -> bool:
        process = self._process
        return process is not None and process.returncode is None and procs.running(process.pid)

    @property
    def pid(self) -> int | None:
        """The host pid of the sandbox's outer bwrap (its process group's leader)."""
        return self._process.pid if self._process is not None else None

    @property
    def bounded_by(self) -> Literal["cgroup", "watch"]:
        """What bounds the sandbox's memory as a whole: its cgroup, or the watch."""
        return "cgroup" if self._group is not None else "watch"

    def memory_bytes(self) -> int:
        """RSS of the sandbox's processes (from /proc), in bytes."""
        return sum(procs.rss(pid) for pid in self.processes())

    def processes(self) -> list[int]:
        """Host pids of the sandbox's processes (bwrap's included)."""
        if not self.alive or self.pid is None:
            return []
        return [self.pid, *procs.descendants(self.pid)]

    async def close(self) -> None:
        """Kill the whole sandbox (its process group), wait, remove the pid file. A call
        running meanwhile ends at once ("crashed", saying the container was closed); a
        closed kernel runs nothing more."""
        self._closed = True
        if self.alive and self.pid is not None:
            procs.kill_tree(self.pid)  # now, not after the call that may be running
        async with self._lock:
            await self._kill()
            with contextlib.suppress(FileNotFoundError):
                self._pid_file.unlink()

    async def run(self, code: str) -> Outcome:
        """Run ``code`` in the kernel's namespace (as a notebook cell: the value of a final
        bare expression is printed as repr). One call at a time. If the kernel died since
        the last call, start it again first (restarted=True). Never raises for anything the
        code does."""
        async with self._lock:
            started = time.monotonic()
            restarted = False
            if self._closed:
                return Outcome("", _CLOSED, [], "crashed", True, 0.0)
            if not self.alive:
                await self._kill()
                restarted = not self._death_told
                try:
                    await self._spawn()
                except SandboxError as exc:
                    return Outcome("", str(exc), [], "crashed", True, time.monotonic() - started)
            outcome = await self._call(code)
            if outcome.restarted:
                self._death_told = True
            return replace(
                outcome,
                restarted=outcome.restarted or restarted,
                took=time.monotonic() - started,
            )

    # ------------------------------------------------------------------ starting

    async def _spawn(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
            if self.user is not None:
                os.chown(self.directory, self.user, self.user)
            bwrap = bwrap_path()
        except OSError as exc:
            raise SandboxError(f"the sandbox cannot start: {exc}") from None
        denies = await asyncio.to_thread(denies_userns, bwrap)  # tried once a process
        bounds, why = await asyncio.to_thread(cgroups.support) if self.cgroup else (None, "")
        if bounds is None and self.require_cgroup:
            raise SandboxError(f"the sandbox needs a cgroup and none can be made: {why}")
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        given: list[int] = []  # the pipes bwrap reads as it makes the sandbox
        loop = asyncio.get_running_loop()
        try:
            given.append(holding(kernel_script()))
            seccomp_fd = None
            if (filter_ := seccomp.program()) is not None:
                seccomp_fd = holding(filter_)
                given.append(seccomp_fd)
            args = command(
                bwrap=bwrap,
                python=self.python,
                directory=self.directory,
                limits=self.limits,
                fds=(request_r, reply_w),
                kernel_fd=given[0],
                disable_userns=denies,
                seccomp_fd=seccomp_fd,
            )
            argv, args_fd = launch(args)
            given.append(args_fd)
            # From the event loop's thread: bwrap's --die-with-parent follows the thread
            # that made the process.
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(request_r, reply_w, *given),
                start_new_session=True,
                env=SPAWN_ENVIRONMENT,
                **_as_user(self.user),
            )
        except BaseException:
            for fd in (request_r, request_w, reply_r, reply_w, *given):
                os.close(fd)
            raise
        for fd in (request_r, reply_w, *given):
            os.close(fd)
        self._killed = False
        self._tail = b""
        self._reader = asyncio.StreamReader(limit=1 << 16)
        protocol = asyncio.StreamReaderProtocol(self._reader)
        self._read_transport, _ = await loop.connect_read_pipe(
            lambda: protocol, os.fdopen(reply_r, "rb", buffering=0)
        )
        transport, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(request_w, "wb", buffering=0)
        )
        self._writer = transport
        assert self._process.stderr is not None
        self._drain = asyncio.ensure_future(self._drain_stderr(self._process.stderr))
        try:
            ready = await asyncio.wait_for(self._receive(1024), START_TIMEOUT)
            if ready != {"ready": True}:
                raise Malformed("not ready")
        except (TimeoutError, Malformed, asyncio.IncompleteReadError, ValueError):
            await self._kill()
            said = self._tail.decode("utf-8", "replace").strip()
            why = f": {said.splitlines()[-1]}" if said else ""
            raise SandboxError(f"the sandbox's Python did not start{why}") from None
        # No code of the user's has run yet: the tree is bwrap's, its init's and the kernel's.
        tree = procs.descendants(self._process.pid)
        self._init = tree[0] if tree else None
        self._inner = next((p for p in tree if procs.comm(p) != "bwrap"), None)
        if bounds is not None:
            failed = await asyncio.to_thread(self._enter_group, bounds, [self._process.pid, *tree])
            if failed is not None and self.require_cgroup:
                await self._kill()
                raise SandboxError(f"the sandbox's cgroup could not be made: {failed}")
            if failed is not None:
                log.warning("a sandbox runs without its cgroup (%s): the watch bounds it", failed)
        self._death_told = False
        write_pid_file(
            self._pid_file, pid=self._process.pid, label=self.label, directory=self.directory
        )

    def _enter_group(self, bounds: cgroups.Support, pids: list[int]) -> str | None:
        """Move the sandbox into a cgroup of its own; why not, when it could not be."""
        made = cgroups.Group.make(
            bounds,
            memory_bytes=self.limits.memory_bytes,
            processes=self.limits.processes + 1,  # bwrap's own too
        )
        if isinstance(made, str):
            return made
        if not made.add(pids):
            made.remove()
            return "the sandbox's processes could not be moved into it"
        self._group = made
        self._oom_kills = made.oom_kills()
        return None

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(1 << 16):
            self._tail = (self._tail + chunk)[-STDERR_TAIL:]

    # ------------------------------------------------------------------ a call

    async def _call(self, code: str) -> Outcome:
        limits = self.limits
        self.resume_code()
        # Processes left at their bound since the last call (the files are measured
        # during the call and as it ends: a scan of a large /mnt/data is the slow part).
        breach = self.look_at_processes()
        if breach is not None:
            await self._kill()
            return self._lost("limit", breach, subject=False)
        assert self._writer is not None
        token = secrets.token_hex(8)
        body = json.dumps({"code": code, "call": token}).encode("utf-8", "surrogatepass")
        self._writer.write(struct.pack(">I", len(body)) + body)
        # Logs and error text, each at most output_bytes, JSON-escaped (up to 6 bytes for
        # one), the images in base64, and room for the rest.
        cap = 12 * limits.output_bytes + IMAGES * (IMAGE_BYTES * 4 // 3 + 8) + (1 << 20)
        reply = asyncio.ensure_future(self._reply(token, cap))
        watch = Watch(self)
        try:
            return await self._await_reply(reply, watch)
        except asyncio.CancelledError:
            # The caller gave up: the kernel's reply would answer the next call instead.
            # Killed now; the next call starts it again and says so.
            if self.pid is not None:
                procs.kill_tree(self.pid)
            raise
        finally:
            watch.end()
            if not reply.done():
                reply.cancel()
            elif not reply.cancelled():
                reply.exception()  # retrieved: it was read, or the sandbox is gone

    async def _await_reply(self, reply: asyncio.Future[Any], watch: Watch) -> Outcome:
        limits = self.limits
        interrupted = False
        found = watch.found
        done, _ = await asyncio.wait(
            {reply, found}, timeout=limits.call_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if not done:
            interrupted = self._interrupt()
            done, _ = await asyncio.wait(
                {reply, found}, timeout=INTERRUPT_GRACE, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                await self._kill()
                return self._lost("timeout", Breach("time", self._late()), subject=False)
        # The watch's verdict first: when it killed the sandbox, a reply that came in the
        # meantime is not the call's outcome. Then what the call left behind, and the
        # code's processes stopped until the next call.
        breach = watch.end() or await asyncio.to_thread(self._after_call)
        if breach is not None:
            await self._kill()
            return self._lost("limit", breach, subject=False)
        try:
            return outcome_of(reply.result(), self.limits, interrupted=interrupted)
        except (asyncio.IncompleteReadError, ConnectionError):
            return await self._died()
        except (Malformed, ValueError):
            await self._kill()
            return self._lost("crashed", "the sandbox sent a malformed reply", subject=False)

    def _after_call(self) -> Breach | None:
        """A last look at the bounds as the call ends, then the code's processes paused;
        a breach (a failure to look is one) when the sandbox must stop instead."""
        try:
            breach = self.look_at_files()[0] or self.look_at_memory() or self.look_at_processes()
        except OSError as exc:
            return Breach("watch", f"the server could not check the container's bounds ({exc})")
        return breach or self.pause_code()

    def _interrupt(self) -> bool:
        if self._inner is None:
            return False
        with contextlib.suppress(OSError):
            os.kill(self._inner, signal.SIGINT)
            return True
        return False

    def _late(self) -> str:
        return (
            f"the call ran past its {self.limits.call_timeout:g} s limit and did not stop "
            "when interrupted"
        )

    async def _died(self) -> Outcome:
        """The kernel ended during the call: why, as far as the host can tell."""
        process = self._process
        assert process is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 5)
        if self._drain is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._drain), 1)
        status = process.returncode
        said = self._tail.decode("utf-8", "replace")
        killed_for_memory = self._oom_breach()
        await self._kill()
        if self._closed:
            return Outcome("", _CLOSED, [], "crashed", True, 0.0)
        if status == 128 + signal.SIGXCPU:
            cpu = self.limits.cpu_seconds
            why = f"the container's Python used more than its {cpu} s of CPU"
            return self._lost("limit", Breach("cpu", why))
        if killed_for_memory is not None:
            return self._lost("limit", killed_for_memory, subject=False)
        if "MemoryError" in said or "Cannot allocate memory" in said:
            size = size_text(self.limits.memory_bytes)
            why = f"the container's Python used more than its {size} memory"
            return self._lost("limit", Breach("memory", why))
        if status is not None and status > 128:
            how = f"was killed by signal {status - 128}"
        else:
            how = f"exited with status {status}"
        return self._lost("crashed", f"the container's Python stopped ({how})")

    def _lost(self, ended: Ended, why: str | Breach, *, subject: bool = True) -> Outcome:
        """The sandbox is gone: ``why`` is said of the container's Python (``subject``) or
        of the call; a breach names the bound the call met."""
        bound = why.bound if isinstance(why, Breach) else None
        text = why.why if isinstance(why, Breach) else why
        if subject:
            error = f"{text} and was restarted: its variables are lost"
        else:
            error = f"{text}: the container's Python was restarted and its variables are lost"
        return Outcome("", error, [], ended, True, 0.0, bound if bound != "watch" else None)

    # ------------------------------------------------------------------ the watch's looks

    @property
    def disk_room(self) -> int:
        return self.limits.disk_bytes

    def look_at_files(self, every: Callable[[], bool] | None = None) -> tuple[Breach | None, int]:
        """A breach of /mnt/data's bounds, or None; and the bytes its files hold
        (``bounds.files_breach``)."""
        return bounds.files_breach(self.directory, self.limits, every)

    def look_at_processes(self) -> Breach | None:
        """A breach when the kernel's processes are at their bound (a fork bomb)."""
        return bounds.processes_breach(self.pid, self.limits)

    def look_at_memory(self) -> Breach | None:
        """A breach of the container's memory bound: with a cgroup, the OOM killer acted in
        it; without, the sandbox's processes and its tmpfs hold more than the bound."""
        if self._group is not None:
            return self._oom_breach()
        return bounds.memory_breach(self.pid, self._inner, self.limits)

    def _oom_breach(self) -> Breach | None:
        if self._group is None or self._group.oom_kills() <= self._oom_kills:
            return None
        return Breach("memory", bounds.memory_why(self.limits))

    def stop(self) -> None:
        if self.pid is not None:
            procs.kill_tree(self.pid)

    def fs_used(self) -> int | None:
        try:
            usage = os.statvfs(self.directory)
        except OSError:
            return None
        return (usage.f_blocks - usage.f_bfree) * usage.f_frsize

    # ------------------------------------------------------------------ between calls

    def pause_code(self) -> Breach | None:
        """Stop the code's processes, the kernel's included, until the next call
        (``bounds.pause``); a breach when they do not all stop."""
        return bounds.pause(self._init)

    def resume_code(self) -> None:
        """Let the code's processes run again (SIGCONT), as a call starts."""
        bounds.resume(self._init)

    # ------------------------------------------------------------------ the pipes

    async def _reply(self, token: str, most: int) -> Any:
        """The reply that names the call ``token``: frames naming another call (one the
        code wrote, or a reply left over from a call whose code wrote one of its own
        first) are read and dropped."""
        while True:
            message = await self._receive(most)
            if isinstance(message, dict) and message.get("call") == token:
                return message

    async def _receive(self, most: int) -> Any:
        """One framed message, at most ``most`` bytes of JSON."""
        assert self._reader is not None
        head = await self._reader.readexactly(4)
        (size,) = struct.unpack(">I", head)
        if size > most:
            raise Malformed("too large")
        body = await self._reader.readexactly(size)
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Malformed("not JSON") from None

    async def _kill(self) -> None:
        """Kill the sandbox, if it runs, and wait for it."""
        process = self._process
        if process is None:
            return
        self._killed = True
        if process.returncode is None:
            procs.kill_tree(process.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 10)
        if self._group is not None:
            await asyncio.to_thread(self._group.remove)
            self._group = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._drain is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 2)
            self._drain = None
        if self._read_transport is not None:
            self._read_transport.close()
            self._read_transport = None
        self._reader = None
        self._inner = None
        self._init = None


def _as_user(user: int | None) -> dict[str, Any]:
    """The subprocess options that start bwrap as ``user`` (its group too, no other)."""
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}
