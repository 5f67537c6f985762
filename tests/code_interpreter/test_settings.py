"""The code interpreter's settings: their defaults, and the config file's
``[code_interpreter]`` table under the variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.config import ConfigError, Settings, data_dir
from parley.sandbox.limits import Limits


def test_the_defaults() -> None:
    settings = Settings()
    assert settings.code_interpreter_enabled
    assert settings.containers_directory() == data_dir() / "containers"
    limits = Limits.of(settings)
    assert limits.memory_bytes == 1 << 30 and limits.call_timeout == 60
    assert Limits.of(settings, "4g").memory_bytes == 4 << 30
    assert settings.database_pool_size == 16


def test_the_table_sets_what_no_variable_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(
        '[code_interpreter]\nenabled = false\ndir = "/srv/boxes"\ncall_timeout = 5\n'
        'memory_limit = "4g"\nmax_containers = 0\n'
    )
    settings = Settings(config=config)
    assert not settings.code_interpreter_enabled
    assert settings.containers_directory() == Path("/srv/boxes")
    assert (settings.code_interpreter_call_timeout, settings.code_interpreter_max_containers) == (
        5,
        0,
    )
    assert Limits.of(settings).memory_bytes == 4 << 30
    monkeypatch.setenv("PARLEY_CODE_INTERPRETER_CALL_TIMEOUT", "9")
    assert Settings(config=config).code_interpreter_call_timeout == 9  # the variable wins


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ('[code_interpreter]\nmemory_limit = "2g"\n', "code_interpreter_memory_limit"),
        ("[code_interpreter]\ncall_timeout = 0\n", "code_interpreter_call_timeout"),
        ("[code_interpreter]\nmax_processes = 2\n", "code_interpreter_max_processes"),
        ("[code_interpreter]\nnetwork = true\n", "'network'"),
        ('code_interpreter = "on"\n', "must be a table"),
    ],
)
def test_a_bad_table_stops_the_start(tmp_path: Path, table: str, said: str) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(table)
    with pytest.raises(ConfigError, match=said):
        Settings(config=config)
