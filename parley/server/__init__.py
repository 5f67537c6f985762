"""The HTTP server: FastAPI app factory, routes, auth and SSE."""

from parley.server.app import create_app

__all__ = ["create_app"]
