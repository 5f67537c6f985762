"""A server run as an ordinary user (not root): RLIMIT_NPROC, set by the kernel inside its
sandbox's user namespace, bounds each sandbox's processes on its own, and many sandboxes of
the same user together are not held to one sandbox's bound.

Run as root, the test drops to ``nobody`` for a child process that runs the system's Python
(``/usr/bin/python3``) on both sides, host and sandbox: the test venv's may sit where
``nobody`` cannot read."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
NOBODY = 65534

_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from parley.sandbox.limits import Limits
    from parley.sandbox.runtime import Kernel

    LIMITS = Limits(memory_bytes=512 << 20, cpu_seconds=60, processes=8, open_files=64,
                    file_bytes=1 << 20, disk_bytes=1 << 20, call_timeout=5, output_bytes=4096)
    FORKS = (
        "import os, time\\nn = 0\\ntry:\\n    while True:\\n        if os.fork() == 0:\\n"
        "            time.sleep(3)\\n            os._exit(0)\\n        n += 1\\n"
        "except OSError:\\n    pass\\nopen('forks', 'w').write(str(n))"
    )

    async def main():
        root = Path(sys.argv[2])
        kernels = [
            await Kernel.start(directory=root / f"k{i}", limits=LIMITS,
                               python=Path(sys.executable), label=f"k{i}")
            for i in range(12)
        ]
        forks = await kernels[0].run(FORKS)
        bomb = await kernels[1].run("import os\\nwhile True:\\n    os.fork()")
        answers = [(await k.run("6 * 7")).logs for k in kernels]
        report = {"uid": os.getuid(), "forks": (root / "k0" / "forks").read_text(),
                  "ended": [forks.ended, bomb.ended],
                  "answers": answers, "processes": sum(len(k.processes()) for k in kernels)}
        for k in kernels:
            await k.close()
        print(json.dumps(report))

    asyncio.run(main())
    """
)


def _run_as_nobody(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYSTEM_PYTHON), "-c", _SCRIPT, str(ROOT), str(root)],
        preexec_fn=_drop,  # the test's own child, before it runs anything
        env={"PATH": "/usr/bin:/bin"},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _drop() -> None:
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)


def test_rlimit_nproc_bounds_each_sandbox_of_an_ordinary_user(bwrap: None, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the suite runs as an ordinary user: the other fork bomb tests cover it")
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"no {SYSTEM_PYTHON} to run as nobody")
    with tempfile.TemporaryDirectory(prefix="parley-nobody-") as tmp:  # pytest's is 0700
        root = Path(tmp)
        os.chown(root, NOBODY, NOBODY)
        done = _run_as_nobody(root)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["uid"] == NOBODY
    # 8 processes a sandbox: bwrap's init and the kernel, then 6 children (then the
    # sandbox, at its bound, is stopped).
    assert report["forks"] == "6"
    # The bomb: stopped at its bound, or it died out by itself first (each of its processes
    # ends when its fork fails).
    assert report["ended"][0] == "limit" and report["ended"][1] in ("limit", "error")
    # Twelve sandboxes of one user, 36 processes and more: each still answers.
    assert report["answers"] == ["42\n"] * 12
    assert report["processes"] > 8
