"""Where ``parley import`` reads an Assistants API's data: a live server (``UrlSource``) or a
folder of JSON files in the API's own shapes (``DirSource``). Both answer the same five
questions: the assistants, the thread ids, a thread, its messages (oldest first), its runs
and a run's steps, as the API's objects (plain dicts).

A folder holds (see docs/import.md)::

    assistants.json                        the assistants (optional)
    threads.json                           thread objects or ids (optional)
    threads/<thread_id>/thread.json        the thread (optional: its id is the folder's name)
    threads/<thread_id>/messages.json      its messages
    threads/<thread_id>/runs.json          its runs (optional)
    threads/<thread_id>/runs/<run_id>/steps.json   a run's steps (optional)

Each list file is a list page (``{"object": "list", "data": [...]}``), a plain array, or an
array of such pages. Every file is read whole up to a size cap; an error names the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import httpx

#: The largest JSON file a folder import reads, by default.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Objects asked for per page of a server's list.
PAGE_SIZE = 100


class ImportFailure(Exception):
    """What stops an import, or one thread of it: a message for the user, naming the file
    or the request."""


class Source(Protocol):
    """An Assistants API's data, read."""

    #: What the Parley ids of the imported objects are derived from, with the source ids.
    origin: str

    async def assistants(self) -> list[dict[str, Any]]: ...

    async def thread_ids(self) -> list[str]: ...

    async def thread(self, thread_id: str) -> dict[str, Any]: ...

    async def messages(self, thread_id: str) -> list[dict[str, Any]]: ...

    async def runs(self, thread_id: str) -> list[dict[str, Any]]: ...

    async def steps(self, thread_id: str, run_id: str) -> list[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


def oldest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects in the order they were made: a list given newest first (the API's default
    order) is turned around, then sorted by ``created_at`` (stable: objects of the same
    second keep their order)."""
    stamps = [i.get("created_at") for i in items]
    if len(items) > 1 and all(isinstance(s, int | float) for s in stamps):
        if stamps[0] > stamps[-1]:  # type: ignore[operator]
            items = items[::-1]
        return sorted(items, key=lambda i: float(i["created_at"]))
    return items


# ------------------------------------------------------------------------- a folder


class DirSource:
    """A folder of JSON files (the module's docstring shows its layout)."""

    def __init__(
        self,
        root: Path,
        *,
        thread_ids: list[str] | None = None,
        origin: str | None = None,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        if not root.is_dir():
            raise ImportFailure(f"{root}: no such folder")
        self.root = root
        self.given = thread_ids or []
        self.origin = origin or f"dir:{root.resolve()}"
        self.max_bytes = max_bytes

    def _read(self, path: Path) -> Any:
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise ImportFailure(
                    f"{path}: {size} bytes, more than the {self.max_bytes} read "
                    "(--max-file-mb raises it)"
                )
            text = path.read_bytes()
        except OSError as exc:
            raise ImportFailure(f"{path}: cannot read it ({exc.strerror or exc})") from None
        try:
            return json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ImportFailure(f"{path}: not JSON ({exc})") from None

    def _list(self, path: Path, *, required: bool = False) -> list[Any]:
        if not path.exists():
            if required:
                raise ImportFailure(f"{path}: no such file")
            return []
        return list_items(self._read(path), str(path))

    async def assistants(self) -> list[dict[str, Any]]:
        path = self.root / "assistants.json"
        return _objects(self._list(path), str(path))

    async def thread_ids(self) -> list[str]:
        if self.given:
            return list(dict.fromkeys(self.given))
        listed = self.root / "threads.json"
        ids = []
        for n, entry in enumerate(self._list(listed)):
            thread_id = entry if isinstance(entry, str) else _object(entry, listed, n).get("id")
            if not isinstance(thread_id, str) or not thread_id:
                raise ImportFailure(f"{listed}: entry {n} has no thread id")
            ids.append(thread_id)
        folder = self.root / "threads"
        if folder.is_dir():
            ids += sorted(p.name for p in folder.iterdir() if p.is_dir())
        return list(dict.fromkeys(ids))

    def _thread_dir(self, thread_id: str) -> Path:
        if "/" in thread_id or "\\" in thread_id or thread_id in (".", ".."):
            raise ImportFailure(f"{thread_id!r} is not a thread id")
        return self.root / "threads" / thread_id

    async def thread(self, thread_id: str) -> dict[str, Any]:
        path = self._thread_dir(thread_id) / "thread.json"
        if path.exists():
            found = self._read(path)
            if not isinstance(found, dict):
                raise ImportFailure(f"{path}: expected a thread object")
            return found
        listed = self.root / "threads.json"
        for entry in self._list(listed):
            if isinstance(entry, dict) and entry.get("id") == thread_id:
                return entry
        if not self._thread_dir(thread_id).is_dir():
            raise ImportFailure(f"{self._thread_dir(thread_id)}: no such folder")
        return {"id": thread_id, "object": "thread", "metadata": {}}

    async def messages(self, thread_id: str) -> list[dict[str, Any]]:
        path = self._thread_dir(thread_id) / "messages.json"
        return oldest_first(_objects(self._list(path, required=True), str(path)))

    async def runs(self, thread_id: str) -> list[dict[str, Any]]:
        path = self._thread_dir(thread_id) / "runs.json"
        return oldest_first(_objects(self._list(path), str(path)))

    async def steps(self, thread_id: str, run_id: str) -> list[dict[str, Any]]:
        if "/" in run_id or "\\" in run_id or run_id in (".", ".."):
            raise ImportFailure(f"{run_id!r} is not a run id")
        path = self._thread_dir(thread_id) / "runs" / run_id / "steps.json"
        return oldest_first(_objects(self._list(path), str(path)))

    async def aclose(self) -> None:
        return None


def list_items(found: Any, where: str) -> list[Any]:
    """The items of a list file: a list page, a plain array, or an array of list pages."""
    if isinstance(found, dict):
        data = found.get("data")
        if not isinstance(data, list):
            raise ImportFailure(f"{where}: expected a list, or an object with a 'data' list")
        return data
    if not isinstance(found, list):
        raise ImportFailure(f"{where}: expected a list, or an object with a 'data' list")
    if found and all(isinstance(p, dict) and isinstance(p.get("data"), list) for p in found):
        return [item for page in found for item in page["data"]]
    return found


def _object(entry: Any, where: Path | str, n: int) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ImportFailure(f"{where}: entry {n} is not an object")
    return entry


def _objects(entries: Iterable[Any], where: str) -> list[dict[str, Any]]:
    found = []
    for n, entry in enumerate(entries):
        obj = _object(entry, where, n)
        if not isinstance(obj.get("id"), str) or not obj["id"]:
            raise ImportFailure(f"{where}: entry {n} has no id")
        found.append(obj)
    return found


# ------------------------------------------------------------------------- a server


class UrlSource:
    """A server that speaks the Assistants API: every list read page by page, oldest
    first. Thread ids are those given; with none, the server's own thread list
    (``GET /v1/threads``, which Parley has and OpenAI has not)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        thread_ids: list[str],
        origin: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base = url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ImportFailure(f"{url}: expected an http:// or https:// URL")
        if not base.endswith("/v1"):
            base += "/v1"
        self.base = base
        self.origin = origin or f"url:{base}"
        self.given = thread_ids
        self.http = httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"},
            timeout=60.0,
            transport=transport,
        )

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            answer = await self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ImportFailure(f"GET {self.base}{path}: {exc or type(exc).__name__}") from None
        if answer.status_code == 401:
            raise ImportFailure(f"GET {self.base}{path}: 401, the source refused the API key")
        if answer.status_code != 200:
            raise ImportFailure(
                f"GET {self.base}{path}: {answer.status_code} {_said(answer)}".rstrip()
            )
        try:
            return answer.json()
        except ValueError:
            raise ImportFailure(f"GET {self.base}{path}: the answer is not JSON") from None

    async def _all(self, path: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE_SIZE, "order": "asc"}
            if after:
                params["after"] = after
            page = await self._get(path, params)
            items = _objects(list_items(page, f"GET {self.base}{path}"), f"GET {self.base}{path}")
            found += items
            more = isinstance(page, dict) and page.get("has_more") is True
            last = page.get("last_id") if isinstance(page, dict) else None
            last = last or (items[-1]["id"] if items else None)
            if not more or not last or last == after:
                return found
            after = last

    async def assistants(self) -> list[dict[str, Any]]:
        return await self._all("/assistants")

    async def thread_ids(self) -> list[str]:
        if self.given:
            return list(dict.fromkeys(self.given))
        try:
            return [t["id"] for t in await self._all("/threads")]
        except ImportFailure as exc:
            if "401" in str(exc):
                raise
            raise ImportFailure(
                f"{exc}: the source lists no threads (OpenAI's API has no such list); name "
                "them with --thread or --threads-file"
            ) from None

    async def thread(self, thread_id: str) -> dict[str, Any]:
        found = await self._get(f"/threads/{_segment(thread_id)}")
        if not isinstance(found, dict):
            raise ImportFailure(f"GET {self.base}/threads/{thread_id}: not a thread object")
        return found

    async def messages(self, thread_id: str) -> list[dict[str, Any]]:
        return await self._all(f"/threads/{_segment(thread_id)}/messages")

    async def runs(self, thread_id: str) -> list[dict[str, Any]]:
        return await self._all(f"/threads/{_segment(thread_id)}/runs")

    async def steps(self, thread_id: str, run_id: str) -> list[dict[str, Any]]:
        return await self._all(f"/threads/{_segment(thread_id)}/runs/{_segment(run_id)}/steps")

    async def aclose(self) -> None:
        await self.http.aclose()


def _segment(value: str) -> str:
    """An id as one path segment."""
    if not value or "/" in value or "?" in value or "#" in value or value in (".", ".."):
        raise ImportFailure(f"{value!r} is not an id")
    return value


def _said(answer: httpx.Response) -> str:
    """The error message of an answer, if it has one (shortened)."""
    try:
        body = answer.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:300] if message else ""
