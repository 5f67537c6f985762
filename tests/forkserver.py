"""A process that has loaded what ``parley serve`` loads, once, and forks a server from
itself for each ``ParleyServer`` of the suite (``tests/harness.py``).

A server spawned afresh spends about a second of CPU importing FastAPI, SQLAlchemy, pydantic
and Parley's routes before it listens, and the suite starts a few hundred of them a pass on
two cores. A fork of this process skips that: the child gets the server's environment, its
working directory and its log as stdout and stderr, then runs ``parley serve`` exactly as
``python -m parley.cli.main serve`` would from there on (``parley.cli.main.main``).

This process only imports modules: no thread, no event loop, no database connection is made
before a fork. It answers on a Unix socket, one connection per server: a line of JSON in
(``args`` of ``parley``, ``env``, ``cwd``, and the files
its ``stdout`` and ``stderr`` go to), a line back with the child's ``pid``, and a line
with its ``returncode`` (as ``subprocess.Popen`` gives it) once the child has ended. It
ends, killing the children left, when its standard input closes (the test process is gone).

    python -m tests.forkserver SOCKET_PATH
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading

#: What ``parley serve`` imports before it listens (nothing it would import later on).
PRELOAD = (
    "uvicorn",
    "parley.cli.main",
    "parley.cli.serve",
    "parley.server.serving",
    "parley.server.app",
)


def main(path: str) -> int:
    for module in PRELOAD:
        importlib.import_module(module)
    assert threading.active_count() == 1, "a thread was started while loading: no fork"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    children: dict[int, socket.socket] = {}
    stdin = sys.stdin.fileno()
    print("ready", flush=True)
    try:
        while True:
            ready, _, _ = select.select([listener, stdin], [], [], 0.02)
            _reap(children)
            if stdin in ready and not os.read(stdin, 4096):
                return 0
            if listener in ready:
                conn, _ = listener.accept()
                _fork(conn, listener, children)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
            os.rmdir(os.path.dirname(path))  # the harness made it for this socket alone


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sendall(b'{"returncode": %d}\n' % os.waitstatus_to_exitcode(status))
            conn.close()


def _fork(conn: socket.socket, listener: socket.socket, children: dict[int, socket.socket]) -> None:
    request = json.loads(conn.makefile("rb").readline())
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        for other in children.values():
            other.close()
        _serve(request)  # never returns
    children[pid] = conn
    conn.sendall(b'{"pid": %d}\n' % pid)


def _serve(request: dict[str, object]) -> None:
    code = 1
    try:
        env, args = request["env"], request["args"]
        assert isinstance(env, dict) and isinstance(args, list)
        os.chdir(str(request["cwd"]))
        for fd, name in ((1, "stdout"), (2, "stderr")):
            out = os.open(str(request[name]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(out, fd)
            os.close(out)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(env)
        from parley.cli import main as cli

        sys.argv = [cli.__file__, *map(str, args)]  # as ``python -m parley.cli.main ARGS``
        try:
            code = cli.main(sys.argv[1:])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 (the child must never go back to the fork server's loop)
        import traceback

        traceback.print_exc()
    finally:
        # What the interpreter does as it ends: wait for the threads that are not daemons,
        # run the exit handlers (logging's flush among them), flush the standard streams.
        with contextlib.suppress(BaseException):
            import atexit

            threading._shutdown()  # type: ignore[attr-defined]
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
