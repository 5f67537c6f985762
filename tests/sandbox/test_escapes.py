"""Hostile code against the sandbox: each test runs an attack inside a real bubblewrap
sandbox, then checks from the host (its /proc, its files) that the attack was contained,
not only what the code says of itself."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from parley.sandbox.runtime import SHM_BYTES, Kernel
from tests.sandbox.conftest import started

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
