"""The reader of the tools the server runs itself (hosted tools): the ``mcp`` tool today,
on every face that takes it (``Dialect.hosted``).

A request's ``mcp`` tool becomes a stored entry, which the run keeps and the engine runs
(``engine.hosted``), and secrets, which it does not keep: the ``headers`` and
``authorization`` the request brings, held by the turn alone and sent again by the client
with each request that needs the server. Each fault is a 400 naming the field
(``tools[0].server_url``).

A tool names its server by ``server_url`` (a public address unless the operator allows
more: ``parley.mcp.addresses``), or by ``server_label`` alone when the operator registered
a server under that label (``[mcp_servers.LABEL]``) and lets the caller use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from parley.config import SERVER_LABEL, Settings
from parley.errors import ParleyError
from parley.mcp.addresses import AddressPolicy
from parley.mcp.servers import Who, refusal
from parley.server.faces.kit.readers import invalid, unsupported

if TYPE_CHECKING:
    from parley.server.deps import Caller, Services
    from parley.store.records import User

_MCP_FIELDS = frozenset(
    {
        "type",
        "server_label",
        "server_url",
        "server_description",
        "headers",
        "authorization",
        "allowed_tools",
        "require_approval",
        "defer_loading",
    }
)
_REFUSED = {
    "connector_id": "OpenAI's service connectors are OpenAI's own; give a server_url",
    "tunnel_id": "OpenAI's MCP tunnels are OpenAI's own; give a server_url",
    "allowed_callers": "every MCP tool is called by the model",
}


def who_of(caller: Caller) -> Who:
    """A ``server.deps.Caller`` as a registered server's access lists name it."""
    return Who(caller.user.id, caller.user.name, caller.key_id)


@dataclass(slots=True)
class Hosted:
    """A request's hosted tools: the entries its run keeps, and the secrets it does not
    (headers by server label)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)


def read_hosted(
    given: list[Any] | None, *, settings: Settings, policy: AddressPolicy, who: Who
) -> Hosted:
    """The hosted tools among ``given`` (the request's ``tools``), checked."""
    hosted = Hosted()
    for i, tool in enumerate(given or ()):
        if isinstance(tool, dict) and tool.get("type") == "mcp":
            entry, secrets = _mcp(tool, f"tools[{i}]", settings, policy, who)
            label = entry["server_label"]
            if any(e["server_label"] == label for e in hosted.entries):
                raise invalid(f"tools[{i}].server_label", f"the server {label} is given twice.")
            hosted.entries.append(entry)
            if secrets:
                hosted.secrets[label] = secrets
    return hosted


def _mcp(
    tool: Mapping[str, Any], where: str, settings: Settings, policy: AddressPolicy, who: Who
) -> tuple[dict[str, Any], dict[str, str]]:
    for key in tool:
        if key in _REFUSED:
            raise unsupported(f"{where}.{key}", _REFUSED[key] + ".")
        if key not in _MCP_FIELDS:
            raise invalid(f"{where}.{key}", "unknown field of an mcp tool.", "unknown_parameter")
    label = tool.get("server_label")
    if not isinstance(label, str) or not SERVER_LABEL.fullmatch(label):
        raise invalid(f"{where}.server_label", "expected 1 to 64 letters, digits, '_' or '-'.")
    if tool.get("defer_loading"):
        raise unsupported(f"{where}.defer_loading", "every tool of the server is listed.")
    entry: dict[str, Any] = {"type": "mcp", "server_label": label}
    url = tool.get("server_url")
    if url is None:
        config = settings.mcp_servers.get(label)
        if config is None:
            raise invalid(
                f"{where}.server_url",
                f"give the server's URL: no MCP server is registered as {label!r}.",
                "missing_required_parameter",
            )
        refused = refusal(config, label, who)
        if refused is not None:
            raise invalid(f"{where}.server_label", f"{refused}.")
    elif not isinstance(url, str):
        raise invalid(f"{where}.server_url", "expected a URL.")
    else:
        try:
            policy.check_url(url)
        except ParleyError as exc:
            raise invalid(f"{where}.server_url", f"{exc.message}.") from None
        entry["server_url"] = url
    description = tool.get("server_description")
    if description is not None:
        if not isinstance(description, str):
            raise invalid(f"{where}.server_description", "expected a string.")
        entry["server_description"] = description
    allowed = tool.get("allowed_tools")
    if allowed is not None:
        entry["allowed_tools"] = _filter(allowed, f"{where}.allowed_tools")
    approval = tool.get("require_approval")
    if approval is not None:
        entry["require_approval"] = _approval(approval, f"{where}.require_approval")
    return entry, _secrets(tool, where)


def _filter(given: Any, where: str) -> list[str] | dict[str, Any]:
    """A list of tool names, or ``{"tool_names": [...], "read_only": bool}``."""
    if isinstance(given, list):
        if not all(isinstance(n, str) for n in given):
            raise invalid(where, "expected tool names.")
        return list(given)
    if not isinstance(given, dict) or set(given) - {"tool_names", "read_only"}:
        raise invalid(where, "expected a list of tool names, or {tool_names, read_only}.")
    names, read_only = given.get("tool_names"), given.get("read_only")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise invalid(f"{where}.tool_names", "expected tool names.")
    if read_only is not None and not isinstance(read_only, bool):
        raise invalid(f"{where}.read_only", "expected true or false.")
    return {k: v for k, v in given.items() if v is not None}


def _approval(given: Any, where: str) -> str | dict[str, Any]:
    if given in ("always", "never"):
        return str(given)
    if not isinstance(given, dict) or not given or set(given) - {"always", "never"}:
        raise invalid(where, "expected always, never, or {always, never} tool filters.")
    return {k: _filter(v, f"{where}.{k}") for k, v in given.items() if v is not None}


def _secrets(tool: Mapping[str, Any], where: str) -> dict[str, str]:
    """The headers to send: ``headers``, and ``authorization`` as a bearer token."""
    headers = tool.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise invalid(f"{where}.headers", "expected an object of header names and strings.")
    secrets = dict(headers)
    authorization = tool.get("authorization")
    if authorization is not None:
        if not isinstance(authorization, str) or not authorization:
            raise invalid(f"{where}.authorization", "expected a token.")
        secrets["Authorization"] = f"Bearer {authorization}"
    for name, value in secrets.items():
        if "\n" in value or "\r" in value or "\n" in name or ":" in name:
            raise invalid(f"{where}.headers", "a header name or value is not valid.")
    return secrets


def kept_tools(
    tools: Sequence[BaseModel], *, settings: Settings, policy: AddressPolicy, who: Who
) -> list[dict[str, Any]]:
    """The tools an assistant or a run keeps, in order: its functions, and its hosted tools
    read (``read_hosted``). They are kept and run later, when the request is gone, so no
    secret may come with them: a server that needs headers is one the operator registers
    (``[mcp_servers.LABEL]``), whose secrets stay in the config."""
    given = [t.model_dump() for t in tools]
    hosted = read_hosted(given, settings=settings, policy=policy, who=who)
    if hosted.secrets:
        index = next(i for i, t in enumerate(given) if t.get("server_label") in hosted.secrets)
        raise unsupported(
            f"tools[{index}].headers",
            "an assistant or a run keeps its tools, and Parley keeps no secret a request "
            "brings: register the server with its headers ([mcp_servers.LABEL]) and name "
            "it by server_label.",
        )
    entries = iter(hosted.entries)
    return [next(entries) if t.get("type") == "mcp" else t for t in given]


def kept(
    tools: Sequence[BaseModel], svc: Services, user: User, key_id: str | None = None
) -> list[dict[str, Any]]:
    """``kept_tools`` for a route of the caller ``user`` (with the key ``key_id``)."""
    who = Who(user.id, user.name, key_id)
    return kept_tools(tools, settings=svc.settings, policy=svc.mcp_addresses, who=who)
