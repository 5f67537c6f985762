"""The cgroup that bounds a sandbox as a whole: made, limited, joined and removed for real
where this machine delegates one; the v2 layout's writes on a folder laid out as a
delegated v2 cgroup (no v2 memory controller runs here to try them on); and a sandbox that
requires one refusing to start without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from parley.sandbox import cgroups
from parley.sandbox.runtime import Kernel, SandboxError
from tests.sandbox.conftest import SMALL, sandbox_python
from tests.unavailable import unavailable


def test_a_group_bounds_memory_and_processes_and_leaves_nothing(bwrap: None) -> None:
    found, said = cgroups.support()
    if found is None:
        unavailable(f"no cgroup can be made here: {said}")
    group = cgroups.Group.make(found, memory_bytes=96 << 20, processes=12)
    assert isinstance(group, cgroups.Group), group
    try:
        if found.version == 2:
            assert (group.memory_path / "memory.max").read_text().strip() == str(96 << 20)
            assert (group.memory_path / "pids.max").read_text().strip() == "12"
        else:
            limit = (group.memory_path / "memory.limit_in_bytes").read_text()
            assert int(limit) == 96 << 20
            if group.pids_path is not None:
                assert (group.pids_path / "pids.max").read_text().strip() == "12"
        # A process in it that allocates past the bound is killed by the OOM killer, and
        # the group counts the kill.
        hog = subprocess.Popen(
            [sys.executable, "-c", "import time\ntime.sleep(0.3)\nb = b'x' * (300 << 20)"]
        )
        assert group.add([hog.pid])
        assert group.pids() == [hog.pid]
        assert hog.wait(20) == -9
        assert group.oom_kills() >= 1
    finally:
        group.remove()
    assert not group.memory_path.exists()
    assert group.pids_path is None or not group.pids_path.exists()


def test_the_v2_layout_is_written_as_a_delegated_cgroup_expects(tmp_path: Path) -> None:
    own = tmp_path / "parley.service"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpu io\n")
    found, why = cgroups._v2(own)
    assert found is None
    assert why == (
        f"the server's cgroup ({own}) is not delegated the memory and pids controller "
        "(systemd: Delegate=yes on the unit)"
    )
    (own / "cgroup.controllers").write_text("cpu io memory pids\n")
    (own / "cgroup.subtree_control").write_text("")
    found, why = cgroups._v2(own)
    assert found == cgroups.Support(2, own, None), why
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    group = cgroups.Group.make(found, memory_bytes=1 << 30, processes=65)
    assert isinstance(group, cgroups.Group)
    assert group.memory_path.parent == own
    assert group.memory_path.name.startswith("parley-sandbox-")
    written = {p.name: p.read_text() for p in group.memory_path.iterdir()}
    assert written == {"memory.max": str(1 << 30), "memory.swap.max": "0", "pids.max": "65"}
    assert group.bounds_processes
    for name in written:
        (group.memory_path / name).unlink()  # a real cgroup's files go with it
    group.remove()
    assert not group.memory_path.exists()


async def test_a_sandbox_that_requires_a_cgroup_does_not_start_without_one(
    bwrap: None, containers: Path
) -> None:
    with pytest.raises(SandboxError, match="needs a cgroup"):
        await Kernel.start(
            directory=containers / "cntr_required",
            limits=SMALL,
            python=sandbox_python(),
            label="cntr_required",
            cgroup=False,
            require_cgroup=True,
        )
    assert not (containers / ".pids").exists() or not list((containers / ".pids").iterdir())
