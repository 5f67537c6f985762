"""The Assistants API's files, as its requests give them: an assistant's or thread's
``tool_resources`` (the stores its ``file_search`` searches, the files its
``code_interpreter`` container starts with), and a message's ``attachments``."""

from __future__ import annotations

from typing import Any

from parley.server.faces.kit.readers import invalid


def read_tool_resources(value: Any, param: str = "tool_resources") -> dict[str, Any] | None:
    """An assistant's or thread's ``tool_resources``, checked: ``file_search`` with
    ``vector_store_ids`` (at most one) or ``vector_stores`` to make (at most one:
    ``file_ids``, ``chunking_strategy``, ``metadata``); ``code_interpreter`` with
    ``file_ids`` (at most ``MAX_CODE_FILES``), the files its container starts with."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"file_search", "code_interpreter"}:
        raise invalid(param, "expected an object of file_search and code_interpreter.")
    code = value.get("code_interpreter")
    code_files: dict[str, Any] = {}
    if code is not None:
        where = f"{param}.code_interpreter"
        if not isinstance(code, dict) or set(code) - {"file_ids"}:
            raise invalid(where, "expected an object of file_ids.")
        ids = code.get("file_ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise invalid(f"{where}.file_ids", "expected a list of file ids.")
        if len(ids) > MAX_CODE_FILES:
            raise invalid(f"{where}.file_ids", f"give at most {MAX_CODE_FILES} files.")
        code_files = {"code_interpreter": {"file_ids": list(dict.fromkeys(ids))}}
    search = value.get("file_search")
    if search is None:
        return code_files
    where = f"{param}.file_search"
    if not isinstance(search, dict) or set(search) - {"vector_store_ids", "vector_stores"}:
        raise invalid(where, "expected an object of vector_store_ids or vector_stores.")
    ids = search.get("vector_store_ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise invalid(f"{where}.vector_store_ids", "expected a list of vector store ids.")
    stores = search.get("vector_stores") or []
    if not isinstance(stores, list):
        raise invalid(f"{where}.vector_stores", "expected a list of vector stores to make.")
    if len(ids) + len(stores) > 1:
        raise invalid(where, "give at most one vector store (vector_store_ids or vector_stores).")
    made = []
    for n, store in enumerate(stores):
        at = f"{where}.vector_stores[{n}]"
        if not isinstance(store, dict) or set(store) - {
            "file_ids",
            "chunking_strategy",
            "metadata",
        }:
            raise invalid(at, "expected an object of file_ids, chunking_strategy, metadata.")
        files = store.get("file_ids") or []
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise invalid(f"{at}.file_ids", "expected a list of file ids.")
        if len(files) > MAX_ATTACHED:
            raise invalid(f"{at}.file_ids", f"give at most {MAX_ATTACHED} files.")
        for key in ("chunking_strategy", "metadata"):
            if store.get(key) is not None and not isinstance(store[key], dict):
                raise invalid(f"{at}.{key}", "expected an object.")
        made.append({k: v for k, v in store.items() if v is not None})
    return {"file_search": {"vector_store_ids": list(ids), "vector_stores": made}, **code_files}


#: The most files one message's attachments, or one store made in passing, may hold.
MAX_ATTACHED = 100
#: The most files an assistant's or thread's ``code_interpreter`` resources may give.
MAX_CODE_FILES = 20


def read_attachments(value: Any, param: str = "attachments") -> list[dict[str, Any]] | None:
    """A message's ``attachments``, checked: ``[{file_id, tools: [{type: file_search} |
    {type: code_interpreter}]}]``: the file goes into the thread's vector store, its
    container, or both."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid(param, "expected a list of attachments.")
    if len(value) > MAX_ATTACHED:
        raise invalid(param, f"give at most {MAX_ATTACHED} attachments.")
    kept = []
    for n, attachment in enumerate(value):
        at = f"{param}[{n}]"
        if not isinstance(attachment, dict) or set(attachment) - {"file_id", "tools"}:
            raise invalid(at, "expected an object of file_id and tools.")
        file_id = attachment.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise invalid(f"{at}.file_id", "expected a file id.", "missing_required_parameter")
        tools = attachment.get("tools") or []
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise invalid(f"{at}.tools", "expected a list of tools.")
        kinds = []
        for k, tool in enumerate(tools):
            if tool.get("type") not in ("file_search", "code_interpreter"):
                raise invalid(f"{at}.tools[{k}].type", "expected file_search or code_interpreter.")
            if tool["type"] not in kinds:
                kinds.append(tool["type"])
        kept.append({"file_id": file_id, "tools": [{"type": kind} for kind in kinds]})
    return kept
