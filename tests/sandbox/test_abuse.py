"""Code that tries to take the machine down: a fork bomb, a memory bomb, filling the disk,
too many files. Each ends as a clean Outcome, and the container next door is unharmed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parley.sandbox import files
from parley.sandbox.runtime import Kernel
from tests.sandbox.conftest import SMALL, assert_gone


async def test_a_fork_bomb_is_bounded(kernel: Kernel, neighbour: Kernel) -> None:
    bomb = await kernel.run("import os\nwhile True:\n    os.fork()")
    assert bomb.ended in ("error", "limit"), bomb
    assert bomb.error is not None
    assert "BlockingIOError" in bomb.error or "processes" in bomb.error
    assert len(kernel.processes()) <= SMALL.processes + 3
    # The bomb's children each fail to fork and end; once the kernel reaps its own, the
    # slots are free again.
    reap = "import os\nwhile True:\n    try:\n        os.wait()\n    except ChildProcessError:\n        break"
    for _ in range(250):
        assert (await kernel.run(reap)).ended == "ok"
        if len(kernel.processes()) <= 3:
            break
        await asyncio.sleep(0.02)
    assert len(kernel.processes()) == 3
    # Children that sleep hold their slots; the kernel still answers.
    holders = await kernel.run(
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n        n += 1\n"
        "except OSError:\n    pass\nn"
    )
    assert holders.ended == "ok"
    assert 0 < int(holders.logs) <= SMALL.processes
    pids = kernel.processes()
    assert len(pids) <= SMALL.processes + 3
    await kernel.close()
    assert_gone(pids)  # the sleepers too


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
