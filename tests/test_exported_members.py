"""The public surface of ``parley`` is exactly its sorted ``__all__``."""

from __future__ import annotations

import parley


def test_all_is_sorted_and_complete() -> None:
    assert parley.__all__ == sorted(parley.__all__)
    public = {name for name in dir(parley) if not name.startswith("_")} | {"__version__"}
    # Subpackages become attributes once imported; they are not exports.
    modules = {
        "asgi_send",
        "client_settings",
        "config",
        "controls",
        "embedded",
        "errors",
        "events",
        "files",
        "guarded_http",
        "logcontext",
        "mcp",
        "metrics",
        "metrics_http",
        "sdk",
        "types",
        "providers",
        "retrieval",
        "sandbox",
        "store",
        "webhooks",
        "engine",
        "server",
        "cli",
        "testing",
        "terminal",
        "tracing",
        "wake",
        "web",
    }
    assert public - modules == set(parley.__all__)


def test_every_export_resolves() -> None:
    for name in parley.__all__:
        assert getattr(parley, name) is not None
