"""The host's side of /mnt/data never follows a symlink the sandboxed code planted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parley.sandbox import files
from parley.sandbox.runtime import Kernel


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("a.csv", "a.csv"),
        ("/mnt/data/out/chart.png", "out/chart.png"),
        ("out/chart.png", "out/chart.png"),
        ("name with spaces.txt", "name with spaces.txt"),
    ],
)
def test_safe_path_keeps_a_relative_path(given: str, safe: str) -> None:
    assert files.safe_path(given) == safe


@pytest.mark.parametrize(
    "given",
    ["../x", "a/../../x", "/etc/passwd", "/mnt/data/../x", "a//b", "a/./b", "", "a/", "a\x00b",
     "/mnt/data/", "x" * 300],
)  # fmt: skip
def test_safe_path_refuses_a_path_that_could_leave_the_directory(given: str) -> None:
    with pytest.raises(ValueError):
        files.safe_path(given)


def test_write_read_scan_and_remove(tmp_path: Path) -> None:
    files.write(tmp_path, "out/deep/data.csv", b"a,b\n1,2\n")
    files.write(tmp_path, "top.txt", b"one")
    files.write(tmp_path, "top.txt", b"two")  # replaced
    assert files.read(tmp_path, "/mnt/data/out/deep/data.csv", most=100) == b"a,b\n1,2\n"
    assert files.read(tmp_path, "top.txt", most=100) == b"two"
    found = files.scan(tmp_path)
    assert sorted(found) == ["out/deep/data.csv", "top.txt"]
    assert found["top.txt"].size == 3
    assert found["top.txt"].mtime_ns == (tmp_path / "top.txt").stat().st_mtime_ns
    assert files.usage(tmp_path) == 11
    with pytest.raises(ValueError):
        files.read(tmp_path, "top.txt", most=2)
    with pytest.raises(FileNotFoundError):
        files.read(tmp_path, "missing.txt", most=100)
    assert len(files.scan(tmp_path, most=1)) == 1
    files.remove(tmp_path, "out")
    files.remove(tmp_path, "top.txt")
    assert files.scan(tmp_path) == {}
    assert sorted(os.listdir(tmp_path)) == []


def test_fifos_and_sockets_are_skipped_and_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    assert files.scan(tmp_path) == {}
    with pytest.raises(ValueError):
        files.read(tmp_path, "fifo", most=100)  # and does not block


async def test_symlinks_planted_by_the_code_are_never_followed(
    kernel: Kernel, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret")
    planted = await kernel.run(
        "import os\n"
        "os.symlink('/etc/passwd', 'link')\n"
        f"os.symlink({str(outside)!r}, 'dirlink')\n"
        f"os.symlink({str(outside / 'secret.txt')!r}, 'hostlink')\n"
        "os.mkdir('real')\nopen('real/kept.txt', 'w').write('mine')\n"
        "sorted(os.listdir('.'))"
    )
    assert planted.ended == "ok", planted.error
    directory = kernel.directory
    assert sorted(files.scan(directory)) == ["real/kept.txt"]
    for name in ("link", "hostlink", "dirlink/secret.txt"):
        with pytest.raises(ValueError):
            files.read(directory, name, most=1 << 20)
    with pytest.raises(ValueError):
        files.write(directory, "dirlink/new.txt", b"x")
    assert not (outside / "new.txt").exists()
    with pytest.raises(ValueError):
        files.write(directory, "link", b"x")  # not through it, and not over it either
    assert (directory / "link").is_symlink()
    files.remove(directory, "dirlink")  # the link itself, not what it points at
    assert (outside / "secret.txt").read_text() == "host secret"
    assert files.usage(directory) == 4
    # A folder swapped for a symlink between calls is refused too.
    swapped = await kernel.run(
        f"import os, shutil\nshutil.rmtree('real')\nos.symlink({str(outside)!r}, 'real')"
    )
    assert swapped.ended == "ok"
    with pytest.raises(ValueError):
        files.read(directory, "real/secret.txt", most=100)
    with pytest.raises(ValueError):
        files.write(directory, "real/secret.txt", b"overwritten")
    assert (outside / "secret.txt").read_text() == "host secret"
