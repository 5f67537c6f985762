"""Where Parley keeps its data, and files and directories only their owner may read."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    """Per-user data directory (``~/.local/share/parley`` on Linux)."""
    return Path(platformdirs.user_data_dir("parley", appauthor=False))


def default_database_url() -> str:
    """The SQLite file in the data directory, where a server keeps its data by default."""
    return f"sqlite:///{data_dir() / 'parley.db'}"


def private_dir(path: Path) -> Path:
    """``path`` as a directory, made (parents too) when missing; the one made here is its
    owner's only (mode 0700). An existing directory is left as it is."""
    try:
        path.mkdir(mode=0o700)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return private_dir(path)
    except FileExistsError:
        return path
    os.chmod(path, 0o700)  # whatever the umask took away or left
    return path


def make_private(path: Path, *, create: bool = False) -> None:
    """Make ``path`` readable and writable by its owner only (mode 0600): an existing file
    with looser bits is tightened; a missing one is made empty when ``create`` (its
    directory with ``private_dir``), so whatever writes it next keeps that mode."""
    if create:
        private_dir(path.parent)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    try:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
    except FileNotFoundError:
        pass


def write_private(path: Path, text: str) -> None:
    """Write a secret to ``path`` (parents made, the last one with ``private_dir``),
    readable by its owner only (mode 0600, also when an older file had looser bits)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
