"""The ports of ``parley serve``, ``run`` and ``web``: bound (or tried) before the slow part
of a start, and, when one is taken, one message that says which port, on which address, what
holds it, and how to choose another. The commands then exit 1.

What holds a port is looked up in ``/proc`` (Linux): the listening socket's inode in
``/proc/net/tcp`` and ``tcp6``, the process with that socket among ``/proc/*/fd``, its
command line. A process of another user, or another system, leaves only "something else".
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from parley.controls import clean

__all__ = [
    "RUN",
    "RUN_PAGE",
    "SERVE",
    "WEB",
    "PortChoice",
    "PortUnavailable",
    "holder_of",
    "listen",
    "try_port",
    "unavailable",
    "url_of",
]

#: ``st`` of a listening socket in ``/proc/net/tcp``.
_LISTEN = "0A"
#: Ports after the taken one tried for a free one to suggest.
_NEARBY = 50


@dataclass(frozen=True, slots=True)
class PortChoice:
    """Which port of which command, and the ways to set it."""

    command: str
    option: str
    env_var: str
    #: The ``make run`` variable, when the command is ``make run``'s.
    make_var: str | None = None
    #: What the port is for, when not the server's (``the web page``).
    purpose: str | None = None
    #: Another way out (``--no-web``).
    instead: str | None = None


SERVE = PortChoice("parley serve", "--port", "PARLEY_PORT")
RUN = PortChoice("parley run", "--port", "PARLEY_PORT", make_var="PORT")
RUN_PAGE = PortChoice(
    "parley run",
    "--web-port",
    "PARLEY_WEB_PORT",
    make_var="WEB_PORT",
    purpose="the web page",
    instead="--no-web",
)
WEB = PortChoice("parley web", "--port", "PARLEY_WEB_PORT")


class PortUnavailable(Exception):
    """The port cannot be listened on; the message says why and what to do."""


def url_of(host: str, port: int) -> str:
    """``http://host:port`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listen(host: str, port: int, choice: PortChoice) -> list[socket.socket]:
    """Listening sockets on ``host:port``, as asyncio's ``create_server`` makes them (one an
    address ``host`` names; an empty host: every interface), for uvicorn to serve on.

    Raises:
        PortUnavailable: one of them cannot be bound (none is left open).
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise PortUnavailable(
            f"{choice.command}: cannot listen on {host}: {exc.strerror}. Check the address "
            "(--host)."
        ) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(2048)  # uvicorn's backlog
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise PortUnavailable(unavailable(host, port, exc, choice)) from None
    return sockets


def try_port(host: str, port: int, choice: PortChoice) -> None:
    """Whether ``host:port`` can be listened on now, as the web page will (the page binds it
    later, after a slower start).

    Raises:
        PortUnavailable: it cannot.
    """
    error = _bind_error(host, port)
    if error is not None:
        raise PortUnavailable(unavailable(host, port, error, choice))


def _bind_error(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on now; None when it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        return exc
    return None


def unavailable(host: str, port: int, exc: OSError, choice: PortChoice) -> str:
    """What to print when listening on ``host:port`` failed with ``exc``."""
    what = f"{choice.purpose}'s port" if choice.purpose else "port"
    where = host or "every interface"
    if exc.errno != errno.EADDRINUSE:
        reason = exc.strerror or str(exc)
        first = f"{choice.command}: cannot listen on {what} {port} on {where}: {reason}."
        if exc.errno != errno.EACCES:
            return f"{first} Check the address (--host)."
        return f"{first} Ports below 1024 need privileges.\n{_another(host, port, choice)}"
    holder = holder_of(port)
    by = f"by {holder}" if holder else "by another program"
    return f"{choice.command}: {what} {port} on {where} is taken {by}.\n" + _another(
        host, port, choice
    )


def _another(host: str, port: int, choice: PortChoice) -> str:
    other = _free_nearby(host, port)
    ways = [f"{choice.command} {choice.option} {other}"]
    if choice.make_var:
        ways.append(f"make run {choice.make_var}={other}")
    ways.append(f"{choice.env_var}={other}")
    listed = f"{', '.join(ways[:-1])} or {ways[-1]}"
    text = f"Choose another port{' for it' if choice.purpose else ''}: {listed}"
    return f"{text} (or {choice.instead})." if choice.instead else f"{text}."


def _free_nearby(host: str, port: int) -> int:
    """The first port after ``port`` free on ``host`` (else just the next one)."""
    for candidate in range(port + 1, min(port + _NEARBY, 65535) + 1):
        if _bind_error(host, candidate) is None:
            return candidate
    return port + 1 if port < 65535 else 1024


def holder_of(port: int, proc: Path = Path("/proc")) -> str | None:
    """``process PID (command line)`` of what listens on TCP ``port``, when ``/proc`` says;
    None when it cannot be known (no ``/proc``, another user's process)."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:  # another user's, or gone
            continue
        for fd in fds:
            try:
                if os.readlink(fd) not in targets:
                    continue
                raw = (pid_dir / "cmdline").read_bytes()
            except OSError:
                continue
            line = clean(raw.replace(b"\0", b" ").decode(errors="replace").strip())
            if len(line) > 120:
                line = line[:119] + "…"
            return f"process {pid_dir.name} ({line})" if line else f"process {pid_dir.name}"
    return None


def _listening_inodes(port: int, proc: Path) -> set[str]:
    """Inodes of the TCP sockets listening on ``port``, any address, IPv4 or IPv6."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            _, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes
