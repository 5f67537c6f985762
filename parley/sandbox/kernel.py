"""The kernel: the script the sandbox's Python runs (stdlib only; never imported by the
server). It keeps one namespace for the container's life and runs each request's code in it
as a notebook cell.

    python kernel.py REQUEST_FD REPLY_FD LIMITS_JSON

First it lowers its own limits (address space, CPU, processes, open files, file size, core
dumps) before any code of the user runs: RLIMIT_NPROC is set here, inside the sandbox's user
namespace, so that it counts this sandbox's processes alone. Then it answers ``{"ready":
true}`` and loops: a request is ``{"code": str, "call": str}``; the reply is ``{"call",
"logs", "cut", "error", "kind", "images"}`` with ``kind`` one of ``ok``, ``error``,
``interrupted`` (the host's SIGINT at the call's time limit) and ``memory`` (a
MemoryError), and ``call`` the request's. Frames are a 4-byte big-endian length and that
many bytes of JSON. The host trusts none of it: the code shares this process and its
pipes, and may write frames of its own; the host takes as a call's reply only a frame that
names that call, so a forged frame can at most shape the reply of the call that wrote it
(as its printed output does), never another's.
"""

import ast
import base64
import builtins
import io
import json
import linecache
import os
import resource
import signal
import struct
import sys
import traceback
import warnings
from typing import Any

IMAGES = 8
IMAGE_BYTES = 8 << 20
REQUEST_BYTES = 64 << 20


def main() -> None:
    request_fd, reply_fd = int(sys.argv[1]), int(sys.argv[2])
    limits = json.loads(sys.argv[3])
    del sys.argv[1:]
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # the kernel's own folder: nothing the code should import
    _limit(limits)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin = open(os.devnull)  # noqa: SIM115 (for the kernel's life)
    warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")
    kernel = Kernel(limits["output_bytes"])
    _send(reply_fd, {"ready": True})
    while True:
        request = _receive(request_fd)
        if request is None:
            return
        reply = kernel.run(request.get("code", ""))
        reply["call"] = request.get("call")  # which call this answers (see the docstring)
        _send(reply_fd, reply)


def _limit(limits: dict[str, int]) -> None:
    pairs = (
        (resource.RLIMIT_AS, limits["memory_bytes"]),
        (resource.RLIMIT_NPROC, limits["processes"]),
        (resource.RLIMIT_NOFILE, limits["open_files"]),
        (resource.RLIMIT_FSIZE, limits["file_bytes"]),
        (resource.RLIMIT_CORE, 0),
    )
    for which, value in pairs:
        resource.setrlimit(which, (value, value))
    cpu = limits["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))  # SIGXCPU, then SIGKILL


class Capture(io.TextIOBase):
    """stdout and stderr both: what is printed, in order, up to ``most`` bytes of UTF-8;
    the bytes past it are only counted."""

    encoding = "utf-8"

    def __init__(self, most: int, pieces: list[bytes], counts: list[int], name: str) -> None:
        self._most = most
        self._pieces = pieces
        self._counts = counts  # [kept, cut], shared by stdout and stderr
        self.name = name

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        data = text.encode("utf-8", "backslashreplace")
        room = self._most - self._counts[0]
        if len(data) <= room:
            self._pieces.append(data)
            self._counts[0] += len(data)
        else:
            if room > 0:
                self._pieces.append(data[:room])
                self._counts[0] += room
            self._counts[1] += len(data) - max(room, 0)
        return len(text)

    def flush(self) -> None:
        pass


class Kernel:
    def __init__(self, output_bytes: int) -> None:
        self.pid = os.getpid()
        self.output_bytes = output_bytes
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.cells = 0

    def run(self, code: str) -> dict[str, Any]:
        self.cells += 1
        filename = f"<cell {self.cells}>"
        pieces: list[bytes] = []
        counts = [0, 0]
        saved = sys.stdout, sys.stderr
        sys.stdout = Capture(self.output_bytes, pieces, counts, "<stdout>")
        sys.stderr = Capture(self.output_bytes, pieces, counts, "<stderr>")
        error: str | None = None
        kind = "ok"
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                self._execute(code, filename)
            finally:
                if os.getpid() != self.pid:
                    os._exit(0)  # a child the code forked: never the kernel's loop
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        except KeyboardInterrupt as exc:
            error, kind = _traceback(exc, filename), "interrupted"
        except MemoryError as exc:
            error, kind = _traceback(exc, filename), "memory"
        except BaseException as exc:  # noqa: BLE001 (SystemExit too: the kernel goes on)
            error, kind = _traceback(exc, filename), "error"
        images: list[str] = []
        try:
            images = _figures(sys.stdout)
        except BaseException as exc:  # noqa: BLE001 (a figure that cannot be drawn: said in the logs)
            print(f"(figures not saved: {type(exc).__name__}: {exc})", file=sys.stdout)
        finally:
            sys.stdout, sys.stderr = saved
            if os.getpid() != self.pid:
                os._exit(0)  # a child the code forked: never the kernel's loop
        logs = b"".join(pieces).decode("utf-8", "replace")
        if error is not None and len(error) > self.output_bytes:
            error = error[: self.output_bytes] + "\n... (cut)"
        return {"logs": logs, "cut": counts[1], "error": error, "kind": kind, "images": images}

    def _execute(self, code: str, filename: str) -> None:
        lines = code.splitlines(keepends=True)
        linecache.cache[filename] = (len(code), None, lines, filename)
        tree = ast.parse(code, filename, "exec")
        last: ast.Expression | None = None
        final = tree.body[-1] if tree.body else None
        if isinstance(final, ast.Expr):
            tree.body.pop()
            last = ast.Expression(final.value)
        exec(compile(tree, filename, "exec"), self.namespace)
        if last is not None:
            value = eval(compile(last, filename, "eval"), self.namespace)
            if value is not None:
                self.namespace["_"] = value
                print(repr(value))


def _traceback(exc: BaseException, filename: str) -> str:
    """The exception as Python prints it, without the kernel's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and tb is None:
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip()


def _figures(out: Any) -> list[str]:
    """The open matplotlib figures as base64 PNGs (at most IMAGES, each at most
    IMAGE_BYTES), each then closed."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return []
    images: list[str] = []
    for number in pyplot.get_fignums():
        figure = pyplot.figure(number)
        if len(images) < IMAGES:
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png")
            data = buffer.getvalue()
            if len(data) <= IMAGE_BYTES:
                images.append(base64.b64encode(data).decode("ascii"))
            else:
                print(f"(figure {number} not kept: its PNG is over 8 MiB)", file=out)
        else:
            print(f"(figure {number} not kept: at most {IMAGES} a call)", file=out)
        pyplot.close(figure)
    return images


def _receive(fd: int) -> Any:
    head = _read_exactly(fd, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    if size > REQUEST_BYTES:
        sys.exit(3)
    body = _read_exactly(fd, size)
    if body is None:
        return None
    return json.loads(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _send(fd: int, message: Any) -> None:
    body = json.dumps(message).encode("ascii")
    data = struct.pack(">I", len(body)) + body
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    main()
