"""The reader of the tools the server runs itself (hosted tools): the ``mcp``,
``file_search`` and ``code_interpreter`` tools, on every face that takes them
(``Dialect.hosted``), and, on the Responses API, ``web_search`` when the operator
configured a search service (``web_search_entry``).

A ``file_search`` tool names the caller's vector stores (``vector_store_ids``, 1 to
``MAX_STORES``), and may give ``max_num_results`` (1 to 50), ``filters`` and
``ranking_options``, each checked here (400 naming the field); whether each store is the
caller's is checked against the database by ``check_stores`` (404
``vector_store_not_found`` naming the first that is not).

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from parley.config import SERVER_LABEL, Settings
from parley.engine import FILE_SEARCH_THREAD_STORES, entry_types
from parley.errors import NotFound, ParleyError
from parley.mcp.addresses import AddressPolicy
from parley.mcp.servers import Who, refusal
from parley.server.faces.kit.readers import HOSTED_KINDS, invalid, unsupported
from parley.store import index, vector_stores
from parley.store.db import Database

if TYPE_CHECKING:
    from parley.server.deps import Caller, Services
    from parley.store.records import User

#: The stores one ``file_search`` tool may name.
MAX_STORES = 16
#: The ``include`` value that shows a search's results in its ``file_search_call`` item.
INCLUDE_RESULTS = "file_search_call.results"
#: The ``include`` value that shows a code interpreter call's outputs in its item.
INCLUDE_OUTPUTS = "code_interpreter_call.outputs"
#: The ``include`` value that shows a web search's pages as its action's ``sources``.
INCLUDE_SOURCES = "web_search_call.action.sources"
#: The files one ``code_interpreter`` tool's auto container may start with (OpenAI's).
MAX_CONTAINER_FILES = 50
#: Memory limits a container may ask for (OpenAI's).
MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
_FILE_SEARCH_FIELDS = frozenset(
    {"type", "vector_store_ids", "max_num_results", "filters", "ranking_options"}
)

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


#: What a stored hosted entry carries for the engine and no request gives: what the
#: request's ``include`` asked to show, the thread's stores a run waits for, figures kept as
#: files. A run's ``tools`` shows its entries without them (``shown_tools``), so that a
#: client can send them back as they came.
STORED_ONLY = frozenset(
    {
        "include_outputs",
        "include_results",
        "include_sources",
        "image_files",
        FILE_SEARCH_THREAD_STORES,
    }
)


def shown_tools(tools: Sequence[Any]) -> list[Any]:
    """A run's stored ``tools`` as a client may send them again (``STORED_ONLY`` left out)."""
    return [
        {k: v for k, v in t.items() if k not in STORED_ONLY} if isinstance(t, dict) else t
        for t in tools
    ]


def read_hosted(
    given: list[Any] | None,
    *,
    settings: Settings,
    policy: AddressPolicy,
    who: Who,
    include: Sequence[str] | None = None,
    assistants: bool = False,
) -> Hosted:
    """The hosted tools among ``given`` (the request's ``tools``), checked; ``include``:
    the request's, which may ask to show a file search's results; ``assistants``: a
    ``file_search`` tool may come in the Assistants API's shape."""
    hosted = Hosted()
    reading = Reading(settings, policy, who, tuple(include or ()), assistants)
    for i, tool in enumerate(given or ()):
        read = ENTRIES.get(tool.get("type")) if isinstance(tool, dict) else None
        if read is not None:
            read(tool, f"tools[{i}]", reading, hosted)
    return hosted


@dataclass(frozen=True, slots=True)
class Reading:
    """What reading a request's hosted tools needs besides them: the server's settings and
    address policy, the caller, the request's ``include``, and whether the face is the
    Assistants API's."""

    settings: Settings
    policy: AddressPolicy
    who: Who
    include: tuple[str, ...]
    assistants: bool


def _once(kind: str, where: str, hosted: Hosted) -> None:
    """Refuse a second tool of a kind a request gives at most one of."""
    if any(e["type"] == kind for e in hosted.entries):
        raise invalid(f"{where}.type", f"give at most one {kind} tool.")


def _read_code(tool: Mapping[str, Any], where: str, reading: Reading, hosted: Hosted) -> None:
    _once("code_interpreter", where, hosted)
    entry = code_interpreter_entry(
        tool, where, settings=reading.settings, assistants=reading.assistants
    )
    if INCLUDE_OUTPUTS in reading.include:
        entry["include_outputs"] = True
    hosted.entries.append(entry)


def _read_search(tool: Mapping[str, Any], where: str, reading: Reading, hosted: Hosted) -> None:
    _once("file_search", where, hosted)
    entry = file_search_entry(tool, where, assistants=reading.assistants)
    if INCLUDE_RESULTS in reading.include:
        entry["include_results"] = True
    hosted.entries.append(entry)


def _read_web(tool: Mapping[str, Any], where: str, reading: Reading, hosted: Hosted) -> None:
    """Run only on the Responses API, and only with a search service; else the tool is
    taken and not offered (``responses.client_tools``)."""
    if reading.assistants or not reading.settings.web_search_url:
        return
    _once("web_search", where, hosted)
    entry = web_search_entry(tool, where)
    if INCLUDE_SOURCES in reading.include:
        entry["include_sources"] = True
    hosted.entries.append(entry)


def _read_mcp(tool: Mapping[str, Any], where: str, reading: Reading, hosted: Hosted) -> None:
    entry, secrets = _mcp(tool, where, reading.settings, reading.policy, reading.who)
    label = entry["server_label"]
    if any(e.get("server_label") == label for e in hosted.entries):
        raise invalid(f"{where}.server_label", f"the server {label} is given twice.")
    hosted.entries.append(entry)
    if secrets:
        hosted.secrets[label] = secrets


#: The kit's table of hosted tool entries a request gives, by entry type: each reads its
#: tool into the request's ``Hosted``. A new kind adds its entry.
EntryReader = Callable[[Mapping[str, Any], str, Reading, Hosted], None]
ENTRIES: dict[Any, EntryReader] = {
    "code_interpreter": _read_code,
    "file_search": _read_search,
    **dict.fromkeys(entry_types("web_search"), _read_web),
    "mcp": _read_mcp,
}


def register_entry(kind: str, read: EntryReader) -> None:
    """Read the entries of a new hosted kind with ``read``, on every face that takes hosted
    tools (``readers.HOSTED_KINDS``)."""
    ENTRIES[kind] = read
    HOSTED_KINDS.add(kind)


def unregister_entry(kind: str) -> None:
    """Take a ``register_entry`` ed kind away again."""
    ENTRIES.pop(kind, None)
    HOSTED_KINDS.discard(kind)


def web_search_entry(tool: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The stored entry of a ``web_search`` tool: its allowed domains (lower case, without
    a scheme or path) and its ``search_context_size``, each checked (400 naming the
    field). ``user_location`` and ``external_web_access`` are taken: the search service
    the operator configured decides where and how it searches."""
    entry: dict[str, Any] = {"type": "web_search"}
    filters = tool.get("filters")
    if filters is not None:
        if not isinstance(filters, dict):
            raise invalid(f"{where}.filters", "expected an object.")
        domains = filters.get("allowed_domains")
        if domains is not None:
            if not isinstance(domains, list) or not all(
                isinstance(d, str) and d.strip() for d in domains
            ):
                raise invalid(f"{where}.filters.allowed_domains", "expected a list of domains.")
            if len(domains) > 100:
                raise invalid(f"{where}.filters.allowed_domains", "give at most 100 domains.")
            entry["allowed_domains"] = [_domain(d) for d in domains]
    size = tool.get("search_context_size")
    if size is not None:
        if size not in ("low", "medium", "high"):
            raise invalid(f"{where}.search_context_size", "expected low, medium or high.")
        entry["search_context_size"] = size
    return entry


def _domain(given: str) -> str:
    """A domain as given (``https://Example.com/docs``), as its host (``example.com``)."""
    host = given.strip().lower()
    host = host.split("://", 1)[-1]
    return host.split("/", 1)[0].removeprefix("www.")


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


def code_interpreter_entry(
    tool: Mapping[str, Any], where: str, *, settings: Settings, assistants: bool = False
) -> dict[str, Any]:
    """The stored entry of a ``code_interpreter`` tool (OpenAI's ``CodeInterpreterTool``),
    checked: ``container`` is a container's id, or ``{"type": "auto", "file_ids",
    "memory_limit"}`` (the thread's own container, made when it has none). The Assistants
    API's tool has no ``container`` (its files come from ``tool_resources``). A server that
    cannot run the tool refuses it here, saying why (``parley.sandbox.probe``)."""
    why = code_interpreter_unavailable(settings)
    if why is not None:
        raise unsupported(f"{where}.type", f"this server cannot run it: {why}.")
    known = {"type", "container"} if not assistants else {"type", "container", "file_ids"}
    for key in tool:
        if key not in known:
            raise invalid(
                f"{where}.{key}", "unknown field of a code_interpreter tool.", "unknown_parameter"
            )
    container = tool.get("container")
    if container is None:
        if not assistants:
            raise invalid(
                f"{where}.container",
                'give a container id, or {"type": "auto"} for one made for the conversation.',
                "missing_required_parameter",
            )
        container = {"type": "auto"}
    if isinstance(container, str):
        if not 0 < len(container) <= 128:
            raise invalid(f"{where}.container", "expected a container id.")
        return {"type": "code_interpreter", "container": container}
    if not isinstance(container, dict) or container.get("type", "auto") != "auto":
        raise invalid(f"{where}.container", 'expected a container id or {"type": "auto"}.')
    for key in container:
        if key == "network_policy":
            policy = container[key]
            if not isinstance(policy, dict) or policy.get("type") != "disabled":
                raise unsupported(
                    f"{where}.container.network_policy",
                    'a container has no network: only {"type": "disabled"} is taken.',
                )
        elif key not in ("type", "file_ids", "memory_limit"):
            raise invalid(
                f"{where}.container.{key}",
                "unknown field of an auto container.",
                "unknown_parameter",
            )
    auto: dict[str, Any] = {"type": "auto"}
    files = container.get("file_ids")
    if files is not None:
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise invalid(f"{where}.container.file_ids", "expected a list of file ids.")
        if len(files) > MAX_CONTAINER_FILES:
            raise invalid(
                f"{where}.container.file_ids", f"give at most {MAX_CONTAINER_FILES} files."
            )
        auto["file_ids"] = list(dict.fromkeys(files))
    memory = container.get("memory_limit")
    if memory is not None:
        if memory not in MEMORY_LIMITS:
            raise invalid(
                f"{where}.container.memory_limit", f"expected one of {', '.join(MEMORY_LIMITS)}."
            )
        auto["memory_limit"] = memory
    return {"type": "code_interpreter", "container": auto}


def code_interpreter_unavailable(settings: Settings) -> str | None:
    """Why this server cannot run the code interpreter (None: it can)."""
    from parley.sandbox.probe import code_interpreter_unavailable as why_not

    return why_not(settings)


async def check_containers(
    db: Database, *, user_id: str, tools: Sequence[Mapping[str, Any]]
) -> None:
    """Each ``code_interpreter`` entry among ``tools`` names a container of the user's that
    has not expired, and files of the user's: else 404 (``container_not_found``,
    ``file_not_found``) or 400 naming the tool's field."""
    from parley.store import containers as container_store
    from parley.store import files as file_store

    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or tool.get("type") != "code_interpreter":
            continue
        container = tool.get("container")
        if isinstance(container, str):
            try:
                found = await db.read(
                    container_store.get_container, user_id=user_id, container_id=container
                )
            except NotFound as exc:
                raise NotFound(exc.message, code=exc.code, param=f"tools[{i}].container") from None
            if found.status != "running":
                raise invalid(
                    f"tools[{i}].container",
                    f"the container {container} has expired: make a new one.",
                    "container_expired",
                )
            continue
        for file_id in (container or {}).get("file_ids") or ():
            try:
                await db.read(file_store.get_file, user_id=user_id, file_id=file_id)
            except NotFound as exc:
                raise NotFound(
                    exc.message, code=exc.code, param=f"tools[{i}].container.file_ids"
                ) from None


def file_search_entry(
    tool: Mapping[str, Any], where: str, *, assistants: bool = False
) -> dict[str, Any]:
    """The stored entry of a ``file_search`` tool (OpenAI's ``FileSearchTool``), checked.
    With ``assistants``, the Assistants API's shape is taken as well: the options under
    ``file_search``, and the stores optional (its assistant's and thread's
    ``tool_resources`` give them)."""
    fields = _FILE_SEARCH_FIELDS | {"file_search"} if assistants else _FILE_SEARCH_FIELDS
    for key in tool:
        if key not in fields:
            raise invalid(
                f"{where}.{key}", "unknown field of a file_search tool.", "unknown_parameter"
            )
    ids = tool.get("vector_store_ids")
    if assistants:
        nested = tool.get("file_search") or {}
        if not isinstance(nested, dict) or set(nested) - {"max_num_results", "ranking_options"}:
            raise invalid(
                f"{where}.file_search", "expected an object of max_num_results, ranking_options."
            )
        given: dict[str, Any] = {"type": "file_search", "vector_store_ids": []}
        if ids is not None:
            given = file_search_entry({"type": "file_search", "vector_store_ids": ids}, where)
        options = {**search_options(tool, where), **search_options(nested, f"{where}.file_search")}
        return {**given, **options}
    if ids is None:
        raise invalid(
            f"{where}.vector_store_ids",
            "give the ids of the vector stores to search.",
            "missing_required_parameter",
        )
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids)
    ):
        raise invalid(f"{where}.vector_store_ids", "expected a non-empty list of vector store ids.")
    if len(ids) > MAX_STORES:
        raise invalid(f"{where}.vector_store_ids", f"give at most {MAX_STORES} vector stores.")
    entry = {"type": "file_search", "vector_store_ids": list(dict.fromkeys(ids))}
    return {**entry, **search_options(tool, where)}


def search_options(tool: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A file search's ``max_num_results``, ``filters`` and ``ranking_options``, checked
    (those given)."""
    options: dict[str, Any] = {}
    most = tool.get("max_num_results")
    if most is not None:
        if (
            isinstance(most, bool)
            or not isinstance(most, int)
            or not 1 <= most <= index.MAX_RESULTS
        ):
            raise invalid(
                f"{where}.max_num_results", f"expected an integer from 1 to {index.MAX_RESULTS}."
            )
        options["max_num_results"] = most
    filters = tool.get("filters")
    if filters is not None:
        index.parse_filter(filters, f"{where}.filters")
        options["filters"] = filters
    ranking = tool.get("ranking_options")
    if ranking is not None:
        index.parse_ranking_options(ranking, f"{where}.ranking_options")
        options["ranking_options"] = ranking
    return options


async def check_owned(db: Database, *, user_id: str, tools: Sequence[Mapping[str, Any]]) -> None:
    """What the hosted entries among ``tools`` name is the user's: ``check_stores`` and
    ``check_containers``."""
    await check_stores(db, user_id=user_id, tools=tools)
    await check_containers(db, user_id=user_id, tools=tools)


async def check_stores(db: Database, *, user_id: str, tools: Sequence[Mapping[str, Any]]) -> None:
    """Each ``file_search`` entry among ``tools`` names stores of the user's that are not
    expired (each made active now); else the 404 ``vector_store_not_found`` naming the
    first that is not, its ``param`` the tool's field."""
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or tool.get("type") != "file_search":
            continue
        if not tool.get("vector_store_ids"):
            continue
        try:
            await db.write(
                vector_stores.usable_stores,
                user_id=user_id,
                vector_store_ids=tool["vector_store_ids"],
            )
        except NotFound as exc:
            raise NotFound(
                exc.message, code=exc.code, param=f"tools[{i}].vector_store_ids"
            ) from None


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
    tools: Sequence[BaseModel],
    *,
    settings: Settings,
    policy: AddressPolicy,
    who: Who,
    assistants: bool = False,
) -> list[dict[str, Any]]:
    """The tools an assistant or a run keeps, in order: its functions, and its hosted tools
    read (``read_hosted``). They are kept and run later, when the request is gone, so no
    secret may come with them: a server that needs headers is one the operator registers
    (``[mcp_servers.LABEL]``), whose secrets stay in the config."""
    given = [t.model_dump() for t in tools]
    hosted = read_hosted(given, settings=settings, policy=policy, who=who, assistants=assistants)
    if hosted.secrets:
        index = next(i for i, t in enumerate(given) if t.get("server_label") in hosted.secrets)
        raise unsupported(
            f"tools[{index}].headers",
            "an assistant or a run keeps its tools, and Parley keeps no secret a request "
            "brings: register the server with its headers ([mcp_servers.LABEL]) and name "
            "it by server_label.",
        )
    entries = iter(hosted.entries)
    return [next(entries) if t.get("type") in HOSTED_KINDS else t for t in given]


def kept(
    tools: Sequence[BaseModel],
    svc: Services,
    user: User,
    key_id: str | None = None,
    *,
    assistants: bool = False,
) -> list[dict[str, Any]]:
    """``kept_tools`` for a route of the caller ``user`` (with the key ``key_id``)."""
    who = Who(user.id, user.name, key_id)
    return kept_tools(
        tools, settings=svc.settings, policy=svc.mcp_addresses, who=who, assistants=assistants
    )
