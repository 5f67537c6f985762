"""The aiohttp sessions of the server's own outgoing requests: webhook deliveries and the
web search client. They are of the provider transport's family (``providers.transport``).

``client_session(policy, ...)`` makes one. With an ``AddressPolicy``
(``parley.mcp.addresses``), every request, each redirect hop too, goes only where the
policy allows:

- the URL is checked before a connection is taken for it (scheme, credentials, a literal
  address), so a refused one raises ``AddressRefused`` before a byte is sent;
- a host name is resolved through the policy, which refuses it when any address it
  resolves to is refused, and the connection goes to one of the addresses it checked. DNS
  answers are not cached: each new connection resolves and checks again, so a name that
  changes its answer (DNS rebinding) is judged by the answer that is used;
- a kept-alive connection is reused only for its own scheme, host and port;
- the Host header, the TLS server name and the certificate check stay on the URL's host;
- proxies and ``.netrc`` from the environment are not used (a proxy would make the
  connection for us, past the check); ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` are.

Without a policy (a URL the operator set, as the search service's is), the session
reaches any address, through the proxy the environment names, as httpx's clients do.

The MCP client is the one outgoing client of another family: the ``mcp`` SDK is built on
httpx2 and takes an httpx2 client factory, so its guard is an httpx2 transport over the
same policy (``parley.mcp.addresses.guarded_client_factory``).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from parley.mcp.addresses import AddressPolicy, AddressRefused
from parley.mcp.tls import ssl_context

if TYPE_CHECKING:
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace

__all__ = ["client_session"]

#: Flags of an answer that is an address already (no lookup behind it), as aiohttp's own
#: resolvers set them.
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class _PolicyResolver(AbstractResolver):
    """Answers a host name with the addresses the policy resolved and checked."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=_NUMERIC,
            )
            for address in await self._policy.resolve(host, port)
        ]

    async def close(self) -> None:
        pass


class _GuardedConnector(aiohttp.TCPConnector):
    """aiohttp's connector with the policy on every request: the URL is checked before a
    connection (new or kept alive) is given for it, and new ones resolve through
    ``_PolicyResolver``."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__(resolver=_PolicyResolver(policy), use_dns_cache=False, ssl=ssl_context())
        self._policy = policy

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's interface)
    ) -> Connection:
        if req.proxy is not None:
            # A guarded session never goes through a proxy (``trust_env`` is off): a proxy a
            # caller named would be reached unchecked, and carry the request anywhere.
            raise AddressRefused("A guarded request is not sent through a proxy.")
        self._policy.check_url(str(req.url))
        return await super().connect(req, traces, timeout)


def client_session(
    policy: AddressPolicy | None,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> aiohttp.ClientSession:
    """An aiohttp session whose requests each last at most ``timeout`` seconds, and go only
    where ``policy`` allows (anywhere when it is None: see the module docstring). Call it
    inside the running event loop; the caller closes the session."""
    connector = (
        aiohttp.TCPConnector(ssl=ssl_context()) if policy is None else _GuardedConnector(policy)
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers=dict(headers or {}),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=policy is None,
    )
