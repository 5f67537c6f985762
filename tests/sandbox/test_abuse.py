"""Code that tries to take the machine down: a fork bomb, a memory bomb, filling the disk,
too many files. Each ends as a clean Outcome, and the container next door is unharmed."""

from __future__ import annotations

from pathlib import Path

from parley.sandbox import files
from parley.sandbox.runtime import Kernel
from tests.sandbox.conftest import SMALL, assert_gone, wait_down_to


async def test_a_fork_bomb_is_bounded_and_the_kernel_restarts(
    kernel: Kernel, neighbour: Kernel
) -> None:
    pids = kernel.processes()
    alone = len(pids)  # the sandbox and its Python, nothing else
    bomb = await kernel.run("import os\nwhile True:\n    os.fork()")
    # Stopped at its bound; or the kernel's own fork failed first and the cell ended, while
    # the bomb's processes (each ending when its fork fails) go on or die out.
    if bomb.ended == "limit":
        assert bomb.restarted is True
        assert bomb.error == (
            "the code reached the container's limit of 32 processes: the container's Python "
            "was restarted and its variables are lost"
        )
        assert_gone(pids)  # the bomb's processes with it
    else:
        assert bomb.ended == "error" and "BlockingIOError" in (bomb.error or ""), bomb
    after = await kernel.run("print(1)")
    if after.ended == "limit":  # the bomb still ran at its bound: stopped now
        assert after.restarted and "limit of 32 processes" in (after.error or "")
        assert_gone(pids)
        after = await kernel.run("print(1)")
    assert (after.ended, after.logs) == ("ok", "1\n")
    # The bomb's last processes die out by themselves (each when its fork fails): on a
    # busy machine that takes a while, and while they hold slots the next code meets a
    # bound it did not reach itself.
    wait_down_to(kernel, alone)
    # Children that hold their slots: the same, once the code meets the bound.
    pids = kernel.processes()
    holders = await kernel.run(
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n        n += 1\n"
        "except OSError:\n    pass\nn"
    )
    assert (holders.ended, holders.restarted) == ("limit", True), holders
    assert_gone(pids)  # the sleepers too
    assert len(kernel.processes()) == 0
    # A few processes are fine.
    few = await kernel.run("import subprocess\nsubprocess.run(['true'], check=True).returncode")
    assert (few.ended, few.logs, few.restarted) == ("ok", "0\n", False)


async def test_code_that_meets_the_process_bound_for_a_moment_goes_on(
    kernel: Kernel, neighbour: Kernel
) -> None:
    """Children up to the bound, a fork that fails, then the children let go: a fork bomb
    holds every slot, this does not, and its call ends with its answer."""
    pids = kernel.processes()
    code = (
        "import os, time\nr, w = os.pipe()\nkids = []\ntry:\n    while True:\n"
        "        pid = os.fork()\n        if pid == 0:\n            os.close(w)\n"
        "            os.read(r, 1)\n            os._exit(0)\n        kids.append(pid)\n"
        "except OSError:\n    pass\ntime.sleep(0.08)\nos.close(w)\n"
        "for pid in kids:\n    os.waitpid(pid, 0)\nlen(kids)"
    )
    for _ in range(3):
        met = await kernel.run(code)
        # 32 a sandbox: bwrap's init, the kernel and its 30 children.
        assert (met.ended, met.logs, met.restarted) == ("ok", "30\n", False), met
    assert kernel.processes() == pids


async def test_a_memory_bomb_ends_at_the_memory_limit(kernel: Kernel, neighbour: Kernel) -> None:
    await kernel.run("kept = 'still here'")
    block = await kernel.run("b = bytearray(2 << 30)")
    assert block.ended == "limit" and block.restarted is False, block
    assert block.error is not None and "MemoryError" in block.error
    assert "more than the container's 512 MiB of memory" in block.error
    growing = await kernel.run("a = []\nwhile True:\n    a.append(' ' * (1 << 20))")
    assert growing.ended in ("limit", "crashed"), growing
    if not growing.restarted:
        after = await kernel.run("del a\nkept")
        assert after.logs == "'still here'\n", after
    assert kernel.memory_bytes() < SMALL.memory_bytes


async def test_filling_the_disk_is_stopped_near_its_limit(
    kernel: Kernel, neighbour: Kernel
) -> None:
    fill = await kernel.run(
        "i = 0\nwhile True:\n    with open(f'f{i}', 'wb') as f:\n"
        "        f.write(b'x' * (1 << 20))\n    i += 1"
    )
    assert fill.ended == "limit" and fill.restarted is True
    assert fill.error == (
        "the files in /mnt/data passed the container's 20 MiB: the container's Python was "
        "restarted and its variables are lost"
    )
    used = files.usage(kernel.directory)
    assert SMALL.disk_bytes < used < SMALL.disk_bytes + (200 << 20)
    # The files stay; the next call says the disk is full until some are removed.
    full = await kernel.run("print(1)")
    assert full.ended == "limit" and "passed the container's 20 MiB" in (full.error or "")
    for name in list(files.scan(kernel.directory)):
        files.remove(kernel.directory, name)
    again = await kernel.run("print(1)")
    assert (again.ended, again.logs) == ("ok", "1\n")


async def test_too_many_files_are_stopped(kernel: Kernel) -> None:
    many = await kernel.run(
        "import os\nos.mkdir('many')\nfor i in range(100_000):\n    open(f'many/{i}', 'w').close()"
    )
    assert many.ended == "limit" and many.restarted is True
    assert "more than 500 files" in (many.error or "")


async def test_a_file_past_the_file_size_limit_fails_to_grow(kernel: Kernel) -> None:
    big = await kernel.run("with open('big', 'wb') as f:\n    f.truncate(1 << 30)")
    assert big.ended == "error" and "File too large" in (big.error or "")


async def test_the_cpu_limit_ends_the_kernel(bwrap: None, containers: Path) -> None:
    from dataclasses import replace

    from tests.sandbox.conftest import started

    kernel = await started(containers, "cntr_cpu", replace(SMALL, cpu_seconds=1, call_timeout=10))
    try:
        spin = await kernel.run("while True:\n    pass")
        assert spin.ended == "limit" and spin.restarted is True
        assert spin.error == (
            "the container's Python used more than its 1 s of CPU and was restarted: "
            "its variables are lost"
        )
        assert spin.took < 5
        assert (await kernel.run("1")).logs == "1\n"
    finally:
        await kernel.close()
