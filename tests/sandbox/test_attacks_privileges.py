"""The escape attempts of the security review that reach for privileges and the host's
processes, or try to fool the server: setuid, mount, ptrace and capabilities, signals to
processes outside, planted links, fifos and devices against the files API, output floods,
and what the code leaves running between calls.

Each test runs its attack inside a real bubblewrap sandbox through ``Kernel.run``, then
checks from the host (its processes and their /proc entries, its files) that the attack
was contained.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from parley.sandbox import files, procs
from parley.sandbox.runtime import Kernel
from tests.sandbox.attacks import (
    HELPERS,
    NOTE_ROOM,
    _failed,
    _first_chunk,
    _host,
    _Inotify,
    _report,
    _status,
    _within,
)
from tests.sandbox.conftest import SMALL, alive, assert_gone, started

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
