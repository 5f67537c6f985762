"""The escape attempts of the security review that the other sandbox tests do not run yet.

Each test runs its attack as model-written code would, inside a real bubblewrap sandbox
through ``Kernel.run``, then checks from the host (its files and their inotify events, its
sockets, its processes and their /proc entries) that the attack was contained, not only
what the code says of itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import secrets
import socket
import stat
import struct
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from parley.sandbox import files, procs
from parley.sandbox.runtime import Kernel
from tests.sandbox.conftest import SMALL, alive, assert_gone, started

#: Room for the JSON reports the attacks print, and time for the slower ones (a walk of
#: the whole sandbox's tree).
ROOMY = replace(SMALL, output_bytes=256 << 10, call_timeout=20.0)
#: What the kernel adds to logs cut at output_bytes: "\n[output cut: N more bytes not shown]".
NOTE_ROOM = 64

#: The helpers every attack below starts with: ``tried(table, label, action)`` records
#: what ``action()`` gave, or the errno name of the OSError it raised ("E...").
HELPERS = r"""
import errno, json, os
def tried(table, label, action):
    try:
        got = action()
    except OSError as e:
        table[label] = errno.errorcode.get(e.errno or 0, f"E{e.errno}")
    else:
        table[label] = got if isinstance(got, (str, list, int)) else "ok"
"""


async def _report(kernel: Kernel, code: str, **given: object) -> Any:
    """What the attack leaves in ``_result`` (printed as JSON); ``given`` are set as the
    code's variables first."""
    head = "".join(f"{name} = {value!r}\n" for name, value in given.items())
    outcome = await kernel.run(
        head + HELPERS + code + "\nimport json as _j\nprint(_j.dumps(_result))"
    )
    assert outcome.ended == "ok", (outcome.error, outcome.logs[-2000:])
    return json.loads(outcome.logs.strip().splitlines()[-1])


@pytest.fixture
async def roomy(bwrap: None, containers: Path) -> AsyncIterator[Kernel]:
    """A kernel with room for long reports, closed (all its processes gone) after."""
    k = await started(containers, "cntr_attacked", ROOMY)
    pids = k.processes()
    yield k
    await k.close()
    assert_gone(pids)


def _failed(results: dict[str, object]) -> dict[str, object]:
    """The entries of a report whose action did not fail with an errno."""
    return {k: v for k, v in results.items() if not (isinstance(v, str) and v.startswith("E"))}


def _status(pid: int) -> dict[str, str]:
    """The host's view of /proc/PID/status ({} when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _host(path: str | Path) -> bytes:
    """A file of the host's (of its /proc too), b"" when there is none."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _existing(paths: list[str]) -> list[str]:
    return [p for p in paths if os.path.isdir(p)]


def _put_back(paths: list[str], mark: str) -> None:
    """Were a rename of the code's to have worked, the host's files as they were."""
    for path in paths:
        moved = Path(f"{path}.{mark}")
        if moved.exists() and not Path(path).exists():
            moved.rename(path)


def _digest(path: Path) -> tuple[int, int, int, str]:
    st = path.stat()
    return st.st_mode, st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


class _Inotify:
    """The host's inotify watch of paths: every open, read, write, attribute change,
    creation or removal of them (for a folder: of what it holds), whoever does it and
    through whatever path (it watches inodes, not names)."""

    ALL = 0xFFF  # IN_ALL_EVENTS

    def __init__(self, *paths: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        for path in paths:
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), self.ALL)
            assert wd >= 0, os.strerror(ctypes.get_errno())

    def events(self) -> list[tuple[int, str]]:
        """(mask, name) of the events since the last call."""
        found: list[tuple[int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return found
            at = 0
            while at < len(data):
                _, mask, _, size = struct.unpack_from("iIII", data, at)
                name = data[at + 16 : at + 16 + size].rstrip(b"\0").decode("utf-8", "replace")
                found.append((mask, name))
                at += 16 + size

    def close(self) -> None:
        os.close(self.fd)


def _within(action: Callable[[], object], seconds: float = 5.0) -> object:
    """``action()``'s value, or the exception it raised, run on a thread: the test fails
    when it has not returned within ``seconds`` (it blocked, on a fifo say)."""
    done: list[object] = []

    def run() -> None:
        try:
            done.append(action())
        except BaseException as exc:  # noqa: BLE001 (handed back to the test)
            done.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{action} blocked for {seconds} s"
    return done[0]


def _first_chunk(directory: Path, path: str) -> bytes:
    return next(files.chunks(directory, path, most=1 << 20))


# ---------------------------------------------------------------- other containers' files

OTHER_FILES = r"""
_result = {"read": {}, "listed": {}, "linked": {}, "found": []}

def cat(path, dir_fd=None):
    fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    try:
        return os.read(fd, 4096).decode("latin-1")
    finally:
        os.close(fd)

# The host path of /mnt/data, as the mount table tells it, and the neighbour's beside it.
mine = next(l.split()[3] for l in open("/proc/self/mountinfo") if l.split()[4] == "/mnt/data")
guessed = os.path.join(os.path.dirname(mine), "cntr_other")
_result["mine"] = mine
read = _result["read"]
paths = {
    "dotdot": "../cntr_other/" + NAME,
    "mnt": "/mnt/cntr_other/" + NAME,
    "data-dotdot": "/mnt/data/../cntr_other/" + NAME,
    "host-path": OTHER + "/" + NAME,
    "guessed": guessed + "/" + NAME,
    "self-root-dotdot": "/proc/self/root/../../cntr_other/" + NAME,
    "self-root-host": "/proc/self/root" + OTHER + "/" + NAME,
    "thread-self-root": "/proc/thread-self/root" + OTHER + "/" + NAME,
}
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    paths[pid + "-root"] = f"/proc/{pid}/root{OTHER}/{NAME}"
    paths[pid + "-root-dotdot"] = f"/proc/{pid}/root/../cntr_other/{NAME}"
    paths[pid + "-cwd"] = f"/proc/{pid}/cwd/../cntr_other/{NAME}"
for label, path in paths.items():
    tried(read, label, lambda: cat(path))

# openat games: relative to a descriptor of /mnt/data, of its O_PATH, of what ".." gives.
data = os.open("/mnt/data", os.O_RDONLY | os.O_DIRECTORY)
tried(read, "openat", lambda: cat("../cntr_other/" + NAME, dir_fd=data))
opath = os.open("/mnt/data", os.O_PATH | os.O_DIRECTORY)
tried(read, "openat-opath", lambda: cat("../cntr_other/" + NAME, dir_fd=opath))
up = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=data)
tried(_result["listed"], "openat-up", lambda: sorted(os.listdir(up)))
tried(read, "openat-up-name", lambda: cat("cntr_other/" + NAME, dir_fd=up))
top = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
for _ in range(8):
    top = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=top)
tried(_result["listed"], "openat-above-root", lambda: sorted(os.listdir(top)))
tried(read, "openat-above-root-name", lambda: cat(OTHER.lstrip("/") + "/" + NAME, dir_fd=top))

# chdir out of /mnt/data, and up past the root.
os.chdir("/mnt/data/..")
tried(_result["listed"], "chdir-up", lambda: sorted(os.listdir(".")))
tried(read, "chdir-up-name", lambda: cat("cntr_other/" + NAME))
os.fchdir(up)
for _ in range(8):
    os.chdir("..")
tried(_result["listed"], "chdir-above-root", lambda: sorted(os.listdir(".")))
tried(read, "chdir-above-root-name", lambda: cat(OTHER.lstrip("/") + "/" + NAME))
os.chdir("/mnt/data")

# Anything named like the neighbour or its file, anywhere in the sandbox's tree.
for folder, folders, names in os.walk("/"):
    if folder == "/":
        folders[:] = [f for f in folders if f not in ("proc", "sys")]
    if "cntr_other" in folders or NAME in names:
        _result["found"].append(folder)

# Symlinks planted for the host to follow: relative ones lead to the neighbour on the
# host (/mnt/data is containers/cntr_attacked there), absolute ones name its host path.
links = {
    "rel_link": "../cntr_other/" + NAME,
    "abs_link": OTHER + "/" + NAME,
    "dir_link": "../cntr_other",
    "abs_dir_link": OTHER,
    "guessed_link": guessed + "/" + NAME,
    "proc_link": f"/proc/1/root{OTHER}/{NAME}",
}
for name, target in links.items():
    os.symlink(target, name)
    tried(read, "via-" + name, lambda: cat(name))
os.mkdir("deep")
os.symlink("../../cntr_other", "deep/up2")
tried(read, "via-deep", lambda: cat("deep/up2/" + NAME))

# Hard links to files outside /mnt/data.
held = os.open("/etc/localtime", os.O_RDONLY)
sources = {
    "dotdot": "../cntr_other/" + NAME,
    "host": OTHER + "/" + NAME,
    "proc-root": f"/proc/1/root{OTHER}/{NAME}",
    "guessed": guessed + "/" + NAME,
    "etc": "/etc/ld.so.cache",
    "kernel": "/.parley/kernel.py",
    "usr": "/usr/bin/env",
}
sources["fd"] = f"/proc/self/fd/{held}"
for label, source in sources.items():
    tried(_result["linked"], label, lambda: os.link(source, "hard-" + label))
    # linkat(AT_SYMLINK_FOLLOW), through the magic link of a descriptor too.
    tried(_result["linked"], label + "-follow", lambda: os.link(
        source, "hard-f-" + label, src_dir_fd=data, follow_symlinks=True))
tried(_result["linked"], "via-link-follow", lambda: os.link(
    "rel_link", "hard-rel", src_dir_fd=data, follow_symlinks=True))
open("mine.txt", "w").write("the code's own file")
"""


async def test_another_containers_files_are_out_of_reach(roomy: Kernel, containers: Path) -> None:
    """The code tries every path to a neighbour container's folder it can think of: "..",
    /proc/*/root and /proc/*/cwd, openat from descriptors of /mnt/data, chdir up past the
    root, the neighbour's host path (given, and guessed from the mount table), a walk of
    its whole tree; it plants symlinks (relative ones lead to the neighbour on the host)
    and tries hard links to files outside. The host checks that every read and link
    failed, that its inotify watch saw nothing touch the neighbour's folder or secret
    (the files API following no planted link either), that the secret is unchanged with
    one link, and that no secret came back through the code's output or the files API."""
    other = containers / "cntr_other"
    other.mkdir(mode=0o700)
    secret = secrets.token_hex(16)
    name = f"secret-{secrets.token_hex(4)}.txt"
    (other / name).write_text(secret)
    before = _digest(other / name)
    watch = _Inotify(other, other / name)
    try:
        head = "".join(f"{k} = {v!r}\n" for k, v in {"OTHER": str(other), "NAME": name}.items())
        outcome = await roomy.run(head + HELPERS + OTHER_FILES + "\nprint(json.dumps(_result))")
        assert outcome.ended == "ok", (outcome.error, outcome.logs[-2000:])
        assert secret not in outcome.logs
        report = json.loads(outcome.logs.strip().splitlines()[-1])
        assert report["mine"] == str(roomy.directory)  # the mount table names it (documented)
        assert len(report["read"]) > 20 and _failed(report["read"]) == {}, report["read"]
        assert _failed(report["linked"]) == {}, report["linked"]
        assert report["found"] == []
        assert report["listed"]["openat-up"] == ["data"]  # /mnt holds /mnt/data alone
        assert report["listed"]["chdir-up"] == ["data"]
        assert "cntr_other" not in json.dumps(report["listed"])
        # The host's side: the files API lists and reads the code's folder, never
        # following its links.
        directory = roomy.directory
        assert set(files.scan(directory)) == {"mine.txt"}
        for link in ("rel_link", "abs_link", "guessed_link", "proc_link"):
            assert isinstance(
                _within(partial(files.read, directory, link, most=1 << 20)), ValueError
            )
            assert isinstance(_within(partial(_first_chunk, directory, link)), ValueError)
        for through in ("dir_link", "abs_dir_link", "deep/up2"):
            path = f"{through}/{name}"
            assert isinstance(
                _within(partial(files.read, directory, path, most=1 << 20)), ValueError
            )
            assert isinstance(_within(partial(files.write, directory, path, b"x")), ValueError)
            planted = f"{through}/planted.txt"
            assert isinstance(_within(partial(files.write, directory, planted, b"x")), ValueError)
        kept = _within(lambda: files.prune(directory, {"mine.txt"}))
        assert isinstance(kept, tuple) and kept[0] >= 8, kept
        assert sorted(os.listdir(directory)) == ["mine.txt"]
        # Nothing reached the neighbour's folder or its file, through any path.
        assert watch.events() == []
        assert sorted(os.listdir(other)) == [name]
        assert _digest(other / name) == before
        assert os.stat(other / name).st_nlink == 1
        # The watch does see a read (it could have failed): the host's own, now.
        assert (other / name).read_text() == secret
        assert any(mask & 0x20 for mask, _ in watch.events())  # IN_OPEN
    finally:
        watch.close()


# ---------------------------------------------------------------- writes outside /mnt/data

PYTHON_FOLDERS = r"""
import sys, sysconfig
found = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__),
         os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable)),
         *sysconfig.get_paths().values()}
_result = sorted(p for p in found if os.path.isdir(p))
"""

WRITES = r"""
import sys
_result = {}
def make_file(path):
    with open(path, "x") as f:
        f.write("written by the sandbox")
makers = {"file": make_file, "folder": os.mkdir, "link": lambda p: os.symlink("/", p),
          "fifo": os.mkfifo}
for place in PLACES + PRIVATE:
    for how, make in makers.items():
        tried(_result, f"{place}|{how}", lambda: make(os.path.join(place, MARK + "." + how)))
for place in [p for p in PLACES if p not in OWN_PROC]:
    tried(_result, f"{place}|chmod", lambda: os.chmod(place, 0o777))
    tried(_result, f"{place}|utime", lambda: os.utime(place, (0, 0)))
for path in FILES + [os.__file__, sys.executable, os.path.realpath(sys.executable)]:
    tried(_result, f"{path}|append", lambda: open(path, "ab").write(b"\n# " + MARK.encode()))
    tried(_result, f"{path}|open-rw", lambda: os.close(os.open(path, os.O_RDWR)))
    tried(_result, f"{path}|utime", lambda: os.utime(path, (0, 0)))
    tried(_result, f"{path}|chmod", lambda: os.chmod(path, 0o777))
    tried(_result, f"{path}|rename", lambda: os.rename(path, path + "." + MARK))
"""

#: Folders the code may not write in (and, but for /.parley and /proc's, the host's folder
#: of the same path it must not reach).
PLACES = [
    "/", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/etc", "/dev", "/.parley", "/root",
    "/mnt", "/proc", "/proc/self", "/proc/sys", "/proc/sys/kernel", "/sys", "/var", "/run",
    "/home", "/proc/self/root/usr", "/proc/1/root/usr", "/proc/1/root/etc",
]  # fmt: skip
#: Folders of the sandbox's own /proc (a procfs of its pid namespace): their modes and
#: times are its own, so only making files in them is tried.
OWN_PROC = ["/proc", "/proc/self", "/proc/sys", "/proc/sys/kernel"]
#: The sandbox's own: writable inside, with nothing showing in the host's folders.
PRIVATE = ["/tmp", "/dev/shm", "/mnt/data"]
#: Files the code may not change.
FILES = ["/.parley/kernel.py", "/etc/ld.so.cache", "/etc/localtime", "/usr/bin/env"]


def _snapshot(folders: list[str]) -> dict[str, object]:
    """Each folder's listing and modification time, and its files' mode, size, mtime."""
    seen: dict[str, object] = {}
    for folder in folders:
        st = os.stat(folder)
        seen[folder] = (st.st_mtime_ns, sorted(os.listdir(folder)))
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    s = entry.stat(follow_symlinks=False)
                    seen[entry.path] = (s.st_mode, s.st_size, s.st_mtime_ns)
    return seen


async def test_nothing_is_written_outside_mnt_data(roomy: Kernel) -> None:
    """The code tries to create a file, a folder, a symlink and a fifo in every folder
    that looks writable (/, /usr, /etc, /dev, /proc, /.parley, /root, the Python's own
    folders...), to chmod and touch them, to append to, rename, chmod and touch the
    Python's files, kernel.py and /etc's, and to open the kernel's knobs in /proc/sys for
    writing. All fail; the host checks that no file named with the attack's mark appeared
    in its own folders of the same paths (the Python's are bound at their host path),
    that the Python's folders and files kept their listing, sizes and times, and that
    what the code wrote in /tmp and /dev/shm (its own tmpfs) never reached the host's."""
    mark = f"parley-attack-{secrets.token_hex(4)}"
    python = await _report(roomy, PYTHON_FOLDERS)
    assert isinstance(python, list) and python
    host_folders = [p for p in PLACES if not p.startswith(("/proc", "/.parley"))]
    host_folders = _existing(host_folders + python + ["/tmp", "/dev/shm"])
    watched_files = [Path(p) for p in FILES if p != "/.parley/kernel.py"]
    before = _snapshot(python), {p: _digest(p) for p in watched_files}
    report = await _report(
        roomy, WRITES, MARK=mark, PLACES=[*PLACES, *python], PRIVATE=PRIVATE, FILES=FILES,
        OWN_PROC=OWN_PROC,
    )  # fmt: skip
    try:
        assert isinstance(report, dict)
        made = {k: report.pop(k) for k in list(report) if k.split("|")[0] in PRIVATE}
        assert len(report) > 150 and _failed(report) == {}, _failed(report)
        assert _failed(made) == made  # its own /tmp, /dev/shm and /mnt/data: written
        # From the host: nothing of the mark in its folders but the container's own.
        for folder in host_folders:
            assert [n for n in os.listdir(folder) if mark in n] == [], folder
        assert sorted(n for n in os.listdir(roomy.directory) if mark in n) == sorted(
            f"{mark}.{how}" for how in ("file", "folder", "link", "fifo")
        )
        after = _snapshot(python), {p: _digest(p) for p in watched_files}
        assert after == before
    finally:
        _put_back([*FILES, *python], mark)


#: The host kernel's settings (global, not a namespace's): each opened for writing only.
KNOBS = [
    "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/kernel/poweroff_cmd",
    "/proc/sys/kernel/randomize_va_space", "/proc/sys/kernel/kptr_restrict",
    "/proc/sys/fs/suid_dumpable", "/proc/sys/fs/protected_symlinks",
    "/proc/sys/vm/drop_caches", "/proc/sys/vm/overcommit_memory", "/proc/sysrq-trigger",
]  # fmt: skip
#: A harmless one the code writes for real (whether core files' names end with the pid).
FLIPPED = "/proc/sys/kernel/core_uses_pid"

SETTINGS = r"""
_result = {}
for path in KNOBS:
    tried(_result, path, lambda: os.close(os.open(path, os.O_WRONLY)))
def flip():
    with open(FLIPPED, "w") as f:
        f.write(VALUE)
tried(_result, "write " + FLIPPED, flip)
"""


async def test_the_host_kernels_settings_are_out_of_reach(roomy: Kernel) -> None:
    """The code opens the host kernel's global settings in /proc/sys for writing
    (core_pattern and modprobe, which name a program the kernel runs as root on the host;
    poweroff_cmd, ASLR, kptr_restrict, suid_dumpable, protected_symlinks, drop_caches,
    overcommit) and /proc/sysrq-trigger, and writes the opposite of the host's value to a
    harmless one, kernel.core_uses_pid. Every open fails, and the host reads its own
    core_uses_pid and core_pattern unchanged (put back if the write went through)."""
    original = _host(FLIPPED).decode().strip()
    pattern = _host("/proc/sys/kernel/core_pattern")
    flipped = "0" if original == "1" else "1"
    try:
        report = await _report(roomy, SETTINGS, KNOBS=KNOBS, FLIPPED=FLIPPED, VALUE=flipped)
        seen = _host(FLIPPED).decode().strip()
        assert isinstance(report, dict)
        assert (seen, _failed(report)) == (original, {}), (
            f"the code wrote {flipped} to the host's {FLIPPED} (was {original}, the host "
            f"now reads {seen}); what it could open for writing: {_failed(report)}"
        )
        assert _host("/proc/sys/kernel/core_pattern") == pattern
    finally:
        if _host(FLIPPED).decode().strip() != original:
            _put_setting(FLIPPED, original)


async def test_nothing_under_proc_but_the_codes_own_processes_opens_for_writing(
    kernel: Kernel,
) -> None:
    """Every file of /proc outside the sandbox's own processes' folders is tried for
    writing (the kernel's settings, pressure triggers, sysrq, drivers...): none opens,
    whatever the uid the sandbox's user maps to on the host (root's, for a server run as
    root)."""
    report = await kernel.run(
        "import os\nopened = []\n"
        "for top, dirs, names in os.walk('/proc'):\n"
        "    if top == '/proc':\n"
        "        dirs[:] = [d for d in dirs if not d.isdigit() and d not in ('self', "
        "'thread-self')]\n"
        "    for name in names:\n"
        "        path = os.path.join(top, name)\n"
        "        try:\n"
        "            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)\n"
        "        except OSError:\n"
        "            continue\n"
        "        os.close(fd)\n"
        "        opened.append(path)\n"
        "print(opened)"
    )
    assert (report.ended, report.logs) == ("ok", "[]\n"), report


def _put_setting(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


# ---------------------------------------------------------------- the network

NETWORK = r"""
import socket
_result = {}
def stream(family, address):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(address)
def datagram(family, address):
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.sendto(b"from the sandbox", address)
        s.sendto(b"from the sandbox", address)
for label, family, address in TCP:
    tried(_result, "tcp " + label, lambda: stream(getattr(socket, family), tuple(address)))
for label, family, address in UDP:
    tried(_result, "udp " + label, lambda: datagram(getattr(socket, family), tuple(address)))
for label, address in UNIX:
    tried(_result, "unix " + label, lambda: stream(socket.AF_UNIX, address))
    tried(_result, "unix-dgram " + label, lambda: datagram(socket.AF_UNIX, address))
tried(_result, "packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close())
tried(_result, "raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1).close())
"""


def _host_addresses() -> list[tuple[str, str]]:
    """The host's own addresses on its other interfaces: (family, address)."""
    found: list[tuple[str, str]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            with contextlib.suppress(OSError):
                got = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
                address = socket.inet_ntoa(got[20:24])  # SIOCGIFADDR
                if not address.startswith("127."):
                    found.append(("AF_INET", address))
    with contextlib.suppress(OSError), open("/proc/net/if_inet6") as f:
        for line in f:
            raw, _, _, scope, *_ = line.split()
            if scope == "00":  # global
                found.append(("AF_INET6", socket.inet_ntop(socket.AF_INET6, bytes.fromhex(raw))))
    return found


def _came(s: socket.socket) -> bool:
    """Whether a connection or a datagram came to the host's socket (within 0.1 s)."""
    try:
        if s.type == socket.SOCK_STREAM:
            s.accept()[0].close()
        else:
            s.recvfrom(1024)
    except TimeoutError:
        return False
    return True


@contextlib.contextmanager
def _listening(tmp_path: Path) -> Iterator[dict[str, socket.socket]]:
    """The host's sockets for the code to reach: TCP on every IPv4 and IPv6 address, UDP on
    every IPv4 address, an abstract unix socket (stream and datagram) and a unix socket
    file in a host folder the sandbox does not bind."""
    made: dict[str, socket.socket] = {}
    try:
        made["tcp"] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        made["tcp"].bind(("0.0.0.0", 0))
        six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            six.bind(("::", 0))
        except OSError:  # no IPv6 on this host
            six.close()
        else:
            made["tcp6"] = six
        made["udp"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        made["udp"].bind(("0.0.0.0", 0))
        tag = secrets.token_hex(6)
        made["abstract"] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        made["abstract"].bind(f"\0parley-attack-{tag}")
        made["abstract-dgram"] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        made["abstract-dgram"].bind(f"\0parley-attack-dgram-{tag}")
        made["file"] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        made["file"].bind(str(tmp_path / "host.sock"))
        for s in made.values():
            if s.type == socket.SOCK_STREAM:
                s.listen()
            s.settimeout(0.1)
        yield made
    finally:
        for s in made.values():
            s.close()


async def test_no_connection_reaches_the_host(roomy: Kernel, tmp_path: Path) -> None:
    """The code connects to PostgreSQL (5432) and Redis (6379) on 127.0.0.1 and ::1, to a
    TCP port the test listens on (on loopback, on the host's other addresses, over IPv6),
    sends UDP datagrams to a port the test binds, connects and sends to an abstract unix
    socket the test listens on (abstract names belong to a network namespace) and to a
    unix socket file in a host folder, and opens raw and packet sockets. Each fails or
    goes nowhere: the host's sockets accept and receive nothing, and the sandbox's
    processes are in a network namespace that is not the host's."""
    with _listening(tmp_path) as host:
        port = host["tcp"].getsockname()[1]
        tcp: list[tuple[str, str, tuple[Any, ...]]] = [
            ("postgres", "AF_INET", ("127.0.0.1", 5432)),
            ("redis", "AF_INET", ("127.0.0.1", 6379)),
            ("postgres6", "AF_INET6", ("::1", 5432)),
            ("redis6", "AF_INET6", ("::1", 6379)),
            ("test-port", "AF_INET", ("127.0.0.1", port)),
        ]
        udp: list[tuple[str, str, tuple[Any, ...]]] = [
            ("test-port", "AF_INET", ("127.0.0.1", host["udp"].getsockname()[1]))
        ]
        for family, address in _host_addresses():
            if family == "AF_INET":
                tcp.append((address, family, (address, port)))
                udp.append((address, family, (address, host["udp"].getsockname()[1])))
            elif "tcp6" in host:
                tcp.append((address, family, (address, host["tcp6"].getsockname()[1])))
        if "tcp6" in host:
            tcp.append(("test-port6", "AF_INET6", ("::1", host["tcp6"].getsockname()[1])))
        unix = [
            ("abstract", host["abstract"].getsockname()),
            ("abstract-dgram", host["abstract-dgram"].getsockname()),
            ("file", str(tmp_path / "host.sock")),
            ("postgres-file", "/var/run/postgresql/.s.PGSQL.5432"),
            ("postgres-tmp", "/tmp/.s.PGSQL.5432"),
            ("redis-file", "/var/run/redis/redis-server.sock"),
        ]
        report = await _report(roomy, NETWORK, TCP=tcp, UDP=udp, UNIX=unix)
        assert isinstance(report, dict)
        # What went out on UDP stays in the sandbox: its sends may "work" (on its own lo).
        sent = {k: report.pop(k) for k in list(report) if k.startswith("udp ")}
        assert all(v in ("ok", "ECONNREFUSED", "ENETUNREACH") for v in sent.values()), sent
        assert _failed(report) == {}, report
        assert report["tcp postgres"] == report["tcp redis"] == "ECONNREFUSED"  # its own lo
        assert report["tcp test-port"] == "ECONNREFUSED"
        assert report["unix abstract"] == "ECONNREFUSED"
        assert report["unix file"] == "ENOENT"
        assert report["packet"] == report["raw"] == "EPERM"
        # From the host: nothing came to any of its sockets.
        assert {name: _came(s) for name, s in host.items()} == dict.fromkeys(host, False)
        # (And they would have told: the host's own connection comes.)
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            assert _came(host["tcp"])
    mine = os.readlink("/proc/self/ns/net")
    assert all(os.readlink(f"/proc/{p}/ns/net") != mine for p in roomy.processes()[1:])


# ---------------------------------------------------------------- privileges

SETUID_CANDIDATES = ["/usr/bin/su", "/usr/bin/mount", "/usr/bin/passwd", "/usr/bin/umount",
                     "/usr/bin/chsh", "/usr/bin/chfn", "/usr/bin/newgrp", "/usr/bin/gpasswd",
                     "/usr/bin/sudo", "/usr/bin/pkexec"]  # fmt: skip

PRIVILEGES = r"""
import ctypes, signal, subprocess, time
libc = ctypes.CDLL(None, use_errno=True)
def call(result):
    if result == -1:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "ok"
def status(pid):
    lines = open(f"/proc/{pid}/status").read().splitlines()
    return {k: v.split() for k, _, v in (l.partition(":") for l in lines)
            if k in ("Uid", "Gid", "CapEff", "CapPrm", "CapAmb", "NoNewPrivs")}
_result = {"denied": {}}
denied = _result["denied"]
tried(denied, "setuid", lambda: os.setuid(0))
tried(denied, "setgid", lambda: os.setgid(0))
tried(denied, "setresuid", lambda: os.setresuid(0, 0, 0))
tried(denied, "setgroups", lambda: os.setgroups([0]))
tried(denied, "mount", lambda: call(libc.mount(b"none", b"/mnt/data", b"tmpfs", 0, None)))
tried(denied, "remount", lambda: call(libc.mount(None, b"/usr", None, 0x20 | 0x1000, None)))
tried(denied, "umount", lambda: call(libc.umount2(b"/proc", 2)))
tried(denied, "chroot", lambda: os.chroot("/tmp"))
tried(denied, "ptrace-init", lambda: call(libc.ptrace(16, 1, 0, 0)))
tried(denied, "ptrace-parent", lambda: call(libc.ptrace(16, os.getppid(), 0, 0)))
tried(denied, "ptrace-seize", lambda: call(libc.ptrace(0x4206, 1, 0, 0)))
tried(denied, "proc-1-mem", lambda: open("/proc/1/mem", "rb").read(64))
tried(denied, "proc-1-mem-at", lambda: os.pread(os.open("/proc/1/mem", os.O_RDONLY), 64, 0x400000))
tried(denied, "ambient-raise", lambda: call(libc.prctl(47, 2, 21, 0, 0)))  # CAP_SYS_ADMIN
tried(denied, "no-new-privs-off", lambda: call(libc.prctl(38, 0, 0, 0, 0)))
tried(denied, "securebits", lambda: call(libc.prctl(28, 0, 0, 0, 0)))
class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [("eff", ctypes.c_uint32), ("perm", ctypes.c_uint32), ("inh", ctypes.c_uint32)]
every = (Data * 2)(Data(0xFFFFFFFF, 0xFFFFFFFF, 0), Data(0xFFFFFFFF, 0xFFFFFFFF, 0))
tried(denied, "capset", lambda: call(libc.capset(ctypes.byref(Header(0x20080522, 0)), every)))
_result["self"] = status("self")
_result["mountinfo"] = open("/proc/self/mountinfo").read()
# A child asks to be traced by the kernel (PTRACE_TRACEME).
child = os.fork()
if child == 0:
    done = libc.ptrace(0, 0, 0, 0)
    os._exit(0 if done == 0 else 100 + ctypes.get_errno())
_result["traceme"] = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
if SETUID:
    done = subprocess.run([SETUID, "root", "-c", "id"], capture_output=True, timeout=10)
    _result["su-c-id"] = [done.returncode, (done.stdout + done.stderr).decode()[-300:]]
    # The setuid program blocked on its first write (a full pipe), to be looked at.
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    blocked = subprocess.Popen([SETUID, "--help"], stdin=subprocess.DEVNULL, stdout=w, stderr=w)
    steady = 0
    for _ in range(500):
        state = open(f"/proc/{blocked.pid}/stat").read().rpartition(")")[2].split()[0]
        steady = steady + 1 if os.readlink(f"/proc/{blocked.pid}/exe") == SETUID and state == "S" else 0
        if steady == 5 or blocked.poll() is not None:
            break
        time.sleep(0.01)
    _result["setuid"] = status(blocked.pid)
    _result["setuid-running"] = blocked.poll() is None
"""


def _setuid_program() -> str | None:
    """A setuid-root program under /usr on the host, if there is one."""
    for path in SETUID_CANDIDATES:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if st.st_mode & stat.S_ISUID and st.st_uid == 0 and stat.S_ISREG(st.st_mode):
                return path
    return None


async def test_the_code_gains_no_privilege(roomy: Kernel) -> None:
    """The code tries setuid(0) and its kin, mount, remount and umount, chroot, ptrace of
    the sandbox's init, of its parent and from a child (PTRACE_TRACEME), reads
    /proc/1/mem, raises ambient capabilities, clears no_new_privs, sets securebits, calls
    capset for every capability, and runs a setuid-root program (su -c id, and the
    program left blocked on a full pipe to be looked at). Each fails; the host reads the
    sandbox's processes' /proc status and sees no capability, no_new_privs set, no tracer,
    the setuid program under the code's own uid, and the sandbox's mount table and root
    unchanged."""
    setuid = _setuid_program()
    inner = roomy.processes()[-1]
    mounts_before = _host(f"/proc/{inner}/mountinfo").decode()
    root_before = os.readlink(f"/proc/{inner}/root")
    kernel_uid = _status(inner)["Uid"]
    report = await _report(roomy, PRIVILEGES, SETUID=setuid)
    assert isinstance(report, dict)
    assert _failed(report["denied"]) == {}, report["denied"]
    assert report["denied"]["ptrace-init"] == report["denied"]["ptrace-parent"] == "EPERM"
    assert report["denied"]["mount"] == report["denied"]["chroot"] == "EPERM"
    assert report["traceme"] == 100 + errno.EPERM
    inside = report["self"]
    assert inside["Uid"] == ["1000"] * 4 and inside["Gid"] == ["1000"] * 4
    assert int(inside["CapEff"][0], 16) == int(inside["CapPrm"][0], 16) == 0
    assert int(inside["CapAmb"][0], 16) == 0 and inside["NoNewPrivs"] == ["1"]
    # From the host: every process of the code's, and bwrap's init, holds no capability
    # and no tracer; nothing was mounted, the root is where it was.
    pids = roomy.processes()[1:]
    for pid in pids:
        seen = _status(pid)
        assert (seen["CapEff"], seen["CapPrm"], seen["CapAmb"]) == ("0" * 16,) * 3, pid
        assert (seen["NoNewPrivs"], seen["TracerPid"], seen["Uid"]) == ("1", "0", kernel_uid)
    assert report["mountinfo"] == _host(f"/proc/{inner}/mountinfo").decode() == mounts_before
    assert os.readlink(f"/proc/{inner}/root") == root_before
    if setuid is None:
        pytest.skip("no setuid-root program under /usr on this host (the rest was checked)")
    code, said = report["su-c-id"]
    assert code != 0 and "uid=0" not in said, said
    assert report["setuid-running"], report
    setuid_seen = report["setuid"]
    assert setuid_seen["Uid"] == ["1000"] * 4, setuid_seen  # euid and saved uid: the code's
    assert int(setuid_seen["CapEff"][0], 16) == int(setuid_seen["CapPrm"][0], 16) == 0
    blocked = [p for p in pids if procs.comm(p) == os.path.basename(setuid)]
    assert len(blocked) == 1, [(p, procs.comm(p)) for p in pids]
    host_view = _status(blocked[0])
    assert (host_view["CapEff"], host_view["CapPrm"]) == ("0" * 16, "0" * 16), host_view
    assert host_view["Uid"] == kernel_uid and host_view["NoNewPrivs"] == "1"
    after = await roomy.run("blocked.kill()\nblocked.wait()")
    assert after.ended == "ok", after


# ---------------------------------------------------------------- signals


@pytest.fixture
def sentinel() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the host's, for the code to try to kill."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


SIGNALS = r"""
import signal, subprocess, time
_result = {"targeted": {}}
child = subprocess.Popen(["sleep", "30"])
for label, pid in TARGETS.items():
    for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
        tried(_result["targeted"], f"{label} {sig.name}", lambda: os.kill(pid, sig))
    tried(_result["targeted"], f"{label} group", lambda: os.killpg(pid, signal.SIGKILL))
    tried(_result["targeted"], f"{label} pidfd", lambda: os.close(os.pidfd_open(pid)))
reachable = []
for pid in range(1, 1 << 16):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        continue
    except OSError:
        pass
    reachable.append(pid)
_result["reachable"] = reachable
_result["listed"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
open("/mnt/data/signals.json", "w").write(json.dumps(_result))
# Everything it may signal, then everything /proc lists.
tried(_result, "kill -1", lambda: os.kill(-1, signal.SIGKILL))
for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    if pid != os.getpid():
        tried(_result, f"kill {pid}", lambda: os.kill(pid, signal.SIGKILL))
_result["child"] = child.wait(timeout=5)
open("/mnt/data/signals.json", "w").write(json.dumps(_result))
"""


async def test_signals_reach_no_process_outside_the_sandbox(
    kernel: Kernel, neighbour: Kernel, sentinel: subprocess.Popen[bytes]
) -> None:
    """The code sends SIGKILL, SIGSTOP and SIGTERM to the host pids of a sentinel process,
    of the test's own process, of the neighbour container's sandbox and of its own outer
    bwrap, kills their process groups and opens pidfds for them, probes every pid up to
    65535 with signal 0, then kill(-1, SIGKILL) and SIGKILL to everything /proc lists. The
    host checks that the sentinel runs and is not stopped, the neighbour's processes are
    the same and still answer (the fixture asks), that its own sandbox kept going, and
    that the only pids the code could reach were the sandbox's own."""
    outer = kernel.processes()
    theirs = neighbour.processes()
    targets = {"sentinel": sentinel.pid, "test": os.getpid(), "outer-bwrap": outer[0]}
    targets |= {f"neighbour-{i}": pid for i, pid in enumerate(theirs)}
    outcome = await kernel.run(f"TARGETS = {targets!r}\n" + HELPERS + SIGNALS + "\nprint('done')")
    # kill(-1) spares the caller (and the sandbox's init): the call should end well, but a
    # kernel killed by it would only be restarted.
    assert outcome.ended in ("ok", "crashed"), outcome
    report = json.loads(files.read(kernel.directory, "signals.json", most=1 << 20))
    assert report["targeted"] and set(report["targeted"].values()) == {"ESRCH"}, report
    assert report["reachable"] == report["listed"] and len(report["listed"]) <= 5, report
    if outcome.ended == "ok":
        assert report["child"] == -9  # kill(-1) did kill what it could reach: the sandbox's
        assert kernel.processes()[:3] == outer  # and its sandbox still runs
    # From the host: the sentinel runs (not stopped), the neighbour's processes are there.
    await asyncio.sleep(0.1)
    assert sentinel.poll() is None and alive(sentinel.pid)
    assert procs.state(sentinel.pid) in ("S", "R"), procs.state(sentinel.pid)
    assert neighbour.processes() == theirs and all(alive(p) for p in theirs)
    after = await kernel.run("print('still here')")
    assert (after.ended, after.logs) == ("ok", "still here\n"), after


# ---------------------------------------------------------------- special files in /mnt/data

#: Names that look like "..", or like a path, and are not.
DOTTY = ["\u2024\u2024", "\uff0e\uff0e", "\u2025", ".\u200b.", "...", ".. ", "..\u0338",
         "\u2024\u2024\u2215etc\u2215shadow"]  # fmt: skip
#: A folder named so too.
FOLDER = "\u2025\u2025"

SPECIAL = r"""
import socket, stat
_result = {}
os.symlink("/etc/shadow", "shadow")
os.symlink(SECRET, "secret")
os.symlink(os.path.dirname(SECRET), "folder")
os.symlink("loop", "loop")
os.mkfifo("pipe")
os.mkfifo("full")
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind("sock")
listener.listen()
tried(_result, "char", lambda: os.mknod("char", stat.S_IFCHR | 0o666, os.makedev(1, 3)))
tried(_result, "block", lambda: os.mknod("block", stat.S_IFBLK | 0o666, os.makedev(8, 0)))
for name in DOTTY:
    open(name, "w").write("dotty " + name)
os.mkdir(FOLDER)
open(FOLDER + "/inner.txt", "w").write("inner")
# A fifo kept open by a writer that fills it, for a host that would read it.
if os.fork() == 0:
    fd = os.open("full", os.O_RDWR)
    os.set_blocking(fd, False)
    try:
        while True:
            os.write(fd, b"y" * 4096)
    except BlockingIOError:
        pass
    import time
    time.sleep(600)
"""


async def test_planted_links_fifos_sockets_and_devices_do_not_fool_the_files_api(
    kernel: Kernel, tmp_path: Path
) -> None:
    """The code plants in /mnt/data a symlink to the host's /etc/shadow, one to a host
    secret file and one to its folder, a symlink loop, a fifo (and one a child keeps
    full), a listening unix socket, files named with ".."-like unicode, and tries to make
    character and block devices (refused). From the host, with a deadline on each call
    (none may block): scan lists the real files alone, read, chunks and write refuse
    every special entry, the dotty names read as themselves inside the folder, and
    remove and prune take the links away without touching what they point at; the host's
    inotify watch saw nothing open the secret."""
    host = tmp_path / "host"
    host.mkdir()
    secret = host / "secret.txt"
    secret.write_text("host secret " + secrets.token_hex(8))
    watch = _Inotify(host, secret)
    shadow = hashlib.sha256(_host("/etc/shadow")).hexdigest()
    try:
        report = await _report(kernel, SPECIAL, SECRET=str(secret), DOTTY=DOTTY, FOLDER=FOLDER)
        assert report == {"char": "EPERM", "block": "EPERM"}
        directory = kernel.directory
        found = _within(lambda: files.scan(directory))
        assert isinstance(found, dict)
        inner = FOLDER + "/inner.txt"
        assert set(found) == {*DOTTY, inner}, sorted(found)
        for name in DOTTY:
            assert (
                _within(partial(files.read, directory, name, most=100)) == f"dotty {name}".encode()
            )
        assert _within(partial(files.read, directory, inner, most=100)) == b"inner"
        real = directory.resolve()
        for path in found:  # each a file inside the container's folder
            assert (real / path).resolve().parent in (real, real / FOLDER), path
        special = ["shadow", "secret", "loop", "pipe", "full", "sock", "folder/secret.txt"]
        for name in special:
            got = _within(partial(files.read, directory, name, most=1 << 20))
            assert isinstance(got, ValueError), (name, got)
            got = _within(partial(_first_chunk, directory, name))
            assert isinstance(got, ValueError), (name, got)
            got = _within(partial(files.write, directory, name, b"from the host"))
            assert isinstance(got, ValueError), (name, got)
        assert isinstance(_within(partial(files.tally, directory)), tuple)
        # From the host: no device node, whatever the code tried.
        for entry in os.scandir(directory):
            mode = entry.stat(follow_symlinks=False).st_mode
            assert not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)), entry.name
        assert _within(lambda: files.remove(directory, "shadow")) is None
        assert _within(lambda: files.remove(directory, "folder")) is None
        assert _within(lambda: files.remove(directory, "pipe")) is None
        pruned = _within(lambda: files.prune(directory, set(DOTTY)))
        assert isinstance(pruned, tuple), pruned
        assert sorted(os.listdir(directory)) == sorted(DOTTY)
        assert _within(lambda: files.remove(directory, DOTTY[0])) is None
        # What the links pointed at is untouched, and was never opened.
        assert watch.events() == []
        assert secret.read_text().startswith("host secret ")
        assert os.listdir(host) == ["secret.txt"]
        assert hashlib.sha256(_host("/etc/shadow")).hexdigest() == shadow
    finally:
        watch.close()


# ---------------------------------------------------------------- floods and exits


def _bounded(logs: str) -> bool:
    return len(logs.encode()) <= SMALL.output_bytes + NOTE_ROOM


async def test_floods_and_exits_give_bounded_replies(kernel: Kernel) -> None:
    """50 MB printed in a loop, 8 MB written to fds 1 and 2 directly, very long lines
    without a newline on stdout and stderr, a multi-byte flood, an exception whose text is
    8 MB, a final expression whose repr is 50 MB; then KeyboardInterrupt raised by the
    code, sys.exit() and os._exit(). The host gets each reply bounded by the output limit
    (plus its note), the raised interrupt is an error and not a timeout, sys.exit keeps
    the kernel, os._exit restarts it, and the next call works."""
    await kernel.run("kept = 'kept'")
    floods = {
        "print": "for _ in range(50):\n    print('x' * (1 << 20))",
        "fds": "import os\nfor fd in (1, 2):\n    for _ in range(128):\n"
        "        os.write(fd, b'y' * 65536)",
        "lines": "import sys\nsys.stdout.write('a' * (8 << 20))\nsys.stderr.write('b' * (8 << 20))",
        "wide": "print('\\u00e9\\U0001f600' * (4 << 20))",
        "repr": "'z' * (50 << 20)",
    }
    for name, code in floods.items():
        outcome = await kernel.run(code)
        assert (outcome.ended, outcome.restarted) == ("ok", False), (name, outcome.error)
        assert _bounded(outcome.logs), (name, len(outcome.logs))
        assert outcome.logs == "" or "[output cut: " in outcome.logs, name
    raised = await kernel.run("raise ValueError('e' * (8 << 20))")
    assert raised.ended == "error" and raised.error is not None
    assert len(raised.error) <= 2 * SMALL.output_bytes + NOTE_ROOM
    interrupt = await kernel.run("print('before')\nraise KeyboardInterrupt")
    assert (interrupt.ended, interrupt.restarted, interrupt.logs) == ("error", False, "before\n")
    assert "KeyboardInterrupt" in (interrupt.error or "")
    assert interrupt.took < SMALL.call_timeout
    exits = await kernel.run("import sys\nsys.exit('bye')")
    assert (exits.ended, exits.restarted) == ("error", False) and "SystemExit" in (
        exits.error or ""
    )
    assert (await kernel.run("kept")).logs == "'kept'\n"  # the same kernel
    pids = kernel.processes()
    gone = await kernel.run("import os\nprint('x' * 100000)\nos._exit(0)")
    assert (gone.ended, gone.restarted, gone.logs) == ("crashed", True, "")
    assert_gone(pids)
    after = await kernel.run("print('fresh')")
    assert (after.ended, after.logs, after.restarted) == ("ok", "fresh\n", False)


# ---------------------------------------------------------------- between calls

GROWERS = r"""
import os, threading, time
def grow(held, most):
    while len(held) < most:
        held.append(b"\x01" * (1 << 20))
        time.sleep(0.005)
if os.fork() == 0:
    grow([], 100)
    time.sleep(600)
held = []
threading.Thread(target=grow, args=(held, 100), daemon=True).start()
time.sleep(0.1)
"""


async def test_memory_allocated_after_the_call_does_not_grow_between_calls(
    kernel: Kernel,
) -> None:
    """A thread and a child left allocating 1 MiB every 5 ms after the call returns: the
    host reads the sandbox's RSS sum twice, 0.5 s apart, and it did not grow (the code's
    processes are stopped between calls); the next call lets them go on, and it grows."""
    outcome = await kernel.run(GROWERS)
    assert outcome.ended == "ok", outcome
    first = kernel.memory_bytes()
    await asyncio.sleep(0.5)
    second = kernel.memory_bytes()
    assert second - first <= 4 << 20, (first, second)
    code_pids = kernel.processes()[2:]
    assert len(code_pids) == 2 and all(procs.state(p) == "T" for p in code_pids)
    again = await kernel.run("import time\ntime.sleep(0.3)\nlen(held)")
    assert again.ended == "ok", again
    assert kernel.memory_bytes() > second + (20 << 20)  # the growers do run during a call


SLEEPER = r"""
import ctypes, subprocess, sys, time
_result = {}
libc = ctypes.CDLL(None, use_errno=True)
class Timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]
def call(result):
    if result == -1:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "ok"
tried(_result, "clock_settime", lambda: time.clock_settime(time.CLOCK_REALTIME, 0))
tried(_result, "settimeofday", lambda: call(libc.settimeofday(ctypes.byref(Timeval(0, 0)), None)))
tried(_result, "stime", lambda: call(libc.clock_settime(0, ctypes.byref(Timeval(10**9, 0)))))
detached = subprocess.Popen(
    [sys.executable, "-c", "import os, time\nif os.fork():\n    os._exit(0)\nos.setsid()\n"
     "time.sleep(SLEEP)".replace("SLEEP", str(SLEEP))],
    start_new_session=True,
)
detached.wait()
_result["took"] = time.monotonic()
"""


async def test_a_detached_sleeper_is_stopped_between_calls_and_gone_after_close(
    bwrap: None, containers: Path
) -> None:
    """The code tries to set the clock (refused), then leaves a grandchild, detached with
    setsid and reparented, sleeping far past the call's time limit. The call ends at once;
    from the host, the sleeper is stopped (state T) between calls, still in the sandbox's
    tree, the host's clock did not move, and after close the sleeper is gone."""
    kernel = await started(containers, "cntr_sleeper")
    try:
        base = set(kernel.processes())
        wall = time.time()
        report = await _report(kernel, SLEEPER, SLEEP=SMALL.call_timeout * 30)
        assert isinstance(report, dict)
        report.pop("took")
        assert report == dict.fromkeys(("clock_settime", "settimeofday", "stime"), "EPERM")
        assert abs(time.time() - wall) < 60
        sleepers = [p for p in kernel.processes() if p not in base]
        assert len(sleepers) == 1, sleepers
        sleeper = sleepers[0]
        assert b"time.sleep" in _host(f"/proc/{sleeper}/cmdline")
        assert procs.state(sleeper) == "T"
        await asyncio.sleep(0.5)
        assert procs.state(sleeper) == "T" and sleeper in kernel.processes()
        again = await kernel.run("print('next')")
        assert (again.ended, again.logs) == ("ok", "next\n")
        assert procs.state(sleeper) == "T"
    finally:
        await kernel.close()
    assert_gone([sleeper])
