"""The files settings: where bytes live by default, and the config file's ``[files]``
table under the variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.config import ConfigError, Settings, data_dir


def test_bytes_live_locally_with_sqlite_and_in_the_database_with_postgresql() -> None:
    assert Settings(database_url="sqlite:///x.db").files_storage_kind() == "local"
    assert Settings(database_url="postgresql://h/db").files_storage_kind() == "database"
    chosen = Settings(database_url="postgresql://h/db", files_storage="local")
    assert chosen.files_storage_kind() == "local"
    assert Settings().files_directory() == data_dir() / "files"
    assert Settings().files_max_bytes == 512 * 1024 * 1024


def test_the_files_table_sets_what_no_variable_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(
        '[files]\nstorage = "database"\ndir = "/srv/files"\nmax_bytes = 1000\n'
        "user_quota_bytes = 0\n"
    )
    settings = Settings(config=config)
    assert settings.files_storage_kind() == "database"
    assert settings.files_directory() == Path("/srv/files")
    assert (settings.files_max_bytes, settings.files_user_quota_bytes) == (1000, 0)
    monkeypatch.setenv("PARLEY_FILES_MAX_BYTES", "2000")
    assert Settings(config=config).files_max_bytes == 2000  # the variable wins


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ('[files]\nstorage = "ftp"\n', "files_storage"),
        ('[files]\nstorage = "s3"\n', "PARLEY_FILES_S3_BUCKET"),
        ('[files]\ns3_bucket = "b"\ns3_endpoint_url = "minio:9000"\n', "http://"),
        ("[files]\nmax_bytes = 0\n", "files_max_bytes"),
        ("[files]\ncolour = 1\n", "'colour'"),
        ('files = "x"\n', "must be a table"),
    ],
)
def test_a_bad_files_table_stops_the_start(tmp_path: Path, table: str, said: str) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(table)
    with pytest.raises(ConfigError, match=said):
        Settings(config=config)
