"""Which addresses an MCP ``server_url`` from an API request may reach.

The server process reaches an MCP server named in a request from inside the operator's
network, so a URL that a user sends could otherwise point it at the cloud metadata service,
a database on the private network or the server's own admin port (server-side request
forgery). The rules:

- Scheme ``http`` or ``https`` only, and no ``user:password@`` in the URL.
- By default only public addresses. Refused, with the reason named in the error:

      loopback           127.0.0.0/8, ::1
      private            10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT),
                         fc00::/7 (unique local), fec0::/10 (site-local), 64:ff9b:1::/48
      link-local         169.254/16, fe80::/10
      cloud metadata     169.254.169.254, 169.254.170.2, 100.100.100.200, 192.0.0.192,
                         fd00:ec2::254, fd20:ce::254
      unspecified        0.0.0.0/8, ::
      multicast          224/4, ff00::/8
      broadcast          255.255.255.255
      reserved           240/4, ::/8, IPv6 outside 2000::/3, and whatever else Python's
                         ``ipaddress`` does not call global (documentation, benchmarking, ...)

  An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
  ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged by the IPv4 address it carries.
- The check is made after DNS resolution: every address a name resolves to must pass (one
  refused address refuses the name), and the connection goes to an address that was
  checked, never to a second DNS answer (a name that changes its answer between check and
  connect cannot slip through). Odd spellings (``2130706433``, ``0x7f.1``) are names, so
  the system resolver turns them into the address that is then checked.
- The guarded client checks every request it sends, so every redirect hop too: the URL
  (scheme, credentials, a literal address) before the request goes out, and each host it
  opens a connection to, resolved and checked as above. A kept-alive connection is reused
  only for its own scheme, host and port, whose address was checked when it opened. The Host
  header, the TLS SNI and the certificate check stay on the host name of the URL.

The operator widens this with an allowlist of entries:

      mcp.internal                    this host name, any port, whatever it resolves to
      mcp.internal:8080               this host name on this port only
      10.1.2.3   [fd00::1]            this address, any port
      10.1.2.3:8080   [fd00::1]:8080  this address on this port only
      10.0.0.0/8   fd00::/8           any address in the range, any port

A host name matches exactly (after IDNA and lower-casing; no wildcards). An address entry
matches a literal address in a URL or an address a name resolves to.

Webhook deliveries go by the same rules, with an allowlist of their own, through an aiohttp
session (``parley.guarded_http``), of the family of the providers' transport. The guarded
client here is httpx2's only because the MCP SDK is built on httpx2 and takes an httpx2
client factory.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import httpcore2
import httpx2

from parley.errors import InvalidRequest
from parley.mcp.tls import ssl_context

__all__ = [
    "AddressPolicy",
    "AddressRefused",
    "GuardedClientFactory",
    "Resolver",
    "guarded_client_factory",
    "system_resolver",
]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Answers the addresses ``host`` resolves to for TCP on ``port`` (none when it does not).
Resolver = Callable[[str, int], Awaitable[list[str]]]

_METADATA = "a cloud metadata address"
_PRIVATE = "a private address"
_RESERVED = "a reserved address"

#: Refused ranges, the narrowest first, so that the reason named is the most telling one.
_REFUSED: tuple[tuple[_Network, str], ...] = tuple(
    (ipaddress.ip_network(network), why)
    for network, why in (
        ("169.254.169.254/32", _METADATA),  # AWS, GCP, Azure, OCI, DigitalOcean, ...
        ("169.254.170.2/32", _METADATA),  # AWS ECS task metadata
        ("100.100.100.200/32", _METADATA),  # Alibaba Cloud
        ("192.0.0.192/32", _METADATA),  # Oracle Cloud (legacy)
        ("fd00:ec2::254/128", _METADATA),  # AWS over IPv6
        ("fd20:ce::254/128", _METADATA),  # GCP over IPv6
        ("0.0.0.0/8", "an unspecified address"),
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", _PRIVATE),
        ("172.16.0.0/12", _PRIVATE),
        ("192.168.0.0/16", _PRIVATE),
        ("100.64.0.0/10", "a private (carrier-grade NAT) address"),
        ("169.254.0.0/16", "a link-local address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", _RESERVED),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/8", _RESERVED),  # with the deprecated IPv4-compatible ::a.b.c.d
        ("fc00::/7", "a private (unique local) address"),
        ("fec0::/10", "a private (site-local) address"),
        ("fe80::/10", "a link-local address"),
        ("ff00::/8", "a multicast address"),
        ("64:ff9b:1::/48", "a private (local-use NAT64) address"),
    )
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AddressRefused(InvalidRequest):
    """A URL the address policy does not let the server reach. The message names the host
    and the reason (``localhost resolves to 127.0.0.1, a loopback address``), never the
    whole URL, whose path, query or credentials may hold secrets."""

    def __init__(self, message: str, *, host: str | None = None) -> None:
        super().__init__(message, code="address_refused")
        #: The host refused, when the refusal is about one.
        self.host = host


def _carried_ipv4(address: _Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, NAT64, 6to4), if it carries one."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _refusal(address: _Address) -> str | None:
    """Why ``address`` may not be reached by default (``a loopback address``), or None when
    it is a public address."""
    carried = _carried_ipv4(address)
    if carried is not None:
        why = _refusal(carried)
        return None if why is None else f"{why} ({carried} inside IPv6)"
    for network, why in _REFUSED:
        if address in network:
            return why
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return _RESERVED
    return None if address.is_global else _RESERVED


def _ip(text: str) -> _Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normal_name(name: str) -> str:
    """A host name as the client sends it: IDNA-encoded, lower case, no trailing dot."""
    return httpx2.URL(scheme="http", host=name).raw_host.decode("ascii").rstrip(".")


@dataclass(frozen=True, slots=True)
class _Rule:
    """One allowlist entry: a host name or an address range, on one port or any."""

    name: str | None
    network: _Network | None
    port: int | None

    def allows_name(self, name: str, port: int) -> bool:
        return self.name == name and self.port in (None, port)

    def allows_address(self, address: _Address, port: int) -> bool:
        if self.network is None or self.port not in (None, port):
            return False
        carried = _carried_ipv4(address)
        return address in self.network or (carried is not None and carried in self.network)


def _parse_port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"allowlist entry {entry!r}: {text!r} is not a port (1 to 65535)")
    return int(text)


def _parse_rule(entry: str) -> _Rule:
    """One allowlist entry as a rule; ``ValueError`` saying what is wrong with a bad one."""
    if "://" in entry or "@" in entry:
        raise ValueError(
            f"allowlist entry {entry!r}: give a host name, host:port, an IP address or a "
            "CIDR range, not a URL"
        )
    if "/" in entry:
        try:
            return _Rule(None, ipaddress.ip_network(entry), None)
        except ValueError as exc:
            raise ValueError(f"allowlist entry {entry!r} is not a CIDR range: {exc}") from None
    host, port = entry, None
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or _ip(host) is None or (rest and not rest.startswith(":")):
            raise ValueError(f"allowlist entry {entry!r}: expected [IPv6] or [IPv6]:port")
        port = _parse_port(entry, rest[1:]) if rest else None
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
        port = _parse_port(entry, port_text)
    address = _ip(host)
    if address is not None:
        return _Rule(None, ipaddress.ip_network(address), port)
    try:
        name = _normal_name(host)
    except httpx2.InvalidURL:
        name = ""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"allowlist entry {entry!r} is not a host name, host:port, IP address or CIDR range"
        )
    return _Rule(name, None, port)


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's answer for ``host`` (TCP), in its order; none when the name does not
    resolve."""
    try:
        answers = await anyio.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return [str(sockaddr[0]) for *_, sockaddr in answers]


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a URL points: its host as sent (IDNA, lower case), and its port."""

    host: str
    port: int


def _target(url: httpx2.URL) -> _Target:
    """The host and port of ``url``; ``AddressRefused`` for a scheme other than http(s),
    credentials in it, or no host."""
    if url.scheme not in _DEFAULT_PORTS:
        raise AddressRefused(f"the scheme {url.scheme!r} is not allowed (http or https only)")
    if url.userinfo:
        raise AddressRefused("a URL with credentials (user:password@) is not allowed")
    host = url.raw_host.decode("ascii").rstrip(".")
    if not host:
        raise AddressRefused("the URL has no host")
    if _ip(host) is None and not _NAME.fullmatch(host):
        raise AddressRefused("the URL's host is not a valid host name")
    port = url.port or _DEFAULT_PORTS[url.scheme]
    if not 0 < port < 65536:
        raise AddressRefused("the URL's port is not valid")
    return _Target(host, port)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The addresses a ``server_url`` from a request may reach: public ones, and what
    ``allow`` adds (see the module docstring). ``resolver`` answers DNS questions (the
    system's, unless a test gives its own)."""

    allow: tuple[str, ...] = ()
    resolver: Resolver = field(default=system_resolver, repr=False, compare=False)
    #: The setting that widens the policy (``PARLEY_MCP_ALLOW_URLS``), named in a refusal
    #: of an address so that whoever meets it knows what the operator could set.
    setting: str | None = None
    _rules: tuple[_Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rules", tuple(_parse_rule(entry) for entry in self.allow))

    @classmethod
    def parse(cls, entries: Iterable[str], *, setting: str | None = None) -> AddressPolicy:
        """A policy from allowlist entries as an operator writes them (blank ones skipped);
        ``ValueError`` naming the first bad entry. ``setting``: where they came from."""
        kept = tuple(entry.strip() for entry in entries if entry.strip())
        return cls(allow=kept, setting=setting)

    def check_url(self, url: str) -> None:
        """What can be checked without DNS: scheme, credentials, a literal address in the
        host. ``AddressRefused`` when the URL may not be reached; a host name is checked by
        ``resolve`` when it is connected to."""
        try:
            parsed = httpx2.URL(url)
        except httpx2.InvalidURL:
            raise AddressRefused("the URL is not valid") from None
        self._check_target(_target(parsed))

    async def check_reachable(self, url: str) -> None:
        """``AddressRefused`` when ``url`` may not be reached now: its form
        (``check_url``), then the addresses its host resolves to now (``resolve``)."""
        self.check_url(url)
        target = _target(httpx2.URL(url))
        await self.resolve(target.host, target.port)

    def _check_target(self, target: _Target) -> None:
        if self._allows_name(target.host, target.port):
            return
        address = _ip(target.host)
        if address is not None:
            self._check_address(address, target.port, host=target.host, resolved=False)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` that a connection to ``port`` may use, in the
        resolver's order. ``AddressRefused`` when any of them is refused (a name is only as
        safe as its worst answer) or when there is none."""
        host = host.rstrip(".").lower()
        address = _ip(host)
        if address is not None:
            self._check_address(address, port, host=host, resolved=False)
            return [str(address)]
        answers = list(dict.fromkeys(await self.resolver(host, port)))
        if not answers:
            raise AddressRefused(f"{host} does not resolve to any address", host=host)
        if not self._allows_name(host, port):
            for answer in answers:
                resolved = _ip(answer)
                if resolved is None:
                    raise AddressRefused(f"{host} resolves to {answer!r}, not an address")
                self._check_address(resolved, port, host=host, resolved=True)
        return answers

    def _allows_name(self, host: str, port: int) -> bool:
        return any(rule.allows_name(host, port) for rule in self._rules)

    def _check_address(self, address: _Address, port: int, *, host: str, resolved: bool) -> None:
        if any(rule.allows_address(address, port) for rule in self._rules):
            return
        why = _refusal(address)
        if why is not None:
            said = f"{host} resolves to {address}, {why}" if resolved else f"{host} is {why}"
            if self.setting is not None:
                said += f" (the server's operator may allow it with {self.setting})"
            raise AddressRefused(said, host=host)


class _PinnedBackend(httpcore2.AsyncNetworkBackend):
    """Opens each TCP connection to an address the policy resolved and checked, trying them
    in the resolver's order; the caller keeps the host name for the Host header and TLS."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._backend = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self._policy.resolve(host, port):
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc  # try the next address, as a dual-stack client does
        assert failure is not None  # resolve answers at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise AddressRefused("a Unix socket is not an address the policy allows")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _GuardedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport with the policy on every request: the URL is checked before it
    is sent, and new connections go through ``_PinnedBackend``."""

    def __init__(self, policy: AddressPolicy, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx2 takes no network backend, so its connection pool (httpx2's default
        # limits, not yet opened) is replaced by one that has ours.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(policy),
        )
        self._policy = policy

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._policy._check_target(_target(request.url))
        return await super().handle_async_request(request)


class GuardedClientFactory(Protocol):
    """Makes an ``httpx2.AsyncClient`` that only reaches what the policy allows; the shape
    of the MCP SDK's ``httpx_client_factory``."""

    def __call__(
        self,
        headers: Mapping[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient: ...


#: The MCP SDK's timeouts: 30 s, and 300 s to read, as a server may hold a stream open.
_DEFAULT_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


def guarded_client_factory(policy: AddressPolicy) -> GuardedClientFactory:
    """A factory of clients whose every request, redirect hops included, goes only where
    ``policy`` allows: a refused one raises ``AddressRefused`` before a byte is sent.
    Redirects are not followed unless asked for (``follow_redirects=True``), as in the SDK.
    Proxies and ``.netrc`` from the environment are not used (a proxy would make the
    connection for us, past the check); ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` are."""

    def make(
        headers: Mapping[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers=dict(headers or {}),
            timeout=timeout or _DEFAULT_TIMEOUT,
            auth=auth,
            transport=_GuardedTransport(policy, ssl_context()),
            trust_env=False,
        )

    return make
