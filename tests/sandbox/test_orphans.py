"""A server killed with SIGKILL leaves no sandbox running; ``sweep_orphans`` cleans up what
a dead server's pid files name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from parley.sandbox.command import command, holding, kernel_script, launch
from parley.sandbox.pidfiles import sweep_orphans
from parley.sandbox.probe import bwrap_path
from tests.sandbox.conftest import SMALL, alive, assert_gone, sandbox_python

_OWNER = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from parley.sandbox.runtime import Kernel
    from tests.sandbox.conftest import SMALL

    async def main():
        root = Path(sys.argv[1])
        python = Path(sys.argv[2])
        kernels = [
            await Kernel.start(directory=root / f"cntr_{i}", limits=SMALL, python=python,
                               label=f"cntr_{i}")
            for i in range(2)
        ]
        print(json.dumps([k.processes() for k in kernels]), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def test_a_killed_owner_leaves_no_sandbox_and_sweep_removes_its_pid_files(
    bwrap: None, containers: Path
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(containers), str(sandbox_python())],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        trees = json.loads(line)
        pids = [pid for tree in trees for pid in tree]
        assert len(pids) == 6 and all(alive(pid) for pid in pids)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        assert_gone(pids)  # --die-with-parent
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    assert len(list((containers / ".pids").glob("*.pid"))) == 2
    assert sweep_orphans(containers) == 0  # nothing left to kill
    assert list((containers / ".pids").glob("*.pid")) == []


def test_sweep_kills_a_sandbox_whose_server_is_gone_and_spares_a_reused_pid(
    bwrap: None, containers: Path
) -> None:
    directory = containers / "cntr_orphan"
    directory.mkdir(mode=0o700)
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    kernel_fd = holding(kernel_script())
    args = command(
        bwrap=bwrap_path(),
        python=sandbox_python(),
        directory=directory,
        limits=SMALL,
        fds=(request_r, reply_w),
        kernel_fd=kernel_fd,
    )
    args.remove("--die-with-parent")  # on purpose: this one outlives its "server"
    argv, args_fd = launch(args)
    orphan = subprocess.Popen(
        argv,
        pass_fds=(request_r, reply_w, kernel_fd, args_fd),
        start_new_session=True,
        stderr=subprocess.DEVNULL,
        env={},
    )
    gone_server = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_server.wait()
    for fd in (request_r, reply_w, kernel_fd, args_fd):
        os.close(fd)
    try:
        assert os.read(reply_r, 64).endswith(b'{"ready": true}')
        pids = [orphan.pid, *_children(orphan.pid)]
        pid_files = containers / ".pids"
        pid_files.mkdir()
        record = {"pid": orphan.pid, "label": "cntr_orphan", "directory": str(directory),
                  "started": _started(orphan.pid),
                  "owner": gone_server.pid, "owner_started": 1}  # fmt: skip
        (pid_files / "cntr_orphan.pid").write_text(json.dumps(record))
        # A pid file naming this very test process (alive, not a sandbox) is not touched:
        # its "server" still runs.
        mine = {"pid": os.getpid(), "label": "cntr_mine", "directory": str(directory),
                "owner": os.getpid(), "owner_started": _started(os.getpid())}  # fmt: skip
        (pid_files / "cntr_mine.pid").write_text(json.dumps(mine))
        # One whose pid is some other program's now: removed, never killed.
        reused = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        stale = {"pid": reused.pid, "label": "cntr_reused", "directory": str(directory),
                 "started": _started(orphan.pid),  # a bwrap's that had this pid before
                 "owner": gone_server.pid, "owner_started": 1}  # fmt: skip
        (pid_files / "cntr_reused.pid").write_text(json.dumps(stale))
        try:
            assert sweep_orphans(containers) == 1
            orphan.wait(10)
            assert_gone(pids)
            assert reused.poll() is None
        finally:
            reused.kill()
            reused.wait()
        assert sorted(p.name for p in pid_files.iterdir()) == ["cntr_mine.pid"]
    finally:
        if orphan.poll() is None:
            os.killpg(orphan.pid, signal.SIGKILL)
            orphan.wait()
        os.close(request_w)
        os.close(reply_r)


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                found += [int(child), *_children(int(child))]
    return found


def _started(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rpartition(b")")[2].split()[19])
