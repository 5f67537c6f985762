"""Sessions and request checks of the web app.

* The session is Flask's signed cookie (``HttpOnly``, ``SameSite=Lax``) holding a random
  session id and a CSRF token; the Parley API key never leaves the app.
* Every ``POST`` / ``DELETE`` must carry the token in ``X-CSRF-Token`` and, when the browser
  sends an ``Origin``, come from the app's own origin.
* A thread belongs to the session whose *owner tag* (a hash of the session id) is in its
  metadata; the id itself is never stored on the Parley server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from flask import request, session

from parley.config import WebSettings, data_dir, make_private, write_private

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_HEADER",
    "PAGE_POLICY",
    "csrf_problem",
    "csrf_token",
    "load_secret_key",
    "owner_tag",
]

#: The page runs only its own scripts and talks only to this app. The page carries this
#: policy in a ``meta`` tag too, for copies of it saved to disk (``frame-ancestors`` works
#: only as a header: in a ``meta`` tag the browser ignores it, with a warning).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
CONTENT_SECURITY_POLICY = f"{PAGE_POLICY}; frame-ancestors 'none'"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "web-secret"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def load_secret_key(path: Path | None = None) -> str:
    """``PARLEY_WEB_SECRET`` when set; else the key kept in ``path`` (``web-secret`` in the
    data directory), made and saved (mode 0600) the first time; a saved one with looser
    bits is tightened."""
    configured = WebSettings().secret
    if configured:
        return configured
    path = path or data_dir() / SECRET_FILE
    make_private(path)
    try:
        saved = path.read_text().strip()
    except FileNotFoundError:
        saved = ""
    if len(saved) >= 32:
        return saved
    secret = secrets.token_hex(32)
    write_private(path, secret + "\n")
    return secret


def ensure_session() -> None:
    """Give a new browser a session id and a CSRF token (kept for 31 days)."""
    if "sid" not in session or "csrf" not in session:
        session.clear()
        session["sid"] = secrets.token_urlsafe(32)
        session["csrf"] = secrets.token_urlsafe(32)
        session.permanent = True


def csrf_token() -> str:
    return str(session["csrf"])


def owner_tag() -> str:
    """What the session's threads carry in their metadata: a hash of its id."""
    return hashlib.sha256(f"parley-web:{session['sid']}".encode()).hexdigest()[:40]


def same_tag(a: object, b: str) -> bool:
    return isinstance(a, str) and hmac.compare_digest(a, b)


def csrf_problem() -> str | None:
    """Why this request may not change anything (None: it may)."""
    if request.method not in _UNSAFE_METHODS:
        return None
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        return f"Requests from {origin} are not allowed here."
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), csrf_token().encode()):
        return (
            f"Missing or wrong {CSRF_HEADER} header: reload the page and try again."
            if sent
            else f"Missing {CSRF_HEADER} header: reload the page and try again."
        )
    return None
