"""The bubblewrap command line of a sandbox, and how it is handed to bwrap.

Every namespace is new (no network: its loopback is its own, empty), the system and the
interpreter are read-only, the container's directory is read-write at ``/mnt/data``, /tmp
and /dev/shm are small tmpfs of their own, the environment is a clean one, and the code may
make no namespace of its own. Nothing of the server's reaches the code through bwrap
itself: bwrap starts with an empty environment and takes its options (which name the
host's folders) on a pipe, and the kernel's script comes by content.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
from pathlib import Path

from parley.sandbox.limits import Limits
from parley.sandbox.probe import python_roots

#: The sandbox's private /tmp, and its /dev/shm (shared memory: multiprocessing's
#: semaphores and arrays). Both are memory, counted in the container's memory bound.
TMP_BYTES = 64 << 20
SHM_BYTES = 64 << 20
#: The environment bwrap is started with: none of the server's.
SPAWN_ENVIRONMENT: dict[str, str] = {}

KERNEL = Path(__file__).with_name("kernel.py")
_INSIDE = "/.parley/kernel.py"
_ETC = ("/etc/ld.so.cache", "/etc/localtime")
#: What a pipe holds before a write blocks (Linux's default), and fcntl's request to make
#: it hold more.
_PIPE_ROOM = 1 << 16
_F_SETPIPE_SZ = 1031


@functools.cache
def kernel_script() -> bytes:
    """kernel.py's bytes, read once a process."""
    return KERNEL.read_bytes()


def command(
    *,
    bwrap: str,
    python: Path,
    directory: Path,
    limits: Limits,
    fds: tuple[int, int],
    kernel_fd: int,
    disable_userns: bool = True,
    seccomp_fd: int | None = None,
) -> list[str]:
    """The bwrap command line of a kernel reading requests on ``fds[0]`` and answering on
    ``fds[1]``, its script read from ``kernel_fd`` (a pipe holding kernel.py: no host path
    of the server's is bound for it). ``disable_userns``: the code may make no user
    namespace of its own (bubblewrap 0.8 and newer). ``seccomp_fd``: a pipe holding the
    seccomp filter of the system calls the code may not make (``parley.sandbox.seccomp``)."""
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
        # The kernel's global settings. bwrap covers /proc/sys only when its folder looks
        # writable, but its files are checked by uid alone: a server run as root maps the
        # sandbox's user to root's uid, and core_pattern would run a program of the code's
        # as root on the host. Read-only whatever the uid.
        "--ro-bind", "/proc/sys", "/proc/sys",
        "--ro-bind-try", "/proc/pressure", "/proc/pressure",  # triggers, not the code's
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
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
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
