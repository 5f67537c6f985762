"""The Containers face's queries that take more than one store call: each runs in one
transaction (``Database.read`` / ``write``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from parley.errors import InvalidRequest
from parley.server.faces.containers.schemas import ContainerPublic
from parley.store import containers as store
from parley.store import files as file_store
from parley.store.records import StoredFile


def files_to_copy(
    conn: Connection, *, user_id: str, file_ids: Sequence[str], most: int
) -> list[StoredFile]:
    """The user's files of ``file_ids`` (``NotFound`` naming the first that is not), each
    once; a 400 when two have the same name (they would land at the same path). With
    files to copy, a user who may make no more containers is refused first."""
    if file_ids:
        store.check_room(conn, user_id=user_id, most=most)
    found = [file_store.get_file(conn, user_id=user_id, file_id=i) for i in dict.fromkeys(file_ids)]
    seen: dict[str, str] = {}
    for f in found:
        if f.filename in seen:
            raise InvalidRequest(
                f"Files {seen[f.filename]} and {f.id} are both named {f.filename!r}: in a "
                f"container they would be the same file, {store.MOUNT}/{f.filename}. Copy "
                "one of them in with POST /v1/containers/{container_id}/files instead.",
                code="duplicate_filename",
                param="file_ids",
            )
        seen[f.filename] = f.id
    return found


def create(
    conn: Connection,
    *,
    user_id: str,
    name: str,
    memory_limit: str,
    expires_after_minutes: int,
    key_hash: str | None,
    most: int,
    files: Sequence[tuple[str, store.NewBytes]],
    disk_bytes: int,
) -> ContainerPublic:
    """A new container with its files (bytes already stored): all, or nothing is made."""
    made = store.create_container(
        conn,
        user_id=user_id,
        name=name,
        memory_limit=memory_limit,
        expires_after_minutes=expires_after_minutes,
        key_hash=key_hash,
        most=most,
    )
    for path, stored in files:
        store.add_container_file(
            conn,
            user_id=user_id,
            container_id=made.id,
            path=path,
            source="user",
            stored=stored,
            disk_bytes=disk_bytes,
        )
    return ContainerPublic.of(made)
