"""A turn's hosted tools, made ready (``HostedTools.open``) and run (``Toolbox.run``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from parley.config import Settings
from parley.engine.hosted import code_interpreter, file_search, mcp, web_search
from parley.engine.hosted.approvals import Approved
from parley.engine.hosted.containers import Containers
from parley.engine.hosted.sessions import Sessions
from parley.errors import ParleyError
from parley.events import HostedToolEvent
from parley.mcp.naming import exposed_names
from parley.mcp.servers import Who
from parley.mcp.shapes import CallResult, ListedTool, Listing
from parley.metrics import Metrics
from parley.providers.registry import ProviderRegistry
from parley.retrieval.websearch import backend_of
from parley.store import threads as thread_store
from parley.store import users as user_store
from parley.store import vector_stores
from parley.store.db import Database, new_id
from parley.types import FunctionSpec, Role, ToolCall, ToolSpec

if TYPE_CHECKING:
    from parley.engine.turn import Turn


#: Hosted calls one turn may make when its run sets no ``max_tool_calls``: a model that
#: keeps calling tools ends its turn, rather than running for ever.
MAX_CALLS = 64


def hosted_entries(tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The entries of a run's ``tools`` the server runs (all but the client's functions)."""
    return [t for t in tools if t.get("type", "function") != "function"]


@dataclass(frozen=True, slots=True)
class Offered:
    """One function the model sees, and the tool behind it."""

    spec: ToolSpec
    server: mcp.McpServer
    tool: ListedTool
    approval: bool


@dataclass(frozen=True, slots=True)
class Ahead:
    """A message a turn stores ahead of its answer: a tool list, or the result of a call
    it ran once approved."""

    role: Role
    item: dict[str, Any]
    content: str = ""
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ran:
    """A hosted call the turn ran: what the model is told, and its item."""

    call_id: str
    content: str
    item: dict[str, Any]


class HostedTools:
    """The engine's registry of hosted tools: opens each turn's ``Toolbox``."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: Metrics,
        providers: ProviderRegistry | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        #: Embeds the queries of a file search in a store with an embedding model.
        self.providers = providers
        self.bounds = mcp.bounds_of(settings)
        self.sessions = Sessions(self.bounds)
        #: The containers whose sandboxes run the code interpreter's calls here.
        self.containers = Containers(db, settings, metrics)
        #: The search service of the web searches (none configured: None).
        self.web = backend_of(settings.web_search_url, settings.web_search_timeout)
        self._factory: Any = None

    @property
    def guarded(self) -> Any:
        """The HTTP clients of servers a request names by URL: they reach only the
        addresses the operator allows (``parley.mcp.addresses``)."""
        if self._factory is None:
            from parley.mcp.addresses import guarded_client_factory
            from parley.mcp.servers import address_policy

            self._factory = guarded_client_factory(address_policy(self.settings))
        return self._factory

    async def aclose(self) -> None:
        """Close the open MCP sessions and the containers' sandboxes (the engine stops)."""
        await self.sessions.aclose()
        await self.containers.aclose()
        if self.web is not None:
            await self.web.aclose()

    async def open(self, turn: Turn) -> Toolbox | None:
        """The turn's hosted tools, listed (events and items of the listings made now), or
        None when its run has none and its messages approved no call."""
        entries = hosted_entries(turn.run.tools)
        if not entries and not turn.approved:
            return None
        most = (turn.run.options or {}).get("max_tool_calls")
        box = Toolbox(self, turn, max_calls=most if isinstance(most, int) else MAX_CALLS)
        await box.prepare(entries)
        return box


@dataclass(eq=False)
class Toolbox:
    """The hosted tools of one turn."""

    hosted: HostedTools
    turn: Turn
    servers: list[mcp.McpServer] = field(default_factory=list)
    offered: dict[str, Offered] = field(default_factory=dict)
    #: The ``mcp_list_tools`` items listed by this turn, to store ahead of its answer.
    listed: list[dict[str, Any]] = field(default_factory=list)
    #: Hosted calls the turn may make (the run's ``max_tool_calls``, else ``MAX_CALLS``),
    #: and has made.
    max_calls: int = 0
    made: int = 0
    #: Why the servers of some labels cannot be used by this turn (not listed, not called).
    unusable: dict[str, str] = field(default_factory=dict)
    #: The file search the model may call, by the name it sees (``hosted.file_search``).
    searches: dict[str, file_search.FileSearch] = field(default_factory=dict)
    #: The code interpreter the model may call, by the name it sees
    #: (``hosted.code_interpreter``).
    interpreters: dict[str, code_interpreter.Interpreter] = field(default_factory=dict)
    #: The web search the model may call, by the name it sees (``hosted.web_search``).
    webs: dict[str, web_search.WebSearch] = field(default_factory=dict)

    @property
    def functions(self) -> list[ToolSpec]:
        specs = [o.spec for o in self.offered.values()]
        specs += [s.spec(name) for name, s in self.searches.items()]
        specs += [w.spec(name) for name, w in self.webs.items()]
        return specs + [i.spec(name) for name, i in self.interpreters.items()]

    def owns(self, name: str) -> bool:
        return (
            name in self.offered
            or name in self.searches
            or name in self.interpreters
            or name in self.webs
        )

    def needs_approval(self, name: str) -> bool:
        offered = self.offered.get(name)
        return offered is not None and offered.approval

    def stored(
        self, call: ToolCall, item_id: str | None = None, approval_id: str | None = None
    ) -> dict[str, Any]:
        """A call as its answer stores it: a hosted one marked with its server and tool,
        the id of its item once run, and the id of the approval it waits for."""
        dumped = call.model_dump()
        if call.name in self.searches:
            dumped["hosted"] = {"type": "file_search", "item_id": item_id}
            return dumped
        if call.name in self.interpreters:
            dumped["hosted"] = {"type": "code_interpreter", "item_id": item_id}
            return dumped
        if call.name in self.webs:
            dumped["hosted"] = {"type": "web_search", "item_id": item_id}
            return dumped
        offered = self.offered.get(call.name)
        if offered is not None:
            dumped["hosted"] = {
                "type": "mcp",
                "server_label": offered.server.label,
                "name": offered.tool.name,
                "item_id": item_id,
                "approval_request_id": approval_id,
            }
        return dumped

    def hosted_of(self, name: str) -> dict[str, Any]:
        """What an approval action says of the tool behind ``name``."""
        offered = self.offered[name]
        return {"type": "mcp", "server_label": offered.server.label, "name": offered.tool.name}

    def calls_left(self) -> int | None:
        """How many more hosted calls the turn may make."""
        return max(0, self.max_calls - self.made)

    async def prepare(self, entries: list[Mapping[str, Any]]) -> None:
        turn, settings = self.turn, self.hosted.settings
        known = await self.hosted.db.read(
            thread_store.hosted_items, thread_id=turn.run.thread_id, kind="mcp_list_tools"
        )
        lists = {i["server_label"]: i for i in known if not i.get("error")}
        who = await self._caller(entries)
        tools: list[tuple[mcp.McpServer, ListedTool]] = []
        for entry in entries:
            if entry.get("type") != "mcp":
                continue
            label = str(entry["server_label"])
            server = mcp.server_of(entry, settings, turn.secrets.get(label), who)
            if isinstance(server, str):
                self.unusable[label] = server
                self._listed(label, Listing([], error=server))
                continue
            self.servers.append(server)
            kept = lists.get(label)
            if kept is not None:
                found = mcp.tools_of(kept)
                server.known = tuple(t.name for t in found)
            else:
                found = (await self._list(server)).tools
            tools += [(server, t) for t in found if server.offers(t)]
        taken = {t["function"]["name"] for t in turn.run.tools if t.get("type") == "function"}
        for entry in entries:
            if entry.get("type") == "file_search" and not self.searches:
                name = file_search.NAME if file_search.NAME not in taken else file_search.OTHER_NAME
                search = file_search.FileSearch.of(await self._with_stores(entry))
                self.searches[name] = await file_search.ready(
                    search,
                    db=self.hosted.db,
                    user_id=turn.run.user_id,
                    within=settings.file_search_wait_seconds,
                )
        taken |= set(self.searches)
        for entry in entries:
            if entry.get("type") == "code_interpreter" and not self.interpreters:
                name = code_interpreter.NAME
                if name in taken:
                    name = code_interpreter.OTHER_NAME
                self.interpreters[name] = code_interpreter.Interpreter.of(entry)
        taken |= set(self.interpreters)
        for entry in entries:
            if entry.get("type") == "web_search" and not self.webs:
                name = web_search.NAME if web_search.NAME not in taken else web_search.OTHER_NAME
                self.webs[name] = web_search.WebSearch.of(entry)
        taken |= set(self.webs)
        names = exposed_names([(s.label, t.name) for s, t in tools])
        for (server, tool), name in zip(tools, names, strict=True):
            if name in taken:
                name = f"{server.label}__{name}"[:64]
            spec = ToolSpec(
                function=FunctionSpec(
                    name=name,
                    description=tool.description or "",
                    parameters=tool.input_schema,
                )
            )
            self.offered[name] = Offered(spec, server, tool, server.needs_approval(tool))

    async def _with_stores(self, entry: Mapping[str, Any]) -> Mapping[str, Any]:
        """A ``file_search`` entry that names no store (an assistant made through the
        Assistants API, run by another face) searches the stores of the run's assistant
        and thread (``vector_stores.run_stores``), as a run of the Assistants API does: a
        thread is one thread whatever face runs it. An entry that names stores searches
        those alone. The thread's among them are its ``THREAD_STORES``: the turn waits for
        their files (``file_search.ready``)."""
        if entry.get("vector_store_ids"):
            return entry
        run = self.turn.run
        found, own = await self.hosted.db.read(
            vector_stores.run_stores,
            user_id=run.user_id,
            assistant_id=run.assistant_id,
            thread_id=run.thread_id,
        )
        return {**entry, "vector_store_ids": found, file_search.THREAD_STORES: own}

    async def _caller(self, entries: list[Mapping[str, Any]]) -> Who:
        """Who the turn is for, as the servers the operator registered for some users or
        keys name callers: the run's user, with the key of the request that started the
        turn (none when it was revoked since). Read only when such a server is among
        ``entries``: an approval given, or an assistant made, with a key that may use it
        does not let another key use it."""
        run, source = self.turn.run, self.turn.source
        registered = self.hosted.settings.mcp_servers
        configs = [
            registered.get(str(e["server_label"]))
            for e in entries
            if e.get("type") == "mcp" and "server_url" not in e
        ]
        if all(c is None or (c.users is None and c.keys is None) for c in configs):
            return Who(run.user_id)  # every server here lets anyone use it
        key_hash = None if source is None else source.key_hash
        return await self.hosted.db.read(caller_of, user_id=run.user_id, key_hash=key_hash)

    async def _list(self, server: mcp.McpServer) -> Listing:
        item = mcp.listing_item(server.label, None)
        self.turn.emit(HostedToolEvent(run_id=self.turn.run.id, phase="started", item=item))
        began = time.perf_counter()
        session = await mcp.connect(
            server, self.hosted.sessions, self.turn.run.user_id, self.hosted.guarded
        )
        listing = Listing([], error=session) if isinstance(session, str) else None
        if listing is None:
            assert not isinstance(session, str)
            listing = await session.list_tools()
            shown = [t for t in listing.tools if server.offers(t)]  # as OpenAI lists them
            listing = Listing(shown, listing.error, listing.cut)
        self._measure(server, "list", began, listing.error is not None)
        self._listed(server.label, listing, item["id"])
        return listing

    def _listed(self, label: str, listing: Listing, item_id: str | None = None) -> None:
        item = mcp.listing_item(label, listing, item_id)
        if item_id is None:
            started = mcp.listing_item(label, None, item["id"])
            self.turn.emit(HostedToolEvent(run_id=self.turn.run.id, phase="started", item=started))
        self.turn.emit(HostedToolEvent(run_id=self.turn.run.id, phase="done", item=item))
        self.listed.append(item)

    async def run(self, calls: list[ToolCall]) -> list[Ran]:
        """Run the hosted ``calls`` of one answer at once; each one's events go out as it
        starts and ends."""
        self.made += len(calls)
        return list(await asyncio.gather(*(self._run(call) for call in calls)))

    async def run_approved(self, approved: list[Approved]) -> list[Ran]:
        """Run the calls the client approved (a call of a server this turn does not have is
        answered with an error saying so)."""
        by_tool = {(o.server.label, o.tool.name): name for name, o in self.offered.items()}
        runs = []
        for call in approved:
            name = by_tool.get((call.server_label, call.tool))
            if name is None:
                runs.append(self._absent(call))
                continue
            self.made += 1
            runs.append(
                self._run(
                    ToolCall(id=call.call_id, name=name, arguments=call.arguments), call.request_id
                )
            )
        return list(await asyncio.gather(*runs))

    async def _absent(self, call: Approved) -> Ran:
        why = self.unusable.get(call.server_label) or (
            f"the MCP server {call.server_label!r} (or its tool {call.tool!r}) is not among "
            "this response's tools: send the mcp tool again with the approval"
        )
        item = mcp.call_item(
            call.server_label,
            call.tool,
            call.arguments,
            item_id=new_id("mcp"),
            result=CallResult(None, why, failure="protocol"),
            approval_request_id=call.request_id,
        )
        self.turn.emit(HostedToolEvent(run_id=self.turn.run.id, phase="done", item=item))
        return Ran(call.call_id, f"Error: {why}", item)

    async def _run(self, call: ToolCall, approval_request_id: str | None = None) -> Ran:
        search = self.searches.get(call.name)
        if search is not None:
            return await self._search(call, search)
        interpreter = self.interpreters.get(call.name)
        if interpreter is not None:
            return await self._interpret(call, interpreter)
        web = self.webs.get(call.name)
        if web is not None:
            return await self._search_web(call, web)
        offered = self.offered[call.name]
        server, tool = offered.server, offered.tool
        item_id = new_id("mcp")
        started = mcp.call_item(
            server.label,
            tool.name,
            call.arguments,
            item_id=item_id,
            approval_request_id=approval_request_id,
        )
        run_id = self.turn.run.id
        self.turn.emit(HostedToolEvent(run_id=run_id, phase="started", item=started))
        began = time.perf_counter()
        session = await mcp.connect(
            server, self.hosted.sessions, self.turn.run.user_id, self.hosted.guarded
        )
        if isinstance(session, str):
            result = CallResult(None, session, failure="lost")
        else:
            result = await session.call(tool.name, call.arguments)
        failed = result.error is not None
        self._measure(server, "call", began, failed)
        item = mcp.call_item(
            server.label,
            tool.name,
            call.arguments,
            item_id=item_id,
            result=result,
            approval_request_id=approval_request_id,
        )
        self.turn.emit(HostedToolEvent(run_id=run_id, phase="done", item=item))
        return Ran(call.id, mcp.told(result), item)

    async def _search(self, call: ToolCall, search: file_search.FileSearch) -> Ran:
        queries = file_search.queries_of(call.arguments)
        item_id, show = file_search.new_item_id(), search.show_results
        run_id = self.turn.run.id
        started = file_search.call_item(queries, item_id=item_id, show=show, call_id=call.id)
        self.turn.emit(HostedToolEvent(run_id=run_id, phase="started", item=started))
        found = await file_search.search(
            search,
            queries,
            db=self.hosted.db,
            providers=self.hosted.providers,
            user_id=self.turn.run.user_id,
        )
        metrics = self.hosted.metrics
        metrics.hosted_call(
            "file_search", "file_search", "search", found.took, found.error is not None
        )
        if found.error is None:
            metrics.search_duration(found.took, source="file_search", mode=found.mode)
        item = file_search.call_item(
            queries,
            item_id=item_id,
            found=found,
            show=show,
            call_id=call.id,
            unindexed=search.unindexed,
        )
        self.turn.emit(HostedToolEvent(run_id=run_id, phase="done", item=item))
        return Ran(call.id, file_search.told(item), item)

    async def _search_web(self, call: ToolCall, web: web_search.WebSearch) -> Ran:
        query = web_search.query_of(call.arguments)
        item_id, show = web_search.new_item_id(), web.show_sources
        run_id = self.turn.run.id
        started = web_search.call_item(query, item_id=item_id, show=show, call_id=call.id)
        self.turn.emit(HostedToolEvent(run_id=run_id, phase="started", item=started))
        found = await web_search.search(self.hosted.web, web, query)
        self.hosted.metrics.hosted_call(
            "web_search", "web_search", "search", found.took, found.error is not None
        )
        item = web_search.call_item(query, item_id=item_id, found=found, show=show, call_id=call.id)
        self.turn.emit(HostedToolEvent(run_id=run_id, phase="done", item=item))
        return Ran(call.id, web_search.told(item), item)

    async def _interpret(self, call: ToolCall, interpreter: code_interpreter.Interpreter) -> Ran:
        """Run a call's code in its container: the entry's, or the thread's own."""
        code = code_interpreter.code_of(call.arguments)
        containers, run = self.hosted.containers, self.turn.run
        why = containers.unavailable()
        if why is None and not code.strip():
            why = 'no code was given: call the tool with {"code": "..."}'
        elif why is None and len(code) > code_interpreter.MAX_CODE:
            why = f"the code is longer than {code_interpreter.MAX_CODE} characters"
        container = None
        if why is None:
            source = self.turn.source
            try:
                container = await containers.container_for(
                    interpreter,
                    user_id=run.user_id,
                    thread_id=run.thread_id,
                    key_hash=None if source is None else source.key_hash,
                )
            except ParleyError as exc:
                why = exc.message
        container_id = container.id if container is not None else interpreter.container_id
        item_id, show = code_interpreter.new_item_id(), interpreter.show_outputs
        started = code_interpreter.call_item(
            code, item_id=item_id, container_id=container_id, call_id=call.id, show=show
        )
        self.turn.emit(HostedToolEvent(run_id=run.id, phase="started", item=started))
        if container is None:
            result = code_interpreter.Result("", [], [], error=why, ended="refused")
        else:
            result = await containers.run(container, code, image_files=interpreter.image_files)
        self.hosted.metrics.hosted_call(
            "code_interpreter", "python", "call", result.took, result.ended != "ok"
        )
        item = code_interpreter.call_item(
            code,
            item_id=item_id,
            container_id=container_id,
            call_id=call.id,
            result=result,
            show=show,
        )
        self.turn.emit(HostedToolEvent(run_id=run.id, phase="done", item=item))
        return Ran(call.id, code_interpreter.told(item), item)

    def _measure(self, server: mcp.McpServer, operation: str, began: float, failed: bool) -> None:
        label = "other" if server.from_request else server.label  # no label a client makes up
        self.hosted.metrics.hosted_call("mcp", label, operation, mcp.elapsed(began), failed)

    async def aclose(self) -> None:
        """The turn is done with its sessions (they stay open for the next one:
        ``hosted.sessions``)."""
        for server in self.servers:
            server.session = None


def caller_of(conn: Connection, *, user_id: str, key_hash: str | None) -> Who:
    """The user ``user_id`` as a registered server's access lists name it, with the API
    key of ``key_hash`` while it is one of theirs and not revoked."""
    owner = None if key_hash is None else user_store.find_key(conn, key_hash=key_hash)
    if owner is not None and owner.user.id == user_id:
        return Who(user_id, owner.user.name, owner.key_id)
    return Who(user_id, user_store.get_user(conn, user_id=user_id).name)


def store_ahead(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    run_id: str,
    message_id: str,
    rows: list[Ahead],
) -> str:
    """Store what a turn made before its model call ahead of its answer (its tool lists,
    the calls it ran once approved): the answer's placeholder, still empty, takes the first
    row, new messages the others, and a new placeholder follows them. Returns its id."""
    first, *rest = rows
    thread_store.fill_placeholder(
        conn,
        message_id=message_id,
        role=first.role,
        content=first.content,
        tool_call_id=first.tool_call_id,
        item=first.item,
    )
    for row in rest:
        thread_store.add_message(
            conn,
            user_id=user_id,
            thread_id=thread_id,
            role=row.role,
            content=row.content,
            tool_call_id=row.tool_call_id,
            run_id=run_id,
            item=row.item,
        )
    placeholder = thread_store.add_message(
        conn, user_id=user_id, thread_id=thread_id, role=Role.ASSISTANT, content="", run_id=run_id
    )
    return placeholder.id
