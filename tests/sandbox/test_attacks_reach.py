"""The escape attempts of the security review that reach for what is outside the sandbox:
another container's files, any place to write but /mnt/data, the kernel's settings and the
rest of /proc, and the network.

Each test runs its attack as model-written code would, inside a real bubblewrap sandbox
through ``Kernel.run``, then checks from the host (its files and their inotify events, its
sockets, its /proc) that the attack was contained, not only what the code says of itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import struct
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from parley.sandbox import files
from parley.sandbox.runtime import Kernel
from tests.sandbox.attacks import (
    HELPERS,
    _digest,
    _existing,
    _failed,
    _first_chunk,
    _host,
    _Inotify,
    _put_back,
    _report,
    _within,
)

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
