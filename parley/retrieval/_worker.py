"""Worker processes that parse heavy files, bounded by the system, and their pool.

A worker is ``python -m parley.retrieval._worker MEMORY_MB``. At start it caps its own
address space (``RLIMIT_AS``) and imports the parsers; then it reads jobs from its
standard input and answers each on its standard output, one at a time:

    job:     >II (header length, data length), the header (JSON: kind, limits), the data
    answer:  >I (length), JSON: {"ok": true, "text", "kind", "pages", "page_starts",
             "encoding", "exiting"} or {"ok": false, "error": "unsupported" | "failed",
             "reason", "message", "exiting"}

Before each job it sets its CPU time limit (``RLIMIT_CPU``, soft) to what it has used so far
plus the job's ``max_seconds``: a runaway parse gets SIGXCPU. The parent also keeps a wall
clock on every job and kills a worker that is late. A worker that ran out of memory
answers, then exits; one that was killed, crashed or served ``MAX_JOBS`` jobs is replaced
by a new one on the next job. Standard input closing (the parent gone) ends a worker.

The pool is threads-and-pipes, not asyncio: ``Extractor`` calls it through
``asyncio.to_thread``, so it works from any event loop, or none.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import resource
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

import parley
from parley.retrieval._base import MB, ExtractionFailed, Limits, UnsupportedFile

_JOB = struct.Struct(">II")
_ANSWER = struct.Struct(">I")
#: Jobs a worker serves before it is replaced (a bound on what a parser may leak).
MAX_JOBS = 200
#: The share of its memory limit a worker may have reached before it is replaced.
MEMORY_NEAR = 0.9
#: Signals that, in a worker whose address space is capped, most likely mean it ran out.
_OUT_OF_MEMORY = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGKILL}


# ------------------------------------------------------------------- the worker side


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _set_cpu_limit(seconds: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _peak_memory() -> int | None:
    """The most address space this process has had (Linux's ``VmPeak``), in bytes."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _answer_job(header: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bool]:
    """The answer to one job, and whether the worker must exit after it: when it ran out
    of memory, or came near enough (``MEMORY_NEAR``) that ``VmPeak`` could not tell the
    next job's failure from an earlier job's peak."""
    limits = Limits(**header["limits"])
    answer = _parsed(header["kind"], data, limits)
    peak = _peak_memory()
    near = peak is not None and peak >= limits.max_memory_mb * MB * MEMORY_NEAR
    if near and answer.get("reason") == "corrupt":
        # A C library (lxml) that fails to allocate may say only "unknown error".
        answer["reason"] = "memory"
        answer["message"] = _out_of_memory(limits)
    return answer, near or answer.get("reason") == "memory"


def _out_of_memory(limits: Limits) -> str:
    return f"the parse ran past its memory limit of {limits.max_memory_mb:,} MiB"


def _parsed(kind: str, data: bytes, limits: Limits) -> dict[str, Any]:
    from parley.retrieval._parsers import parse

    _set_cpu_limit(limits.max_seconds)
    try:
        extracted = parse(kind, data, limits)
    except UnsupportedFile as exc:
        return {"ok": False, "error": "unsupported", "message": exc.message}
    except ExtractionFailed as exc:
        return {"ok": False, "error": "failed", "reason": exc.reason, "message": exc.message}
    except MemoryError:
        return {
            "ok": False,
            "error": "failed",
            "reason": "memory",
            "message": _out_of_memory(limits),
        }
    except Exception as exc:  # noqa: BLE001 - the worker's boundary: any parser bug is a failed file
        message = f"the file could not be read ({type(exc).__name__})"
        return {"ok": False, "error": "failed", "reason": "corrupt", "message": message}
    answer = asdict(extracted)
    answer["ok"] = True
    return answer


def main(argv: list[str]) -> int:
    memory = int(argv[0]) * MB
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would dump a core
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C is the parent's
    import docx  # noqa: F401 - imported once, before the first job
    import pypdf  # noqa: F401

    import parley.retrieval._parsers  # noqa: F401

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        sizes = _read_exactly(stdin, _JOB.size)
        if sizes is None:
            return 0
        header_size, data_size = _JOB.unpack(sizes)
        header_bytes = _read_exactly(stdin, header_size)
        data = _read_exactly(stdin, data_size)
        if header_bytes is None or data is None:
            return 0
        answer, must_exit = _answer_job(json.loads(header_bytes), data)
        answer["exiting"] = must_exit
        del data
        payload = json.dumps(answer, ensure_ascii=False).encode()
        stdout.write(_ANSWER.pack(len(payload)) + payload)
        stdout.flush()
        if must_exit:
            return 0


# ------------------------------------------------------------------- the parent side


class WorkerGone(Exception):
    """The worker died or was killed during a job; ``failure`` says what to report."""

    def __init__(self, failure: ExtractionFailed) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Worker:
    """One worker process, driven by one thread at a time."""

    def __init__(self, memory_mb: int) -> None:
        env = dict(os.environ)
        root = str(Path(parley.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
        self.memory_mb = memory_mb
        self.process = subprocess.Popen(
            [sys.executable, "-m", "parley.retrieval._worker", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.jobs = 0
        #: The worker said it exits after its last answer (it came near its memory limit).
        self.exiting = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, kind: str, data: bytes, limits: Limits) -> dict[str, Any]:
        """The answer of the worker to one job; raises ``WorkerGone`` when it died, was
        too slow (then it is killed) or said something that is not an answer."""
        self.jobs += 1
        deadline = time.monotonic() + limits.max_seconds
        header = json.dumps({"kind": kind, "limits": asdict(limits)}).encode()
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(_JOB.pack(len(header), len(data)) + header)
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerGone(self._death(limits)) from None
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            sizes = self._read(selector, fd, _ANSWER.size, deadline, limits)
            (size,) = _ANSWER.unpack(sizes)
            payload = self._read(selector, fd, size, deadline, limits)
        try:
            answer: dict[str, Any] = json.loads(payload)
        except ValueError:
            self.kill()
            raise WorkerGone(ExtractionFailed("corrupt", "the parser answered nonsense")) from None
        self.exiting = bool(answer.get("exiting"))
        return answer

    def _read(
        self, selector: selectors.BaseSelector, fd: int, size: int, deadline: float, limits: Limits
    ) -> bytes:
        chunks: list[bytes] = []
        while size:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                self.kill()
                raise WorkerGone(
                    ExtractionFailed(
                        "timeout", f"the parse took longer than {limits.max_seconds:g} s"
                    )
                )
            chunk = os.read(fd, min(size, 1 << 20))
            if not chunk:
                raise WorkerGone(self._death(limits))
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _death(self, limits: Limits) -> ExtractionFailed:
        """What a worker that stopped during a job died of."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        if code == -signal.SIGXCPU:
            return ExtractionFailed(
                "timeout", f"the parse used more than {limits.max_seconds:g} s of CPU time"
            )
        if code is not None and -code in _OUT_OF_MEMORY:
            return ExtractionFailed(
                "memory",
                f"the parser stopped ({signal.Signals(-code).name}), most likely past its "
                f"memory limit of {self.memory_mb:,} MiB",
            )
        return ExtractionFailed("corrupt", f"the parser stopped (exit status {code})")

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stop(self) -> None:
        """Ends an idle worker: its standard input closes, it exits."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)
        self.kill()


class Pool:
    """At most ``size`` workers, kept warm between jobs; blocking calls, thread-safe."""

    def __init__(self, limits: Limits, size: int, max_jobs: int = MAX_JOBS) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.limits = limits
        self.max_jobs = max_jobs
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[Worker] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._size = size
        #: Workers started, for tests and metrics.
        self.started = 0

    def warm(self) -> None:
        """Starts the workers not yet running, so that the first jobs do not wait."""
        with self._lock:
            missing = self._size - self._idle.qsize()
            for _ in range(max(0, missing)):
                self._idle.put(self._new())

    def _new(self) -> Worker:
        self.started += 1
        return Worker(self.limits.max_memory_mb)

    def run(self, kind: str, data: bytes) -> dict[str, Any]:
        """One job on a warm worker (a new one when none is idle)."""
        with self._slots:
            if self._closed:
                raise RuntimeError("the extractor is closed")
            worker = self._take()
            try:
                return worker.run(kind, data, self.limits)
            finally:
                self._give_back(worker)

    def _take(self) -> Worker:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                with self._lock:
                    return self._new()
            if worker.alive:
                return worker
            worker.kill()

    def _give_back(self, worker: Worker) -> None:
        if self._closed or worker.exiting or not worker.alive or worker.jobs >= self.max_jobs:
            worker.stop()
        else:
            self._idle.put(worker)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().stop()
            except queue.Empty:
                return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
