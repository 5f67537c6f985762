"""Throwaway databases for tests and benchmarks: a new SQLite file, or a new database on a
PostgreSQL server (created on construction, dropped by ``drop``)."""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import make_url


class ScratchDatabase:
    def __init__(
        self, workdir: Path, postgres_url: str | None = None, prefix: str = "parley"
    ) -> None:
        self._server = postgres_url
        self.pg_name: str | None = None
        if postgres_url:
            self.pg_name = f"{prefix}_{secrets.token_hex(6)}"
            _admin(postgres_url, f'CREATE DATABASE "{self.pg_name}"')
            url = make_url(postgres_url).set(database=self.pg_name)
            self.url = url.render_as_string(hide_password=False)
        else:
            self.url = f"sqlite:///{workdir / f'{prefix}-{secrets.token_hex(4)}.db'}"

    @property
    def kind(self) -> str:
        return "postgresql" if self.pg_name else "sqlite"

    def drop(self) -> None:
        if self._server and self.pg_name:
            _admin(self._server, f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            self.pg_name = None


def _admin(url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the server."""
    import psycopg

    u = make_url(url)
    with psycopg.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        user=u.username or "postgres",
        password=u.password,
        dbname=u.database or "postgres",
        autocommit=True,
    ) as conn:
        conn.execute(sql)  # type: ignore[call-overload]
