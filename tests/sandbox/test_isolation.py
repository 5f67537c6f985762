"""What a sandbox cannot reach: the network, the host's files, environment and processes, and
anywhere to write but /mnt/data and its own small /tmp."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from parley.config import data_dir
from parley.sandbox.command import TMP_BYTES
from parley.sandbox.probe import python_roots
from parley.sandbox.runtime import Kernel
from tests.sandbox.conftest import sandbox_python


async def _value(kernel: Kernel, code: str) -> object:
    """What the code's last expression is (printed as JSON by the cell)."""
    outcome = await kernel.run(code + "\nimport json as _j\nprint(_j.dumps(_result))")
    assert outcome.ended == "ok", outcome.error
    return json.loads(outcome.logs)


async def test_no_network_loopback_outside_or_dns(kernel: Kernel) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        tried = await _value(
            kernel,
            "import socket\n_result = {}\n"
            "for name, address in [('loopback', ('127.0.0.1', PORT)), ('outside', ('1.1.1.1', 53)),"
            " ('v6', ('2606:4700:4700::1111', 53))]:\n"
            "    try:\n"
            "        socket.create_connection(address, timeout=1).close()\n"
            "        _result[name] = 'connected'\n"
            "    except OSError as e:\n"
            "        _result[name] = type(e).__name__\n"
            "try:\n"
            "    socket.getaddrinfo('example.com', 80)\n"
            "    _result['dns'] = 'resolved'\n"
            "except OSError as e:\n"
            "    _result['dns'] = type(e).__name__\n"
            "_result['interfaces'] = sorted(n for _, n in socket.if_nameindex())\n".replace(
                "PORT", str(port)
            ),
        )
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing came from the sandbox
    finally:
        listener.close()
    assert isinstance(tried, dict)
    assert tried["loopback"] == "ConnectionRefusedError"  # its own, empty loopback
    assert tried["outside"] in ("OSError", "TimeoutError")  # network unreachable
    assert tried["v6"] in ("OSError", "TimeoutError")
    assert tried["dns"] == "gaierror"
    assert tried["interfaces"] == ["lo"]


async def test_the_hosts_files_are_not_there(kernel: Kernel, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    paths = [
        "/etc/passwd",
        "/etc/shadow",
        "/etc/hostname",
        "/etc/resolv.conf",
        str(secret),
        str(data_dir()),
        str(Path.cwd() / "pyproject.toml"),
        str(Path.cwd() / "parley" / "config" / "settings.py"),
        "/home",
        "/var",
        "/sys",
        "/run",
    ]
    seen = await _value(kernel, f"import os\n_result = [p for p in {paths!r} if os.path.exists(p)]")
    assert seen == []
    # /root and /work hold at most the way to the sandbox's Python (read-only).
    roots = [str(r) for r in python_roots(sandbox_python())]
    listed = await _value(
        kernel,
        "import os\n_result = {}\n"
        "for top in ('/root', '/work', '/etc'):\n"
        "    _result[top] = sorted(os.listdir(top)) if os.path.isdir(top) else []\n",
    )
    assert isinstance(listed, dict)
    for top in ("/root", "/work"):
        allowed = {
            r.removeprefix(top + "/").split("/")[0] for r in roots if r.startswith(top + "/")
        }
        assert set(listed[top]) <= allowed, (top, listed[top])
    assert set(listed["/etc"]) <= {"ld.so.cache", "localtime"}


async def test_the_hosts_environment_is_not_there(
    bwrap: None, containers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.sandbox.conftest import started

    monkeypatch.setenv("PARLEY_TEST_SECRET", "s3cr3t")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:pw@db/x")
    kernel = await started(containers, "cntr_env")
    try:
        environment = await _value(kernel, "import os\n_result = dict(os.environ)")
    finally:
        await kernel.close()
    assert isinstance(environment, dict)
    assert set(environment) == {
        "HOME", "PATH", "LANG", "MPLBACKEND", "MPLCONFIGDIR", "XDG_CACHE_HOME",
        "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
        "PWD",  # bwrap's, for --chdir /mnt/data
    }  # fmt: skip
    assert "s3cr3t" not in json.dumps(environment)


async def test_proc_shows_only_the_sandboxs_own_processes(kernel: Kernel) -> None:
    seen = await _value(
        kernel,
        "import os\n_result = {p: open(f'/proc/{p}/cmdline','rb').read().split(b'\\0')[0]"
        ".decode() for p in os.listdir('/proc') if p.isdigit()}",
    )
    assert isinstance(seen, dict)
    assert str(os.getpid()) not in seen
    assert set(seen) <= {"1", "2", "3"}  # bwrap's init, the kernel, the cell's own reads
    assert {os.path.basename(c) for c in seen.values()} <= {"bwrap", "python", "python3"}


async def test_nothing_is_writable_but_mnt_data_and_a_small_private_tmp(kernel: Kernel) -> None:
    tried = await _value(
        kernel,
        "import os\n_result = {}\n"
        "for path in ('/usr/x', '/x', '/etc/x', '/proc/x', '/mnt/x', '/.parley/x',"
        " '/tmp/x', '/mnt/data/x'):\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        _result[path] = 'written'\n"
        "    except OSError as e:\n"
        "        _result[path] = e.errno\n"
        "try:\n"
        "    with open('/tmp/big', 'wb') as f:\n"
        "        for _ in range(100):\n"
        "            f.write(b'x' * (1 << 20))\n"
        "    _result['tmp'] = 'filled'\n"
        "except OSError as e:\n"
        "    _result['tmp'] = e.errno\n"
        "os.remove('/tmp/big')\n",
    )
    assert isinstance(tried, dict)
    import errno

    assert tried.pop("/tmp/x") == "written"
    assert tried.pop("/mnt/data/x") == "written"
    assert tried.pop("tmp") in (errno.ENOSPC, errno.EFBIG)  # 64 MiB of tmpfs (16 MiB a file)
    assert all(value in (errno.EROFS, errno.EACCES, errno.ENOENT) for value in tried.values()), (
        tried
    )
    assert TMP_BYTES == 64 << 20
