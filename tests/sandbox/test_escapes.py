"""Hostile code against the sandbox: each test runs an attack inside a real bubblewrap
sandbox, then checks from the host (its /proc, its files) that the attack was contained,
not only what the code says of itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import struct
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from parley.sandbox import cgroups, files, seccomp
from parley.sandbox.command import SHM_BYTES
from parley.sandbox.runtime import Kernel
from tests.sandbox.conftest import SMALL, started
from tests.unavailable import unavailable

SECRETS = {
    "OPENAI_API_KEY": "sk-test-4ee8c1d9",
    "AWS_SECRET_ACCESS_KEY": "aws-4ee8c1d9-secret",
    "PARLEY_DATABASE_URL": "postgresql://parley:pw-4ee8c1d9@db.internal/parley",
}
#: What the kernel's environment holds, and nothing else (PWD: bwrap's, for --chdir).
KERNEL_ENVIRONMENT = {
    "HOME", "PATH", "LANG", "MPLBACKEND", "MPLCONFIGDIR", "XDG_CACHE_HOME",
    "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
    "PWD",
}  # fmt: skip


async def _json(kernel: Kernel, code: str) -> object:
    """The JSON the code prints last (``_result``)."""
    outcome = await kernel.run(code + "\nimport json as _j\nprint(_j.dumps(_result))")
    assert outcome.ended == "ok", outcome.error
    return json.loads(outcome.logs.strip().splitlines()[-1])


def _host_read(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


async def test_no_process_the_code_can_see_shows_the_servers_environment(
    bwrap: None, containers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    kernel = await started(containers, "cntr_environ")
    try:
        seen = await _json(
            kernel,
            "import os\n_result = {'environ': dict(os.environ), 'procs': {}}\n"
            "for p in os.listdir('/proc'):\n"
            "    if not p.isdigit():\n"
            "        continue\n"
            "    got = {}\n"
            "    for name in ('environ', 'cmdline'):\n"
            "        try:\n"
            "            got[name] = open(f'/proc/{p}/{name}', 'rb').read().decode('latin-1')\n"
            "        except OSError as e:\n"
            "            got[name] = 'error ' + type(e).__name__\n"
            "    _result['procs'][p] = got\n",
        )
        # From the host: every process of the sandbox, bwrap's own included.
        host = {
            pid: _host_read(pid, "environ") + _host_read(pid, "cmdline")
            for pid in kernel.processes()
        }
    finally:
        await kernel.close()
    assert isinstance(seen, dict)
    assert set(seen["environ"]) == KERNEL_ENVIRONMENT
    procs = seen["procs"]
    assert "1" in procs and len(procs) >= 2  # bwrap's init and the kernel at least
    assert procs["1"]["environ"] == ""  # bwrap's init: started with no environment
    told = json.dumps(seen)
    for key, value in SECRETS.items():
        assert value not in told and key not in told
        for pid, data in host.items():
            assert value.encode() not in data, (pid, key)
    # The options that name the host's folders reach bwrap on a pipe, not its command line.
    assert str(containers) not in procs["1"]["cmdline"]
    assert procs["1"]["cmdline"].split("\0")[1:3] == [
        "--args",
        procs["1"]["cmdline"].split("\0")[2],
    ]
    assert "--bind" not in procs["1"]["cmdline"]
    for pid, data in host.items():
        assert str(containers).encode() not in data, pid
    # The kernel's script is given by content: the server's install path is not bound.
    kernel_py = str(Path(__file__).parents[2] / "parley" / "sandbox" / "kernel.py")
    assert kernel_py not in told


async def test_the_code_cannot_make_namespaces_of_its_own(kernel: Kernel) -> None:
    """unshare(2) with a new user namespace (alone, or with mount or network) is refused,
    and without one the code has no capability to make any."""
    tried = await _json(
        kernel,
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n_result = {}\n"
        "for name, flags in [('user', 0x10000000), ('user+mount', 0x10020000),\n"
        "                    ('user+net', 0x50000000), ('mount', 0x20000), ('net', 0x40000000)]:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(0 if libc.unshare(flags) == 0 else 100 + ctypes.get_errno())\n"
        "    _result[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n",
    )
    assert isinstance(tried, dict)
    assert all(code >= 100 for code in tried.values()), tried  # every one failed
    # From the host: the sandbox's processes all still share the one user namespace
    # bwrap made (nothing made another).
    namespaces = {os.readlink(f"/proc/{pid}/ns/user") for pid in kernel.processes()[1:]}
    mine = os.readlink("/proc/self/ns/user")
    assert mine not in namespaces and len(namespaces) <= 2  # bwrap's and, with
    # --disable-userns, the nested one it locks


async def test_dev_shm_is_bounded(kernel: Kernel) -> None:
    """/dev/shm is a tmpfs of its own with a size, not a folder of /dev's unbounded one."""
    filled = await _json(
        kernel,
        "import errno\n_result = {'written': 0}\n"
        "try:\n"
        "    with open('/dev/shm/fill', 'wb') as f:\n"
        "        for _ in range(512):\n"
        "            f.write(b'x' * (1 << 20))\n"
        "            f.flush()\n"
        "            _result['written'] += 1 << 20\n"
        "except OSError as e:\n"
        "    _result['error'] = errno.errorcode[e.errno]\n"
        "import os\n_result['dev'] = os.access('/dev', os.W_OK)\n"
        "_result['null'] = open('/dev/null', 'w').write('still a sink')\n",
    )
    assert isinstance(filled, dict)
    assert filled.get("error") in ("ENOSPC", "EFBIG"), filled
    assert filled["written"] <= SHM_BYTES
    assert filled["dev"] is False  # nothing else under /dev to fill
    assert filled["null"] == len("still a sink")
    # From the host: the sandbox's /dev/shm holds at most its size.
    inner = kernel.processes()[-1]
    usage = os.statvfs(f"/proc/{inner}/root/dev/shm")
    assert (usage.f_blocks - usage.f_bfree) * usage.f_frsize <= SHM_BYTES
    assert usage.f_blocks * usage.f_frsize == SHM_BYTES


class _Sampler:
    """The most memory the sandbox held, as the host sees it: the sum of its processes'
    RSS (from /proc) and its tmpfs' pages, sampled every 5 ms on a thread."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.most = 0
        #: The same with each process's proportional share (PSS) for RSS: a page a fork
        #: shares with its parent counted once, not in each.
        self.most_shared_once = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            pids = self.kernel.processes()
            tmpfs = 0
            if pids:
                for path in ("tmp", "dev/shm"):
                    with contextlib.suppress(OSError):
                        usage = os.statvfs(f"/proc/{pids[-1]}/root/{path}")
                        tmpfs += (usage.f_blocks - usage.f_bfree) * usage.f_frsize
            self.most = max(self.most, tmpfs + sum(_kib(p, "status", "VmRSS:") for p in pids))
            shared_once = tmpfs + sum(_kib(p, "smaps_rollup", "Pss:") for p in pids)
            self.most_shared_once = max(self.most_shared_once, shared_once)


def _kib(pid: int, name: str, key: str) -> int:
    for line in _host_read(pid, name).decode().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


#: Four children of 200 MiB each: under every process's own limit (RLIMIT_AS), over the
#: container's 512 MiB together.
CHILDREN = (
    "import os, time\n"
    "kids = []\n"
    "for _ in range(4):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        held = b'\\x01' * (200 << 20)\n"
    "        time.sleep(8)\n"
    "        os._exit(0)\n"
    "    kids.append(pid)\n"
    "for pid in kids:\n"
    "    os.waitpid(pid, 0)\n"
)


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup", "watch"])
async def test_forked_children_share_the_containers_memory_bound(
    bwrap: None, containers: Path, cgroup: bool
) -> None:
    limits = replace(SMALL, memory_bytes=512 << 20, call_timeout=20)
    kernel = await started(containers, "cntr_children", limits, cgroup=cgroup)
    try:
        if cgroup and kernel.bounded_by != "cgroup":
            unavailable(f"no cgroup can be made here: {cgroups.support()[1]}")
        assert kernel.bounded_by == ("cgroup" if cgroup else "watch")
        with _Sampler(kernel) as sampler:
            outcome = await kernel.run(CHILDREN)
        assert (outcome.ended, outcome.bound, outcome.restarted) == ("limit", "memory", True)
        assert outcome.error is not None
        assert "used more than its 512 MiB of memory" in outcome.error
        # From the host: the sum never went far past the bound (the watch looks every
        # 5-50 ms; the cgroup's OOM killer acts at the bound itself). RSS counts the pages
        # each child shares with the kernel (its interpreter) once per child: 4 x 16 MiB.
        slack = (32 if cgroup else 192) << 20
        assert sampler.most_shared_once <= limits.memory_bytes + slack, sampler.most_shared_once
        assert sampler.most <= limits.memory_bytes + slack + (96 << 20), sampler.most
        assert sampler.most > limits.memory_bytes * 3 // 4  # the attack did run
        after = await kernel.run("print('fine')")
        assert (after.ended, after.logs) == ("ok", "fine\n")
    finally:
        await kernel.close()


async def test_tmpfs_pages_count_in_the_memory_bound(bwrap: None, containers: Path) -> None:
    """What /tmp and /dev/shm hold is memory: 120 MiB there and 200 MiB in the kernel pass
    a 256 MiB bound, with a cgroup or without."""
    limits = replace(SMALL, memory_bytes=256 << 20, file_bytes=64 << 20, call_timeout=20)
    for cgroup in (True, False):
        kernel = await started(containers, f"cntr_tmpfs_{cgroup}", limits, cgroup=cgroup)
        try:
            outcome = await kernel.run(
                "import time\n"
                "for name in ('/tmp/a', '/dev/shm/b'):\n"
                "    with open(name, 'wb') as f:\n"
                "        f.write(b'x' * (60 << 20))\n"
                "held = b'\\x01' * (200 << 20)\n"
                "time.sleep(3)\n"
            )
            assert (outcome.ended, outcome.bound) == ("limit", "memory"), (cgroup, outcome)
        finally:
            await kernel.close()


async def test_nothing_the_code_left_running_goes_on_between_calls(kernel: Kernel) -> None:
    """A thread and a child that write a file every few milliseconds run during calls only:
    between calls every process of the code's is stopped (seen from the host)."""
    started_writers = await kernel.run(
        "import os, threading, time\n"
        "def write(name):\n"
        "    while True:\n"
        "        with open(name, 'a') as f:\n"
        "            f.write('x')\n"
        "        time.sleep(0.005)\n"
        "threading.Thread(target=write, args=('thread.txt',), daemon=True).start()\n"
        "if os.fork() == 0:\n"
        "    write('child.txt')\n"
        "time.sleep(0.2)\n"
    )
    assert started_writers.ended == "ok", started_writers
    sizes = [_sizes(kernel.directory)]
    await asyncio.sleep(0.5)
    sizes.append(_sizes(kernel.directory))
    assert sizes[0] == sizes[1] and all(sizes[0].values()), sizes
    code_pids = kernel.processes()[2:]  # not bwrap's two
    assert code_pids and all(_state(p) == "T" for p in code_pids)
    # The next call lets them run again.
    again = await kernel.run("import time\ntime.sleep(0.2)")
    assert again.ended == "ok"
    grown = _sizes(kernel.directory)
    assert all(grown[name] > sizes[1][name] for name in grown), (sizes, grown)


def _sizes(directory: Path) -> dict[str, int]:
    return {name: (directory / name).stat().st_size for name in ("thread.txt", "child.txt")}


def _state(pid: int) -> str:
    return _host_read(pid, "stat").rpartition(b")")[2].split()[0].decode()


FORGE = (
    "import json, os, struct, sys\n"
    "def frame(message):\n"
    "    body = json.dumps(message).encode()\n"
    "    return struct.pack('>I', len(body)) + body\n"
    "args = open('/proc/self/cmdline', 'rb').read().split(b'\\0')\n"
    "reply_fd = int(args[args.index(b'/.parley/kernel.py') + 2])\n"
    "call = CALL\n"
    "forged = {'call': call, 'logs': 'forged\\n', 'cut': 0, 'error': None, 'kind': 'ok',\n"
    "          'images': []}\n"
    "os.write(reply_fd, frame(forged))\n"
    "print('real')\n"
)


async def test_a_forged_reply_answers_no_other_call(kernel: Kernel) -> None:
    """The code shares the kernel's process and its reply pipe, so it can write frames. A
    frame that names another call is dropped; one that names its own call (read from the
    kernel's frames) shapes only that call's reply, as its printed output would: the
    kernel's real reply is dropped in its turn, and the next call gets its own."""
    wrong = await kernel.run(FORGE.replace("CALL", "'0123456789abcdef'"))
    assert (wrong.ended, wrong.logs) == ("ok", "real\n")
    own = await kernel.run(
        FORGE.replace(
            "CALL",
            "next(f.f_locals['request']['call'] for f in iter_frames() if 'request' in f.f_locals)",
        ).replace(
            "call = ",
            "def iter_frames():\n    f = sys._getframe()\n    while f:\n        yield f\n"
            "        f = f.f_back\ncall = ",
        )
    )
    assert (own.ended, own.logs) == ("ok", "forged\n")
    after = await kernel.run("print('next')")
    assert (after.ended, after.logs, after.restarted) == ("ok", "next\n", False)


async def test_thousands_of_folders_do_not_switch_the_disk_watch_off(
    bwrap: None, containers: Path
) -> None:
    """5,000 folders, then a writer past the disk bound, with the server's open-file limit
    a little above what it holds: the watch walks /mnt/data with a bounded number of
    descriptors, so it stops the writer at the bound (it died of EMFILE before)."""
    limits = replace(SMALL, disk_files=20_000, call_timeout=20)
    kernel = await started(containers, "cntr_folders", limits)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (held + 48, hard))
    try:
        outcome = await kernel.run(
            "import os\n"
            "for i in range(5000):\n"
            "    os.makedirs(f'd{i % 50}/e{i}')\n"
            "n = 0\n"
            "while True:\n"
            "    with open(f'fill{n}', 'wb') as f:\n"
            "        f.write(b'x' * (1 << 20))\n"
            "    n += 1\n"
        )
        assert (outcome.ended, outcome.bound) == ("limit", "disk"), outcome
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await kernel.close()
    # From the host: the files stopped near the bound. How far past it depends on how long
    # a walk of 5,000 folders takes (seconds on a loaded machine, at about 1 MB a write);
    # a watch that had died would have let the writer run its 20 s, gigabytes.
    used = files.usage(kernel.directory)
    assert SMALL.disk_bytes < used < SMALL.disk_bytes + (192 << 20), used
    assert len(os.listdir("/proc/self/fd")) <= held + 2


async def test_a_watch_that_cannot_look_stops_the_call(bwrap: None, containers: Path) -> None:
    """The server out of descriptors: the watch cannot walk /mnt/data, and stops the call
    (fail closed) instead of letting it run unmeasured (before, its thread died and the
    call ran to its end)."""
    kernel = await started(containers, "cntr_blind", replace(SMALL, call_timeout=10))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        call = asyncio.ensure_future(
            kernel.run("import time\ntime.sleep(3)\nprint('ran unwatched')")
        )
        await asyncio.sleep(0.5)  # the call runs, watched
        # The limit bounds a new descriptor's number: at the lowest free one, no file
        # opens, and the watch's next look (within 0.15 s) cannot walk /mnt/data.
        resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_descriptor(), hard))
        try:
            await asyncio.sleep(0.6)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        outcome = await call
        assert (outcome.ended, outcome.restarted) == ("limit", True), outcome
        assert outcome.error is not None
        assert outcome.error.startswith("the server could not check the container's bounds")
        assert "ran unwatched" not in outcome.logs
        after = await kernel.run("print('watched again')")
        assert (after.ended, after.logs) == ("ok", "watched again\n")
    finally:
        await kernel.close()


#: Calls the seccomp filter refuses, by x86-64 and AArch64 number, with arguments that
#: would otherwise do something (or fail for another reason than EPERM).
REFUSED = ["ptrace", "io_uring_setup", "bpf", "keyctl", "userfaultfd", "perf_event_open",
           "add_key", "mount", "unshare", "setns", "open_by_handle_at", "init_module"]  # fmt: skip


async def test_the_system_calls_a_kernel_bug_hides_behind_are_refused(kernel: Kernel) -> None:
    """Each answers EPERM before the kernel's code for it runs (io_uring, eBPF, perf
    events, userfaultfd, the key rings, ptrace, mounts, namespaces, file handles,
    modules); clone3 answers ENOSYS and forks and threads still work through clone."""
    column = 0 if platform.machine() == "x86_64" else 1
    if seccomp.program() is None:
        unavailable(f"no seccomp filter for {platform.machine()}")
    numbers = {name: seccomp.DENIED[name][column] for name in REFUSED}
    numbers["clone3"] = seccomp.MISSING["clone3"][column]
    tried = await _json(
        kernel,
        "import ctypes, errno, os, threading\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "_result = {}\n"
        f"for name, number in {numbers!r}.items():\n"
        "    ctypes.set_errno(0)\n"
        "    done = libc.syscall(number, 0, 0, 0, 0, 0)\n"
        "    _result[name] = errno.errorcode.get(ctypes.get_errno()) if done < 0 else 'ran'\n"
        "t = threading.Thread(target=lambda: None)\nt.start()\nt.join()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    os._exit(7)\n"
        "_result['fork'] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n",
    )
    assert isinstance(tried, dict)
    assert tried.pop("clone3") == "ENOSYS"
    assert tried.pop("fork") == 7
    assert tried == dict.fromkeys(REFUSED, "EPERM")


def test_the_filter_refuses_exactly_its_calls_for_each_machine() -> None:
    """The program's jumps land where they should: every denied number goes to EPERM, the
    ENOSYS ones to ENOSYS, anything else to ALLOW, and another ABI to ENOSYS (read by a
    small interpreter of the three kinds of instruction the filter uses)."""
    for machine, column in (("x86_64", 0), ("aarch64", 1)):
        program = seccomp.program(machine)
        assert program is not None
        arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[machine]
        for name, numbers in seccomp.DENIED.items():
            assert _run_filter(program, arch, numbers[column]) == 0x00050000 | 1, name
        assert _run_filter(program, arch, seccomp.MISSING["clone3"][column]) == 0x00050000 | 38
        for allowed in (0, 1, 39, 56, 57, 59, 60, 221, 231, 435 - 1):
            if allowed not in {n[column] for n in seccomp.DENIED.values()} | {172, 173}:
                assert _run_filter(program, arch, allowed) == 0x7FFF0000, (machine, allowed)
        assert _run_filter(program, 0x40000003, 1) == 0x00050000 | 38  # i386
    x86 = seccomp.program("x86_64")
    assert x86 is not None
    assert _run_filter(x86, 0xC000003E, 0x40000000 | 39) == 0x00050000 | 38  # x32
    assert seccomp.program("riscv64") is None


def _run_filter(program: bytes, arch: int, nr: int) -> int:
    entries = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    data = {0: nr, 4: arch}
    accumulator, pc = 0, 0
    while True:
        code, jt, jf, k = entries[pc]
        if code == 0x20:
            accumulator = data[k]
        elif code == 0x15:
            pc += jt if accumulator == k else jf
        elif code == 0x35:
            pc += jt if accumulator >= k else jf
        elif code == 0x06:
            return k
        pc += 1


def _lowest_free_descriptor() -> int:
    """The number the next opened file would get (the kernel gives the lowest free one)."""
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    return fd
