"""Suite-wide guards (no test reaches beyond this machine) and shared fixtures."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from parley.store.db import Database

# The children the suite starts (``parley chat`` in a pty, ``parley ask``...) size their
# output by their own terminal. A COLUMNS or LINES of the suite's environment would override
# that: pytest-xdist sets 80x24 in its workers, and a shell may export them.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _is_local(address):
        raise ConnectionRefusedError(f"tests may not reach {address!r}: loopback only")
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _is_local(address):
        raise ConnectionRefusedError(f"tests may not reach {address!r}: loopback only")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_reaches_children() -> Iterator[None]:
    """The tests that press Ctrl+C (a SIGINT to a child, or ``\\x03`` on its terminal) rely
    on the child's default handling of it. A launch in the background (``nohup make test &``
    from a script) starts the suite with SIGINT and SIGQUIT ignored, and a child inherits an
    ignored signal across ``exec`` (Python then installs no KeyboardInterrupt handler). So the
    suite sets its own: a handled signal is back at its default in every child it starts."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGQUIT)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if before[signal.SIGQUIT] == signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    yield
    for sig, handler in before.items():
        if handler is not None:
            signal.signal(sig, handler)


# ----------------------------------------------------------------- a database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh, migrated database: SQLite, or PostgreSQL when
    ``PARLEY_TEST_DATABASE_URL`` is set."""
    from parley.store.db import Database
    from tests.harness import FreshDatabase

    fresh = FreshDatabase(tmp_path)
    database = Database(fresh.url)
    try:
        await database.migrate()
        yield database
    finally:
        await database.dispose()
        fresh.drop()


# ----------------------------------------------------------------- the real server


@pytest.fixture(scope="session")
def upstream() -> Iterator[Any]:
    from parley.testing.fake_upstream import FakeUpstream

    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def upstream_left_idle(upstream: Any) -> Iterator[None]:
    """Every turn the test starts has closed its upstream stream by its end (a cancelled,
    failed, dropped or abandoned turn must not keep the model's connection open)."""
    yield
    deadline = time.monotonic() + 5
    while upstream.active_streams and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.active_streams == 0, "a turn left its upstream stream open"


@pytest.fixture(scope="session")
def fresh_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.harness import FreshDatabase

    db = FreshDatabase(tmp_path_factory.mktemp("db"))
    yield db
    db.drop()


@pytest.fixture(scope="session")
def server(
    upstream: Any, fresh_database: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """One ``parley serve`` process for the session, with the fake upstream configured."""
    from tests.harness import ParleyServer, free_port, provider_config

    srv = ParleyServer(
        database_url=fresh_database.url,
        workdir=tmp_path_factory.mktemp("server"),
        config=provider_config(upstream.base_url, free_port()),
        env={"PARLEY_ACTION_EXPIRY_SECONDS": "600", "PARLEY_MCP_ALLOW_URLS": "127.0.0.1"},
    ).start()
    yield srv
    code = srv.stop()
    srv.assert_clean_log()
    assert code in (0, -15), srv.log()  # uvicorn re-raises SIGTERM after a clean shutdown


@pytest.fixture
def user_key(server: Any) -> str:
    """A fresh user of the session server: tests never see each other's data."""
    return str(server.new_user())


# ----------------------------------------------------------------- the order of the files

#: Files whose tests take long as one piece (the Schemathesis pass of test_fuzz.py takes
#: minutes): they run first. Under pytest-xdist (``make test``, each file whole in one
#: worker) a worker that started one of them last would run on alone while the others had
#: nothing left.
SLOW_FILES_FIRST = ("tests/server/test_fuzz.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first, then the files with the most tests (the order pytest-xdist
    would give them itself, but for the slow ones: its own reorder is off in ``make
    test``, as it put a file of one long test last)."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.partition("::")[0], []).append(item)
    order = sorted(files, key=lambda f: (f not in SLOW_FILES_FIRST, -len(files[f])))
    items[:] = [item for f in order for item in files[f]]
