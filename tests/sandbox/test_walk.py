"""The walks of /mnt/data (``tally``, ``scan``, ``remove``) hold a few descriptors whatever
the shape of the tree the sandboxed code made, never follow a symlink, and fail closed when a
folder is moved under them.

The attack they answer: thousands of folders, wide or deep, once made the host's watch thread
run out of descriptors (and silently under-count the disk), and ``remove`` run out of Python
stack. Here the process's own descriptor limit is lowered to a few above what is open, and
real trees are walked under it."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.sandbox import files, walk

WIDE = 5_000
DEEP = 3_000
#: Every how many folders of the trees below holds a file (a few: making files is slow).
EVERY = 50
#: The levels of the deep chain that hold a file "f" of one byte: the bottom too.
DEEP_FILES = [*range(0, DEEP, EVERY), DEEP]
#: The deepest level whose "f" is named by a path of 1,024 bytes at most: "d/" * level + "f".
NAMEABLE = (1024 - 1) // 2


def open_descriptors() -> int:
    """How many descriptors this process holds (the listing's own included, each time)."""
    return len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def few_descriptors(spare: int) -> Iterator[None]:
    """The soft RLIMIT_NOFILE lowered to the descriptors open now plus ``spare``, then put
    back: at least ``spare`` more can be opened meanwhile, and hardly more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_descriptors() + spare, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def make_wide(top: Path) -> None:
    """``WIDE`` sibling folders under top, one in ``EVERY`` holding a file "f" of 2 bytes."""
    top.mkdir()
    for number in range(WIDE):
        folder = top / f"w{number:04}"
        folder.mkdir()
        if number % EVERY == 0:
            (folder / "f").write_bytes(b"ab")


WIDE_FILES = WIDE // EVERY


def make_deep(top: Path, levels: int = DEEP) -> None:
    """A chain of ``levels`` folders "d/d/d/..." under top, with a file "f" of one byte at
    the levels ``DEEP_FILES`` and at the bottom. Made one level at a time from a descriptor:
    the path is too long to name whole."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(levels):
            if level in DEEP_FILES:
                _write(fd, "f", b"x")
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        _write(fd, "f", b"x")
    finally:
        os.close(fd)


def _write(fd: int, name: str, data: bytes) -> None:
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=fd)
    try:
        os.write(out, data)
    finally:
        os.close(out)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A wide tree, walked (not changed) by the tests of this module."""
    top = tmp_path_factory.mktemp("walk") / "wide"
    make_wide(top)
    yield top
    files.remove(top.parent, top.name)


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A deep chain, walked (not changed) by the tests of this module."""
    top = tmp_path_factory.mktemp("walk") / "deep"
    make_deep(top)
    yield top
    # pytest's own clean-up recurses, and would not get through 3,000 levels.
    files.remove(top.parent, top.name)


def test_a_wide_tree_is_walked_under_a_low_descriptor_limit(wide: Path) -> None:
    before = open_descriptors()
    with few_descriptors(16):
        for _ in range(3):
            assert files.tally(wide) == (2 * WIDE_FILES, WIDE + WIDE_FILES)
            assert files.usage(wide) == 2 * WIDE_FILES
            found = files.scan(wide)
            assert sorted(found) == [f"w{n:04}/f" for n in range(0, WIDE, EVERY)]
            assert found["w4950/f"] == files.Entry(
                "w4950/f", 2, (wide / "w4950" / "f").stat().st_mtime_ns
            )
            assert files.tally(wide, most=100) == (0, 100)  # the top lists folders first
            walked = walk.walk(wide, 10 * WIDE)
            next(walked)
            walked.close()  # let go half way
    assert open_descriptors() <= before  # none left open (others of the worker may close)


def test_a_deep_chain_is_walked_under_a_low_descriptor_limit(deep: Path) -> None:
    before = open_descriptors()
    with few_descriptors(16):
        for _ in range(3):
            assert files.tally(deep) == (len(DEEP_FILES), DEEP + len(DEEP_FILES))
            # Files deeper than a nameable path are counted, but not listed: no call could
            # name them.
            named = {"d/" * level + "f" for level in DEEP_FILES if level <= NAMEABLE}
            assert set(files.scan(deep)) == named
            assert len(named) == NAMEABLE // EVERY + 1
            assert files.tally(deep, most=11) == (1, 11)
    assert open_descriptors() <= before  # none left open (others of the worker may close)


def test_three_spare_descriptors_are_enough_for_any_walk(wide: Path, deep: Path) -> None:
    """A walk holds two descriptors at most: its folder's, and the next (or the listing's)."""
    before = open_descriptors()
    with few_descriptors(3):
        assert files.tally(wide) == (2 * WIDE_FILES, WIDE + WIDE_FILES)
        assert files.tally(deep) == (len(DEEP_FILES), DEEP + len(DEEP_FILES))
    assert open_descriptors() <= before  # none left open (others of the worker may close)


def test_remove_takes_away_a_deep_chain_and_a_wide_tree_with_three_spare_descriptors(
    tmp_path: Path,
) -> None:
    make_wide(tmp_path / "wide")
    make_deep(tmp_path / "deep")
    (tmp_path / "wide" / "w0001" / "link").symlink_to(tmp_path / "deep")
    before = open_descriptors()
    try:
        with few_descriptors(3):
            files.remove(tmp_path, "wide")
            # Not through the link:
            assert files.tally(tmp_path) == (len(DEEP_FILES), 1 + DEEP + len(DEEP_FILES))
            files.remove(tmp_path, "deep")
    finally:
        if (tmp_path / "deep").exists():  # pytest's clean-up would not get through it
            files.remove(tmp_path, "deep")
    assert open_descriptors() <= before  # none left open (others of the worker may close)
    assert os.listdir(tmp_path) == []


def test_running_out_of_descriptors_raises_instead_of_under_counting(tmp_path: Path) -> None:
    """The watch must learn that it could not look, not get a smaller number: a folder the
    walk cannot enter for want of a descriptor is an error, not a folder to skip."""
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "blob").write_bytes(b"x" * 1000)
    cursor = walk.Cursor(os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY))
    fillers: list[int] = []
    try:
        with few_descriptors(8):
            with contextlib.suppress(OSError):
                while True:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            with pytest.raises(OSError) as entering:
                cursor.down("big")
            with pytest.raises(OSError) as listing:
                list(walk.listing(cursor.fd, 100))
            with pytest.raises(OSError) as tallying:
                files.tally(tmp_path)
    finally:
        for fd in fillers:
            os.close(fd)
        cursor.close()
    assert entering.value.errno == listing.value.errno == tallying.value.errno == errno.EMFILE
    assert files.tally(tmp_path) == (1000, 2)


def test_a_walk_needs_no_more_descriptors_than_it_holds_between_entries(tmp_path: Path) -> None:
    """Between two entries, a walk holds two descriptors; with none left to the process, it
    still goes down, lists, and comes back up: it never needs a third."""
    make_deep(tmp_path / "deep", levels=20)
    walked = walk.walk(tmp_path, 1000)
    next(walked)
    fillers: list[int] = []
    try:
        with few_descriptors(8):
            with contextlib.suppress(OSError):
                while True:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            rest = [(folder, name) for folder, name, _ in walked]
    finally:
        for fd in fillers:
            os.close(fd)
        walked.close()
    assert len(rest) == 20 + 2  # the folders below "deep", and the files at levels 0 and 20
    assert rest[-1] == ("deep/" + "d/" * 20, "f")


@pytest.mark.parametrize(
    ("shape", "moved", "to"),
    [
        ("a/b", "a/b", "b"),  # the folder the walk is in, up to the top
        ("x/a/b", "x/a", "a"),  # one of its ancestors, up to the top
        ("a/b c", "a/b", "c/b"),  # the folder the walk is in, across to another branch
    ],
)
def test_a_folder_moved_under_the_walk_makes_it_fail_closed(
    tmp_path: Path, shape: str, moved: str, to: str
) -> None:
    """Once the walk is in ``shape``'s deepest folder, the code renames ``moved``: going up
    by ".." then leads elsewhere than the folder the walk came down from."""
    for folder in shape.split():
        (tmp_path / folder).mkdir(parents=True)
    deepest = shape.split()[0]
    (tmp_path / deepest / "f").write_bytes(b"1")
    walked = walk.walk(tmp_path, 1000)
    with pytest.raises(walk.WalkError):
        for folder, name, _ in walked:
            if (folder, name) == (deepest + "/", "f"):
                (tmp_path / moved).rename(tmp_path / to)


def test_the_same_walk_without_a_move_does_not_fail(tmp_path: Path) -> None:
    (tmp_path / "x" / "a" / "b").mkdir(parents=True)
    (tmp_path / "x" / "a" / "b" / "f").write_bytes(b"1")
    walked = [(folder, name) for folder, name, _ in walk.walk(tmp_path, 1000)]
    assert walked == [("", "x"), ("x/", "a"), ("x/a/", "b"), ("x/a/b/", "f")]


def test_the_cursor_goes_up_only_to_where_it_came_down_from(tmp_path: Path) -> None:
    """The check ``remove`` relies on too, as it goes down and up the tree it empties."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    cursor = walk.Cursor(os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY))
    try:
        with pytest.raises(walk.WalkError):
            cursor.up()  # never above the top
        assert cursor.down("a")
        assert cursor.down("b")
        assert cursor.up() == "b"
        assert cursor.down("b")
        (tmp_path / "a" / "b").rename(tmp_path / "b")
        with pytest.raises(walk.WalkError):
            cursor.up()
        assert not cursor.down("missing")
    finally:
        cursor.close()


def test_symlinks_anywhere_are_neither_followed_nor_walked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s" * 100)
    top = tmp_path / "top"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "kept").write_bytes(b"abc")
    links = {
        "root": "/",
        "loop": "loop",
        "a/up": "..",
        "a/dangling": "nowhere",
        "a/b/self": ".",
        "a/b/top": str(top),
        "a/b/outside": str(outside),
        "a/b/secret": str(outside / "secret"),
    }
    for name, target in links.items():
        (top / name).symlink_to(target)
    walked = list(walk.walk(top, 1000))
    assert {folder for folder, _, _ in walked} == {"", "a/", "a/b/"}
    kinds = {(folder or "") + name: stat.S_IFMT(st.st_mode) for folder, name, st in walked}
    assert kinds == {
        "a": stat.S_IFDIR,
        "a/b": stat.S_IFDIR,
        "a/b/kept": stat.S_IFREG,
        **dict.fromkeys(links, stat.S_IFLNK),
    }
    assert files.tally(top) == (3, 3 + len(links))
    assert sorted(files.scan(top)) == ["a/b/kept"]
    files.remove(tmp_path, "top")
    assert sorted(os.listdir(tmp_path)) == ["outside"]
    assert (outside / "secret").read_bytes() == b"s" * 100


def test_a_folder_swapped_for_a_symlink_before_it_is_entered_is_not_walked(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    top = tmp_path / "top"
    (top / "a").mkdir(parents=True)
    (top / "a" / "mine").write_bytes(b"m")
    walked = []
    for folder, name, st in walk.walk(top, 1000):
        walked.append((folder, name))
        if (folder, name) == ("", "a"):  # listed as a folder; not entered yet
            assert stat.S_ISDIR(st.st_mode)
            (top / "a").rename(top / "moved")
            (top / "a").symlink_to(outside)
    assert walked[0] == ("", "a")
    # The rest of the top's listing may or may not show the new names; not what is outside.
    assert all(folder in ("", "moved/") for folder, _ in walked)
    assert ("moved/", "mine") in walked or ("", "moved") not in walked
