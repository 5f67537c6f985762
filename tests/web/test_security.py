"""The session secret: from the environment, else made once and kept (mode 0600)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from parley.web.security import load_secret_key


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("PARLEY_WEB_SECRET", raising=False)
    return tmp_path / "parley"


def test_a_random_secret_is_made_once_and_kept_private(data_home: Path) -> None:
    first = load_secret_key()
    path = data_home / "web-secret"
    assert path.read_text().strip() == first and len(first) >= 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key() == first  # sessions survive a restart


def test_a_short_or_empty_saved_secret_is_replaced(data_home: Path) -> None:
    data_home.mkdir()
    (data_home / "web-secret").write_text("short\n")
    (data_home / "web-secret").chmod(0o644)
    secret = load_secret_key()
    assert secret != "short" and len(secret) >= 64
    assert stat.S_IMODE((data_home / "web-secret").stat().st_mode) == 0o600


def test_the_environment_wins(data_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_WEB_SECRET", "from-the-environment")
    assert load_secret_key() == "from-the-environment"
    assert not (data_home / "web-secret").exists()
