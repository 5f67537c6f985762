"""A kernel as a notebook: state between calls, echoed values, tracebacks, figures, output
caps, timeouts and restarts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from parley.sandbox.runtime import Kernel
from tests.sandbox.conftest import SMALL, assert_gone, read_text, started


async def test_variables_are_kept_between_calls_and_a_final_expression_is_echoed(
    kernel: Kernel,
) -> None:
    first = await kernel.run("x = 20\nprint('set')")
    assert (first.ended, first.logs, first.error, first.restarted) == ("ok", "set\n", None, False)
    second = await kernel.run("y = x + 1\ny * 2")
    assert (second.ended, second.logs) == ("ok", "42\n")
    third = await kernel.run("None")
    assert third.logs == ""
    assert (await kernel.run("'a' + 'b'")).logs == "'ab'\n"


async def test_an_exception_gives_its_traceback_without_the_kernels_frames(
    kernel: Kernel,
) -> None:
    outcome = await kernel.run("def f():\n    return 1 / 0\n\nf()")
    assert outcome.ended == "error"
    assert outcome.restarted is False
    assert outcome.error is not None
    assert outcome.error.startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in outcome.error
    assert "return 1 / 0" in outcome.error  # the cell's own source line
    assert "kernel.py" not in outcome.error
    syntax = await kernel.run("def (")
    assert syntax.ended == "error"
    assert syntax.error is not None and "SyntaxError" in syntax.error
    assert "kernel.py" not in syntax.error
    exits = await kernel.run("import sys; sys.exit(3)")
    assert exits.ended == "error" and "SystemExit" in (exits.error or "")
    assert (await kernel.run("1 + 1")).logs == "2\n"  # still the same kernel


async def test_stdout_and_stderr_come_in_order_and_are_cut_at_the_cap(kernel: Kernel) -> None:
    ordered = await kernel.run("import sys\nprint('a')\nprint('b', file=sys.stderr)\nprint('c')")
    assert ordered.logs == "a\nb\nc\n"
    flood = await kernel.run("for i in range(200_000):\n    print('x' * 50)")
    assert flood.ended == "ok"
    kept, _, note = flood.logs.rpartition("\n[output cut: ")
    assert len(kept.encode()) <= SMALL.output_bytes
    cut = 200_000 * 51 - len(kept.encode())
    assert note == f"{cut:,} more bytes not shown]"


async def test_writes_to_the_real_stdout_and_forged_replies_do_not_reach_the_host(
    kernel: Kernel,
) -> None:
    direct = await kernel.run("import os\nfor _ in range(2000):\n    os.write(1, b'y' * 65536)")
    assert direct.ended == "ok" and direct.logs == ""
    stderr = await kernel.run("import os\nfor _ in range(200):\n    os.write(2, b'z' * 65536)")
    assert stderr.ended == "ok" and stderr.logs == ""
    # The code finds the reply pipe and writes a frame far past the cap.
    forged = await kernel.run(
        "import os, struct, sys\n"
        "fd = int(open('/proc/self/cmdline','rb').read().split(b'\\0')[4])\n"
        "os.write(fd, struct.pack('>I', 2**31) + b'{}')\n"
    )
    assert forged.ended == "crashed" and forged.restarted is True
    assert "malformed" in (forged.error or "")
    after = await kernel.run("print('fresh')")
    assert (after.ended, after.logs, after.restarted) == ("ok", "fresh\n", False)


async def test_an_endless_loop_is_interrupted_and_the_variables_are_kept(kernel: Kernel) -> None:
    await kernel.run("kept = [1, 2, 3]")
    loop = await kernel.run("while True:\n    pass")
    assert loop.ended == "timeout" and loop.restarted is False
    assert loop.error == "the call ran past its 2 s limit and was interrupted"
    assert SMALL.call_timeout <= loop.took < SMALL.call_timeout + 1.5
    assert (await kernel.run("kept")).logs == "[1, 2, 3]\n"


async def test_code_that_ignores_the_interrupt_is_killed_and_the_kernel_restarts(
    kernel: Kernel,
) -> None:
    await kernel.run("kept = 1")
    before = kernel.processes()
    stubborn = await kernel.run(
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "while True:\n    time.sleep(0.1)"
    )
    assert stubborn.ended == "timeout" and stubborn.restarted is True
    assert "did not stop when interrupted" in (stubborn.error or "")
    assert_gone(before)
    after = await kernel.run("'kept' in globals()")
    assert (after.logs, after.restarted) == ("False\n", False)  # the restart was told once


async def test_a_kernel_that_dies_is_started_again_with_restarted_told(kernel: Kernel) -> None:
    await kernel.run("kept = 1")
    died = await kernel.run("import os\nos._exit(7)")
    assert died.ended == "crashed" and died.restarted is True
    assert died.error == (
        "the container's Python stopped (exited with status 7) and was restarted: "
        "its variables are lost"
    )
    assert kernel.alive is False
    again = await kernel.run("'kept' in globals()")
    assert (again.ended, again.logs, again.restarted) == ("ok", "False\n", False)
    assert kernel.alive is True


async def test_a_kernel_killed_between_calls_is_restarted_on_the_next(
    kernel: Kernel, containers: Path
) -> None:
    import os
    import signal

    await kernel.run("kept = 1")
    pids = kernel.processes()
    os.kill(pids[-1], signal.SIGKILL)  # the sandbox's Python
    assert_gone(pids)
    outcome = await kernel.run("'kept' in globals()")
    assert (outcome.ended, outcome.logs, outcome.restarted) == ("ok", "False\n", True)


async def test_open_matplotlib_figures_come_back_as_png(scientific: Path, containers: Path) -> None:
    # matplotlib's first import builds its font cache: seconds on a loaded machine.
    kernel = await started(containers, "cntr_plot", replace(SMALL, call_timeout=60.0))
    try:
        outcome = await kernel.run(
            "import matplotlib.pyplot as plt\n"
            "plt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\n"
            "plt.figure(); plt.bar(['a', 'b'], [3, 5])\n"
            "print('drawn')"
        )
        assert (outcome.ended, outcome.error, outcome.logs) == ("ok", None, "drawn\n")
        assert len(outcome.images) == 2
        assert all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in outcome.images)
        again = await kernel.run("len(plt.get_fignums())")
        assert (again.logs, again.images) == ("0\n", [])  # closed once sent
        numpy = await kernel.run("import numpy as np\nnp.arange(4).sum()")
        assert numpy.logs.strip() in ("6", "np.int64(6)")
    finally:
        await kernel.close()


async def test_the_kernel_runs_under_its_limits(kernel: Kernel) -> None:
    python = kernel.processes()[-1]
    limits = read_text(f"/proc/{python}/limits")
    rows = {line[:26].strip(): line[26:].split()[:2] for line in limits.splitlines()[1:]}
    assert rows["Max address space"] == [str(SMALL.memory_bytes)] * 2
    assert rows["Max processes"] == [str(SMALL.processes)] * 2
    assert rows["Max open files"] == [str(SMALL.open_files)] * 2
    assert rows["Max file size"] == [str(SMALL.file_bytes)] * 2
    assert rows["Max core file size"] == ["0", "0"]
    assert rows["Max cpu time"] == [str(SMALL.cpu_seconds), str(SMALL.cpu_seconds + 2)]


async def test_close_leaves_no_process_and_no_pid_file(bwrap: None, containers: Path) -> None:
    kernel = await started(containers, "cntr_closed")
    pids = kernel.processes()
    assert len(pids) == 3  # bwrap, its init in the sandbox, the Python
    assert (containers / ".pids" / "cntr_closed.pid").exists()
    assert 5 << 20 < kernel.memory_bytes() < 64 << 20
    await kernel.close()
    assert_gone(pids)
    assert not (containers / ".pids" / "cntr_closed.pid").exists()
    assert kernel.alive is False and kernel.memory_bytes() == 0
    assert (containers / "cntr_closed").stat().st_mode & 0o777 == 0o700


async def test_a_call_given_up_by_its_caller_does_not_answer_the_next(kernel: Kernel) -> None:
    import asyncio
    import contextlib

    await kernel.run("kept = 1")
    pids = kernel.processes()
    slow = asyncio.ensure_future(kernel.run("import time\ntime.sleep(1)\nprint('late')"))
    await asyncio.sleep(0.3)
    slow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slow
    assert_gone(pids)
    after = await kernel.run("print('next')")
    assert (after.ended, after.logs, after.restarted) == ("ok", "next\n", True)


async def test_close_ends_a_running_call_at_once(bwrap: None, containers: Path) -> None:
    import asyncio

    kernel = await started(containers, "cntr_busy")
    pids = kernel.processes()
    busy = asyncio.ensure_future(kernel.run("import time\ntime.sleep(30)"))
    await asyncio.sleep(0.3)
    await asyncio.wait_for(kernel.close(), 5)
    outcome = await asyncio.wait_for(busy, 5)
    assert (outcome.ended, outcome.restarted) == ("crashed", True)
    assert outcome.error == "the container's Python was stopped: the container was closed"
    assert_gone(pids)
    after = await kernel.run("1")
    assert after.ended == "crashed" and kernel.alive is False


async def test_a_python_that_cannot_run_is_a_sandbox_error(bwrap: None, containers: Path) -> None:
    import pytest

    from parley.sandbox.runtime import SandboxError

    with pytest.raises(SandboxError, match="did not start"):
        await Kernel.start(
            directory=containers / "cntr_bad",
            limits=SMALL,
            python=Path("/nonexistent/bin/python"),
            label="cntr_bad",
        )
    with pytest.raises(ValueError):
        await Kernel.start(
            directory=containers / "x", limits=SMALL, python=Path("/x"), label="../x"
        )
