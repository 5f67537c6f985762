"""A server run as root runs its sandboxes as an ordinary host uid (``nobody``'s by
default), so that nothing the code reaches is checked against root's uid; where that uid
cannot reach the sandbox's Python or the containers' folder, it says so and runs them as
root. Checked from the host: the uid of every process of the sandbox, the owner of the
files on both sides."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.config import Settings
from parley.sandbox import files
from parley.sandbox.probe import sandbox_user
from parley.sandbox.runtime import Kernel
from tests.sandbox.conftest import SMALL

SYSTEM_PYTHON = Path("/usr/bin/python3")
NOBODY = 65534


@pytest.fixture
def passable() -> Iterator[Path]:
    """A folder another uid may pass through (the test's own tmp_path may not be)."""
    if os.geteuid() != 0 or not SYSTEM_PYTHON.exists():
        pytest.skip("runs as root, with the system's Python for the sandbox")
    folder = Path(tempfile.mkdtemp(prefix="parley-users-", dir="/tmp"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _uids(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return line.split(":", 1)[1].split()[0]
    return "?"


async def test_a_sandbox_run_as_nobody_has_no_process_of_roots(bwrap: None, passable: Path) -> None:
    settings = Settings(
        code_interpreter_python=SYSTEM_PYTHON, code_interpreter_dir=passable / "containers"
    )
    user, said = sandbox_user(settings)
    assert (user, said) == (NOBODY, f"uid {NOBODY}")
    directory = passable / "containers" / "cntr_nobody"
    directory.mkdir()
    os.chown(directory, NOBODY, NOBODY)
    kernel = await Kernel.start(
        directory=directory, limits=SMALL, python=SYSTEM_PYTHON, label="cntr_nobody", user=user
    )
    try:
        files.write(directory, "given/in.txt", b"from the server")  # as root
        outcome = await kernel.run(
            "import os\nprint(os.getuid(), open('given/in.txt').read())\n"
            "_ = open('out.txt', 'w').write('from the code')"
        )
        assert (outcome.ended, outcome.logs) == ("ok", "1000 from the server\n"), outcome
        # From the host: every process of the sandbox, bwrap's included, is nobody's.
        assert {_uids(pid) for pid in kernel.processes()} == {str(NOBODY)}
        for name in ("out.txt", "given", "given/in.txt"):
            assert (directory / name).stat().st_uid == NOBODY, name
        assert files.read(directory, "out.txt", most=100) == b"from the code"
    finally:
        await kernel.close()


def test_a_uid_that_cannot_reach_the_python_runs_sandboxes_as_root_and_says_why(
    bwrap: None, passable: Path
) -> None:
    hidden = passable / "hidden"
    hidden.mkdir(mode=0o700)
    python = hidden / "env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(SYSTEM_PYTHON)
    (hidden / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    settings = Settings(
        code_interpreter_python=python, code_interpreter_dir=passable / "containers"
    )
    user, said = sandbox_user(settings)
    assert user is None
    assert said.startswith(f"root, since uid {NOBODY} cannot run a sandbox here (")
    assert str(hidden / "env") in said and "Permission denied" in said
    assert sandbox_user(Settings(code_interpreter_uid=0))[1] == (
        "root (PARLEY_CODE_INTERPRETER_UID=0)"
    )
