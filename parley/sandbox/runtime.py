"""One sandboxed Python per container ("kernel"), kept alive between calls like a notebook's.

``Kernel.start`` runs ``kernel.py`` with the sandbox's Python inside bubblewrap: every
namespace new (no network: its loopback is its own, empty), the system and the interpreter
read-only, the container's directory read-write at ``/mnt/data``, a small private ``/tmp``,
a clean environment, and limits the kernel sets on itself before any code of the user runs.
``Kernel.run`` sends it a cell and waits for the answer, watching the call's wall clock, the
directory's size and (where nothing else bounds them) the sandbox's processes.

Everything that comes out of the sandbox is untrusted: replies are length-framed JSON read
with a hard size cap on a pipe of their own, checked field by field; anything else and the
sandbox is killed ("crashed"). The kernel's own stdout is /dev/null and its stderr a pipe
the host drains, keeping only a short tail (for the reason of a crash).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import functools
import json
import os
import re
import signal
import struct
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from parley.sandbox import files
from parley.sandbox.cgroups import PidsGroup
from parley.sandbox.limits import Limits, size_text
from parley.sandbox.probe import bwrap_path, denies_userns, python_roots

Ended = Literal["ok", "error", "timeout", "limit", "crashed"]

#: Figures a call may return, and the largest PNG kept.
IMAGES = 8
IMAGE_BYTES = 8 << 20
#: Seconds a kernel has to start, and to stop after the SIGINT of a call past its time.
START_TIMEOUT = 20.0
INTERRUPT_GRACE = 2.0
#: How often the host looks at the directory's size during a call; and how soon it looks
#: again when the files grow fast toward their limit (and first, as the call starts).
WATCH_EVERY = 0.05
WATCH_SOONEST = 0.005
#: The longest pause between two looks at a running call's limits, whatever a scan costs.
WATCH_MOST = 0.15
#: How long a running call's processes stay at their bound before the watch stops the
#: sandbox: a fork bomb holds every slot for as long as it runs, while code that meets
#: the bound for a moment (and handles the fork that failed) goes on.
WATCH_HELD = 0.2
#: The sandbox's private /tmp, and its /dev/shm (shared memory: multiprocessing's
#: semaphores and arrays). Both are memory, counted in the container's memory bound.
TMP_BYTES = 64 << 20
SHM_BYTES = 64 << 20
#: Bytes of the kernel's stderr kept (its last words, when it dies).
STDERR_TAIL = 4096

_KERNEL = Path(__file__).with_name("kernel.py")
_INSIDE = "/.parley/kernel.py"
_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_PNG = b"\x89PNG\r\n\x1a\n"
_ENDED = {"ok": "ok", "error": "error", "interrupted": "timeout", "memory": "limit"}
_ETC = ("/etc/ld.so.cache", "/etc/localtime")
#: What a pipe holds before a write blocks (Linux's default), and fcntl's request to make
#: it hold more.
_PIPE_ROOM = 1 << 16
_F_SETPIPE_SZ = 1031


_CLOSED = "the container's Python was stopped: the container was closed"


class SandboxError(Exception):
    """A sandbox could not be started (bubblewrap refused, the Python would not run)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    #: stdout and stderr as printed, in order, cut at output_bytes with a note.
    logs: str
    #: None when the code ran to its end; else what went wrong, plainly.
    error: str | None
    #: PNGs of the matplotlib figures the code left open (each then closed).
    images: list[bytes]
    ended: Ended
    #: The kernel process died or was killed: the variables are lost.
    restarted: bool
    #: Seconds.
    took: float


def command(
    *,
    bwrap: str,
    python: Path,
    directory: Path,
    limits: Limits,
    fds: tuple[int, int],
    kernel_fd: int,
    disable_userns: bool = True,
) -> list[str]:
    """The bwrap command line of a kernel reading requests on ``fds[0]`` and answering on
    ``fds[1]``, its script read from ``kernel_fd`` (a pipe holding kernel.py: no host path
    of the server's is bound for it). ``disable_userns``: the code may make no user
    namespace of its own (bubblewrap 0.8 and newer)."""
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        *(["--disable-userns"] if disable_userns else []),
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        # Before the Python's binds: one under /tmp (a project checked out there) is bound
        # into the new /tmp, not hidden by it.
        "--proc", "/proc",
        "--dev", "/dev",
        # bwrap's /dev/shm is a folder of /dev's tmpfs, which has no size: a bounded one.
        "--size", str(SHM_BYTES), "--perms", "1777", "--tmpfs", "/dev/shm",
        "--remount-ro", "/dev",  # its tmpfs is the sandbox user's: nothing to fill there
        "--size", str(TMP_BYTES), "--tmpfs", "/tmp",
    ]  # fmt: skip
    for root in python_roots(python):
        args += ["--ro-bind", str(root), str(root)]
    for name in _ETC:
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    bin_dir = str(python.absolute().parent)
    environment = {
        "HOME": "/mnt/data",
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp",
        "XDG_CACHE_HOME": "/tmp/.cache",  # fontconfig's cache, else in /mnt/data/.cache
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    args += [
        "--bind", str(directory), "/mnt/data",
        "--perms", "0444", "--ro-bind-data", str(kernel_fd), _INSIDE,
        "--remount-ro", "/",
        "--chdir", "/mnt/data",
        "--clearenv",
    ]  # fmt: skip
    for key, value in environment.items():
        args += ["--setenv", key, value]
    inside = {
        "memory_bytes": limits.memory_bytes,
        "cpu_seconds": limits.cpu_seconds,
        "processes": limits.processes,
        "open_files": limits.open_files,
        "file_bytes": limits.file_bytes,
        "output_bytes": limits.output_bytes,
    }
    args += ["--uid", "1000", "--gid", "1000", "--", str(python.absolute()), "-s", _INSIDE]
    return [*args, str(fds[0]), str(fds[1]), json.dumps(inside)]


def launch(args: list[str]) -> tuple[list[str], int]:
    """``args`` (a bwrap command line: options, ``--``, the command) as ``[bwrap, "--args",
    FD, "--", command...]`` and FD, a pipe that holds the options: bwrap's process inside
    the sandbox (its init, pid 1) keeps the command line it was started with, which the
    code can read in /proc/1/cmdline, and the options name the host's folders. The caller
    passes FD to bwrap and closes it after. Run it with an empty environment
    (``SPAWN_ENVIRONMENT``): /proc/1/environ is the one it was started with, whatever
    --clearenv does."""
    end = args.index("--")
    options = b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in args[1:end])
    fd = holding(options)
    return [args[0], "--args", str(fd), *args[end:]], fd


#: The environment bwrap is started with: none of the server's.
SPAWN_ENVIRONMENT: dict[str, str] = {}


def holding(data: bytes) -> int:
    """The read end of a new pipe that holds ``data`` and then its end (the write end is
    closed): for bwrap's --args and --ro-bind-data, read as the sandbox is made."""
    read, write = os.pipe()
    try:
        if len(data) > _PIPE_ROOM:
            fcntl.fcntl(write, _F_SETPIPE_SZ, len(data))
        view = memoryview(data)
        while view:
            view = view[os.write(write, view) :]
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return read


@functools.cache
def _kernel_script() -> bytes:
    return _KERNEL.read_bytes()


class _Malformed(Exception):
    """The sandbox sent something that is not a reply."""


class Kernel:
    """A container's sandboxed Python. Start it with ``Kernel.start``."""

    def __init__(self, *, directory: Path, limits: Limits, python: Path, label: str) -> None:
        if not _LABEL.fullmatch(label):
            raise ValueError("a kernel's label is letters, digits, '_', '.' and '-'")
        self.directory = directory
        self.limits = limits
        self.python = python
        self.label = label
        self._lock = asyncio.Lock()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._read_transport: asyncio.ReadTransport | None = None
        self._drain: asyncio.Task[None] | None = None
        self._tail = b""
        self._inner: int | None = None
        self._group: PidsGroup | None = None
        self._death_told = True
        self._killed = False
        self._closed = False
        self._pid_file = directory.parent / ".pids" / f"{label}.pid"

    @classmethod
    async def start(cls, *, directory: Path, limits: Limits, python: Path, label: str) -> Kernel:
        """Start the sandboxed kernel with ``directory`` (a host directory, created if
        missing, mode 0700) bound read-write at /mnt/data. ``label`` (the container id) is
        written into a pid file so orphans can be found after a crash. SandboxError when
        it cannot start."""
        kernel = cls(directory=directory, limits=limits, python=python, label=label)
        await kernel._spawn()
        return kernel

    @property
    def alive(self) -> bool:
        process = self._process
        return process is not None and process.returncode is None and _running(process.pid)

    @property
    def pid(self) -> int | None:
        """The host pid of the sandbox's outer bwrap (its process group's leader)."""
        return self._process.pid if self._process is not None else None

    def memory_bytes(self) -> int:
        """RSS of the sandbox's processes (from /proc), in bytes."""
        if not self.alive or self.pid is None:
            return 0
        return sum(_rss(pid) for pid in [self.pid, *_descendants(self.pid)])

    def processes(self) -> list[int]:
        """Host pids of the sandbox's processes (bwrap's included)."""
        if not self.alive or self.pid is None:
            return []
        return [self.pid, *_descendants(self.pid)]

    async def close(self) -> None:
        """Kill the whole sandbox (its process group), wait, remove the pid file. A call
        running meanwhile ends at once ("crashed", saying the container was closed); a
        closed kernel runs nothing more."""
        self._closed = True
        if self.alive and self.pid is not None:
            _kill_tree(self.pid)  # now, not after the call that may be running
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
            bwrap = bwrap_path()
        except OSError as exc:
            raise SandboxError(f"the sandbox cannot start: {exc}") from None
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        given: list[int] = []  # the pipes bwrap reads as it makes the sandbox
        loop = asyncio.get_running_loop()
        try:
            given.append(holding(_kernel_script()))
            denies = await asyncio.to_thread(denies_userns, bwrap)  # tried once a process
            args = command(
                bwrap=bwrap,
                python=self.python,
                directory=self.directory,
                limits=self.limits,
                fds=(request_r, reply_w),
                kernel_fd=given[0],
                disable_userns=denies,
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
                raise _Malformed("not ready")
        except (TimeoutError, _Malformed, asyncio.IncompleteReadError, ValueError):
            await self._kill()
            said = self._tail.decode("utf-8", "replace").strip()
            why = f": {said.splitlines()[-1]}" if said else ""
            raise SandboxError(f"the sandbox's Python did not start{why}") from None
        tree = _descendants(self._process.pid)
        self._inner = next((p for p in tree if _comm(p) != "bwrap"), None)
        self._group = PidsGroup.make(self.limits.processes + 1)  # bwrap's own too
        if self._group is not None and not self._group.add([self._process.pid, *tree]):
            self._group.remove()
            self._group = None
        self._death_told = False
        self._write_pid_file()

    def _write_pid_file(self) -> None:
        assert self._process is not None
        self._pid_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {
            "pid": self._process.pid,
            "label": self.label,
            "directory": str(self.directory),
            "started": _started(self._process.pid),
            "owner": os.getpid(),
            "owner_started": _started(os.getpid()),
        }
        temporary = self._pid_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(record))
        temporary.replace(self._pid_file)

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(1 << 16):
            self._tail = (self._tail + chunk)[-STDERR_TAIL:]

    # ------------------------------------------------------------------ a call

    async def _call(self, code: str) -> Outcome:
        limits = self.limits
        # Processes left running since the last call (the files are measured during the
        # call and as it ends: a scan of a large /mnt/data is the slow part of a call).
        over = self._over_limits(disk=False)
        if over is not None:
            await self._kill()
            return self._lost("limit", over, subject=False)
        assert self._writer is not None
        body = json.dumps({"code": code}).encode("utf-8", "surrogatepass")
        self._writer.write(struct.pack(">I", len(body)) + body)
        # Logs and error text, each at most output_bytes, JSON-escaped (up to 6 bytes for
        # one), the images in base64, and room for the rest.
        cap = 12 * limits.output_bytes + IMAGES * (IMAGE_BYTES * 4 // 3 + 8) + (1 << 20)
        reply = asyncio.ensure_future(self._receive(cap))
        watch = _Watch(self)
        try:
            return await self._await_reply(reply, watch)
        except asyncio.CancelledError:
            # The caller gave up: the kernel's reply would answer the next call instead.
            # Killed now; the next call starts it again and says so.
            if self.pid is not None:
                _kill_tree(self.pid)
            raise
        finally:
            watch.end()
            if not reply.done():
                reply.cancel()
            elif not reply.cancelled():
                reply.exception()  # retrieved: it was read, or the sandbox is gone

    async def _await_reply(self, reply: asyncio.Future[Any], watch: _Watch) -> Outcome:
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
                return self._lost("timeout", self._late(), subject=False)
        # The watch's verdict first: when it killed the sandbox, a reply that came in the
        # meantime is not the call's outcome. Then what the call left behind.
        over = watch.end() or await asyncio.to_thread(self._over_limits)
        if over is not None:
            await self._kill()
            return self._lost("limit", over, subject=False)
        try:
            return self._outcome(reply.result(), interrupted)
        except (asyncio.IncompleteReadError, ConnectionError):
            return await self._died()
        except (_Malformed, ValueError):
            await self._kill()
            return self._lost("crashed", "the sandbox sent a malformed reply", subject=False)

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

    def _outcome(self, reply: Any, interrupted: bool) -> Outcome:
        """The kernel's reply, checked field by field."""
        if not isinstance(reply, dict):
            raise _Malformed("not an object")
        logs, cut, error = reply.get("logs"), reply.get("cut"), reply.get("error")
        kind, encoded = reply.get("kind"), reply.get("images")
        if not isinstance(logs, str) or not isinstance(cut, int) or cut < 0:
            raise _Malformed("logs")
        if error is not None and not isinstance(error, str):
            raise _Malformed("error")
        if kind not in _ENDED or not isinstance(encoded, list) or len(encoded) > IMAGES:
            raise _Malformed("kind or images")
        images: list[bytes] = []
        for item in encoded:
            if not isinstance(item, str):
                raise _Malformed("image")
            try:
                data = base64.b64decode(item, validate=True)
            except binascii.Error:
                raise _Malformed("image") from None
            if len(data) > IMAGE_BYTES or not data.startswith(_PNG):
                raise _Malformed("image")
            images.append(data)
        logs = _cut(logs, self.limits.output_bytes, cut)
        if error is not None:
            error = _clean(error)[: self.limits.output_bytes * 2]
        ended: Ended = _ENDED[kind]  # type: ignore[assignment]
        if kind == "ok":
            error = None
        elif kind == "interrupted":
            if interrupted:
                error = (
                    f"the call ran past its {self.limits.call_timeout:g} s limit and was "
                    "interrupted"
                )
            else:
                ended = "error"  # the code raised KeyboardInterrupt itself
        elif kind == "memory":
            size = size_text(self.limits.memory_bytes)
            error = f"{error}\n\nThe code used more than the container's {size} of memory."
        elif error is None:
            raise _Malformed("an error without its text")
        return Outcome(logs, error, images, ended, False, 0.0)

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
        await self._kill()
        if self._closed:
            return Outcome("", _CLOSED, [], "crashed", True, 0.0)
        if status == 128 + signal.SIGXCPU:
            cpu = self.limits.cpu_seconds
            return self._lost("limit", f"the container's Python used more than its {cpu} s of CPU")
        if "MemoryError" in said or "Cannot allocate memory" in said:
            size = size_text(self.limits.memory_bytes)
            return self._lost("limit", f"the container's Python used more than its {size} memory")
        if status is not None and status > 128:
            how = f"was killed by signal {status - 128}"
        else:
            how = f"exited with status {status}"
        return self._lost("crashed", f"the container's Python stopped ({how})")

    def _lost(self, ended: Ended, why: str, *, subject: bool = True) -> Outcome:
        """The sandbox is gone: ``why`` is said of the container's Python (``subject``) or
        of the call."""
        if subject:
            error = f"{why} and was restarted: its variables are lost"
        else:
            error = f"{why}: the container's Python was restarted and its variables are lost"
        return Outcome("", error, [], ended, True, 0.0)

    def _over_limits(self, *, disk: bool = True) -> str | None:
        """Why the sandbox must stop now (its disk, its processes), or None."""
        return (self._look()[0] if disk else None) or self._crowded()

    def _look(self) -> tuple[str | None, int]:
        """Why the files in /mnt/data must stop the sandbox now, or None; and their bytes."""
        limits = self.limits
        size, count = files.tally(self.directory, most=limits.disk_files + 1)
        if size > limits.disk_bytes:
            room = size_text(limits.disk_bytes)
            return f"the files in /mnt/data passed the container's {room}", size
        if count > limits.disk_files:
            return f"/mnt/data holds more than {limits.disk_files:,} files", size
        return None, size

    def _crowded(self) -> str | None:
        """Why the sandbox must stop, when the kernel's processes (bwrap's init in the
        sandbox included) are at their bound: a fork bomb, or children left holding every
        slot."""
        bound = self.limits.processes
        if self.pid is not None and len(_descendants(self.pid)) >= bound:
            return f"the code reached the container's limit of {bound} processes"
        return None

    async def _receive(self, most: int) -> Any:
        """One framed message, at most ``most`` bytes of JSON."""
        assert self._reader is not None
        head = await self._reader.readexactly(4)
        (size,) = struct.unpack(">I", head)
        if size > most:
            raise _Malformed("too large")
        body = await self._reader.readexactly(size)
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Malformed("not JSON") from None

    async def _kill(self) -> None:
        """Kill the sandbox, if it runs, and wait for it."""
        process = self._process
        if process is None:
            return
        self._killed = True
        if process.returncode is None:
            _kill_tree(process.pid)
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


def _cut(logs: str, most: int, cut: int) -> str:
    data = _clean(logs).encode("utf-8")
    if len(data) > most:
        cut += len(data) - most
        logs = data[:most].decode("utf-8", "ignore")
    else:
        logs = data.decode("utf-8")
    if cut:
        logs += f"\n[output cut: {cut:,} more bytes not shown]"
    return logs


def _clean(text: str) -> str:
    """Text with any lone surrogate replaced: safe to encode as UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8")


# ---------------------------------------------------------------------- /proc


def _descendants(pid: int) -> list[int]:
    """The host pids under ``pid``, breadth first (from /proc/PID/task/TID/children)."""
    found: list[int] = []
    queue = [pid]
    while queue and len(found) < 100_000:
        parent = queue.pop(0)
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as f:
                    children = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            found += children
            queue += children
    return found


class _Watch:
    """The host's looks at a running call's limits (``Kernel._look``, ``Kernel._crowded``),
    on a thread of their own, which kills the sandbox the moment it finds it over: on the
    event loop, a busy loop or a queue of other jobs would let a fast writer pass the disk
    limit by hundreds of megabytes before the kill. ``found`` resolves with why; ``end``
    stops the looks."""

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._loop = asyncio.get_running_loop()
        self.found: asyncio.Future[str] = self._loop.create_future()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # a kill and ``end`` one after the other
        self._why: str | None = None
        threading.Thread(target=self._run, name="parley-sandbox-watch", daemon=True).start()

    def end(self) -> str | None:
        """Stop looking; answers why the watch killed the sandbox (None: it did not), for
        good: no kill comes after this."""
        with self._lock:
            self._stop.set()
            return self._why

    def _run(self) -> None:
        kernel = self._kernel
        room = kernel.limits.disk_bytes
        then, (_, before) = time.monotonic(), kernel._look()
        pause = WATCH_SOONEST
        crowded_since: float | None = None  # when the processes were first seen at their bound
        while not self._stop.wait(pause):
            began = time.monotonic()
            over, size = kernel._look()
            # The processes at their bound stop it once they have held it for WATCH_HELD.
            crowded = None if over is not None else kernel._crowded()
            if crowded is None:
                crowded_since = None
            elif crowded_since is None:
                crowded_since = began
            held = 0.0 if crowded_since is None else began - crowded_since
            if crowded is not None and held >= WATCH_HELD:
                over = crowded
            if over is not None:
                with self._lock:
                    if self._stop.is_set():
                        return
                    self._why = over
                    if kernel.pid is not None:
                        _kill_tree(kernel.pid)
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    self._loop.call_soon_threadsafe(self._settle, over)
                return
            # Look again before the files could reach the limit at the pace they grow
            # (half the time it would take), so a fast writer is caught near it; but spend
            # at most a fifth of the time scanning a large /mnt/data, and never wait more
            # than WATCH_MOST.
            pause = WATCH_EVERY
            if size > before:
                left = (room - size) / ((size - before) / max(began - then, 1e-6))
                pause = max(WATCH_SOONEST, min(WATCH_EVERY, left / 2))
            pause = min(WATCH_MOST, max(pause, 4 * (time.monotonic() - began)))
            if crowded is not None:
                pause = min(pause, max(WATCH_SOONEST, WATCH_HELD - held))
            then, before = began, size

    def _settle(self, why: str) -> None:
        if not self.found.done():
            self.found.set_result(why)


def _kill_tree(pid: int) -> None:
    """SIGKILL a sandbox: its bwrap's process group, and every process under it (killing
    the sandbox's init, bwrap's child, ends all of its pid namespace, whatever sessions or
    groups the code made)."""
    tree = _descendants(pid)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    for each in [pid, *tree]:
        with contextlib.suppress(OSError):
            os.kill(each, signal.SIGKILL)


def _running(pid: int) -> bool:
    """The process exists and is no zombie (its exit may not be reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _started(pid: int) -> int | None:
    """A process's start time (clock ticks since boot), to tell it from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            after = f.read().rpartition(b")")[2].split()
        return int(after[19])
    except (OSError, ValueError, IndexError):
        return None


def sweep_orphans(root: Path) -> int:
    """Kill the sandboxes a dead server left behind (pid files under ``root/.pids``,
    checked against the process's start time and name so a reused pid is never killed), remove their pid
    files; return how many were killed. A pid file whose server still runs is left alone.
    Called at start-up."""
    from parley.sandbox import cgroups

    killed = 0
    for pid_file in sorted((root / ".pids").glob("*.pid")):
        try:
            record = json.loads(pid_file.read_text())
            pid = int(record["pid"])
            owner, owner_started = int(record["owner"]), record.get("owner_started")
        except (OSError, ValueError, KeyError, TypeError):
            with contextlib.suppress(OSError):
                pid_file.unlink()
            continue
        if owner_started is not None and _started(owner) == owner_started:
            continue  # its server (maybe this one) still runs
        # Its bwrap still, not a process that reuses the pid: the same start time.
        started = record.get("started")
        same = started is not None and _started(pid) == started and _comm(pid) == "bwrap"
        if same and _running(pid):
            _kill_tree(pid)
            killed += 1
        with contextlib.suppress(OSError):
            pid_file.unlink()
    cgroups.sweep()
    return killed
