"""One TLS context for every MCP connection of the process.

Making a context loads the CA bundle, about 20 ms of the event loop's time: a server's
hosted tools open a session per turn, and paid it on every one, ``http://`` servers too.
A context is safe to share between connections.
"""

from __future__ import annotations

import functools
import os
import ssl

import httpx2


def ssl_context() -> ssl.SSLContext:
    """The process's TLS context for MCP servers (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
    honoured, as httpx2 reads them: a new one when they change)."""
    return _context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx2.create_ssl_context()
