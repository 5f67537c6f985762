"""Files a request gives with its messages (``readers.FileRef``), read before its turn: one
of the user's files by ``file_id`` (another user's, or none, is a 404 naming the field), or
bytes given inline; each checked against the model, so that a file its provider would get
as text but that has none (or too much) is a 400 naming the field (``engine.file_inputs``).

An image given by ``file_id`` becomes a data URL here, as an image given inline is; a file
is kept by reference (``types.file_entries``), and read again for each model call.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from parley.engine import FileInputs, NewMessage
from parley.errors import ParleyError
from parley.providers.base import FileInput
from parley.server.faces.kit.readers import FileRef


@contextmanager
def _named(ref: FileRef) -> Iterator[None]:
    """A fault of the file, named by its field."""
    try:
        yield
    except ParleyError as exc:
        exc.param = ref.param
        raise


async def read_file(
    files: FileInputs, ref: FileRef, *, user_id: str, model: str | None
) -> FileInput:
    """The file ``ref`` gives, read for ``model`` (``FileInputs.read``); with no model,
    only checked (``FileInputs.check``)."""
    with _named(ref):
        if model is None:
            return await files.check(file_input(ref), user_id=user_id)
        return await files.read(file_input(ref), user_id=user_id, model=model)


async def image_url(files: FileInputs, ref: FileRef, *, user_id: str) -> str:
    """The image ``ref`` names by ``file_id``, as a data URL."""
    with _named(ref):
        return await files.image(file_id=ref.file_id or "", user_id=user_id)


def file_input(ref: FileRef) -> FileInput:
    """What the model call is given of ``ref``, still to be read."""
    if ref.data_url is None:
        return FileInput(filename=ref.filename or "", file_id=ref.file_id)
    head, _, data = ref.data_url.partition(",")
    media_type = head.removeprefix("data:").removesuffix(";base64")
    return FileInput(
        filename=ref.filename or "file", data=base64.b64decode(data), media_type=media_type
    )


async def stored_entries(
    files: FileInputs, refs: list[FileRef], *, user_id: str, model: str | None
) -> list[dict[str, Any]]:
    """What a message keeps of ``refs`` (``types.file_entries``, images as data URLs),
    each read for ``model`` first (None: checked only, ``read_file``)."""
    entries: list[dict[str, Any]] = []
    for ref in refs:
        if ref.image:
            url = await image_url(files, ref, user_id=user_id)
            entries.append({"url": url, "file_id": ref.file_id})
            continue
        read = await read_file(files, ref, user_id=user_id, model=model)
        entry: dict[str, Any] = {"type": "file", "filename": read.filename}
        if ref.file_id is not None:
            entry["file_id"] = ref.file_id
        else:
            entry["file_data"] = ref.data_url
        entries.append(entry)
    return entries


async def settle(
    files: FileInputs, messages: list[NewMessage], *, user_id: str, model: str | None
) -> list[NewMessage]:
    """``messages`` with the files they hold still to be read (``{"pending": FileRef}``,
    as ``responses.items.parse_input`` leaves them) read for ``model`` (None: a
    conversation's items, kept before any model is chosen: checked only) and kept as
    ``stored_entries``. Raises as ``read_file`` does, the field named."""
    if not any("pending" in kept for m in messages for kept in m.images or ()):
        return messages
    if model is not None:  # a bad model is the model's fault, not the file's
        files.providers.check_model(model)
    settled: list[NewMessage] = []
    for message in messages:
        given = message.images or []
        refs = [kept["pending"] for kept in given if "pending" in kept]
        if refs:
            entries = await stored_entries(files, refs, user_id=user_id, model=model)
            given = [kept for kept in given if "pending" not in kept] + entries
            message = dataclasses.replace(message, images=given)
        settled.append(message)
    return settled
