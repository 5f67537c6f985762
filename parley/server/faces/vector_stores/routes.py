"""``/v1/vector_stores``: stores, their files, file batches and search, in OpenAI's shapes.

A file added to a store waits ``in_progress`` until a worker of any replica has read,
chunked and embedded it (``parley.retrieval.ingest``); the answers here read where it stands.
A store remembers the embedding model it was made with (``PARLEY_EMBEDDING_MODEL`` then):
its search embeds the query with that model and ranks by words and vectors together; a
store without one, or a database without the vector extension, is searched by its words.
Another user's store, file or batch answers 404 on every route.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from parley.server.deps import AuthenticatedCaller, CurrentUser, DescList, Svc
from parley.server.faces.kit.bodies import Deleted
from parley.server.faces.kit.pages import Page
from parley.server.faces.vector_stores import reads
from parley.server.faces.vector_stores.schemas import (
    BatchCreate,
    FileBatchPublic,
    FileContentPage,
    FileCreate,
    FileUpdate,
    SearchRequest,
    SearchResultItem,
    SearchResultsPage,
    Status,
    VectorStoreCreate,
    VectorStoreFilePublic,
    VectorStorePublic,
    VectorStoreUpdate,
    stored_strategy,
)
from parley.server.openapi import errors, upstream_errors
from parley.store import index
from parley.store import vector_stores as store
from parley.store.pagination import ListQuery
from parley.types import Usage

router = APIRouter(tags=["vector stores"])

#: The ``filter`` of a list of a store's files.
StatusFilter = Annotated[Status | None, Query(description="Only the files of this status.")]

#: The usage face of the query embeddings of searches.
SEARCH_FACE = "vector_stores.search"


# ----------------------------------------------------------------------------- stores


@router.post("/vector_stores", response_model=VectorStorePublic, responses=errors(400, 404))
async def create_vector_store(
    body: VectorStoreCreate, caller: AuthenticatedCaller, svc: Svc
) -> VectorStorePublic:
    strategy = stored_strategy(body.chunking_strategy)
    user = caller.user
    made = await svc.db.write_retried(
        reads.create_store,
        user_id=user.id,
        key_hash=caller.key_hash,
        files=[store.FileToAdd(i, {}, strategy) for i in dict.fromkeys(body.file_ids or ())],
        expires_after_days=None if body.expires_after is None else body.expires_after.days,
        name=body.name,
        description=body.description,
        metadata=body.metadata,
        embedding_model=svc.settings.embedding_model,
    )
    if body.file_ids:
        _added(svc)
    return made


def _added(svc: Svc) -> None:
    """Files were just put in a store: this replica's ingestion worker looks at once
    (the others find them at their next look)."""
    svc.engine.upkeep.ingestion.wake()


@router.get("/vector_stores", responses=errors(400))
async def list_vector_stores(user: CurrentUser, svc: Svc, q: DescList) -> Page[VectorStorePublic]:
    return await svc.db.read(reads.list_stores, user_id=user.id, page=q)


@router.get("/vector_stores/{vector_store_id}")
async def retrieve_vector_store(
    vector_store_id: str, user: CurrentUser, svc: Svc
) -> VectorStorePublic:
    return await svc.db.read(reads.retrieve_store, user_id=user.id, vector_store_id=vector_store_id)


@router.post("/vector_stores/{vector_store_id}", responses=errors(400))
async def update_vector_store(
    vector_store_id: str, body: VectorStoreUpdate, user: CurrentUser, svc: Svc
) -> VectorStorePublic:
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if "name" in given:
        changes["name"] = body.name
    if "metadata" in given and body.metadata is not None:
        changes["metadata"] = body.metadata
    if "expires_after" in given:
        expiry = body.expires_after
        changes["expires_after_days"] = None if expiry is None else expiry.days
    return await svc.db.write_retried(
        reads.update_store, user_id=user.id, vector_store_id=vector_store_id, changes=changes
    )


@router.delete("/vector_stores/{vector_store_id}")
async def delete_vector_store(vector_store_id: str, user: CurrentUser, svc: Svc) -> Deleted:
    await svc.db.write_retried(
        store.delete_vector_store, user_id=user.id, vector_store_id=vector_store_id
    )
    return Deleted(id=vector_store_id, object="vector_store.deleted")


# ----------------------------------------------------------------------------- files


@router.post("/vector_stores/{vector_store_id}/files", responses=errors(400))
async def create_vector_store_file(
    vector_store_id: str, body: FileCreate, caller: AuthenticatedCaller, svc: Svc
) -> VectorStoreFilePublic:
    attached, _ = await svc.db.write_retried(
        store.add_files,
        user_id=caller.user.id,
        vector_store_id=vector_store_id,
        files=[body.to_add()],
        key_hash=caller.key_hash,
    )
    _added(svc)
    return VectorStoreFilePublic.of(attached[0])


@router.get("/vector_stores/{vector_store_id}/files", responses=errors(400))
async def list_vector_store_files(
    vector_store_id: str,
    user: CurrentUser,
    svc: Svc,
    q: DescList,
    filter: StatusFilter = None,
) -> Page[VectorStoreFilePublic]:
    return await _files_page(svc, user.id, vector_store_id, q, filter)


async def _files_page(
    svc: Svc,
    user_id: str,
    vector_store_id: str,
    page: ListQuery,
    status: Status | None,
    batch_id: str | None = None,
) -> Page[VectorStoreFilePublic]:
    """A page of the store's files (of one batch, with ``batch_id``)."""
    found, more = await svc.db.read(
        store.list_store_files,
        user_id=user_id,
        vector_store_id=vector_store_id,
        page=page,
        status=status,
        batch_id=batch_id,
    )
    return Page.of([VectorStoreFilePublic.of(f) for f in found], more)


@router.get("/vector_stores/{vector_store_id}/files/{file_id}")
async def retrieve_vector_store_file(
    vector_store_id: str, file_id: str, user: CurrentUser, svc: Svc
) -> VectorStoreFilePublic:
    found = await svc.db.read(
        store.get_store_file, user_id=user.id, vector_store_id=vector_store_id, file_id=file_id
    )
    return VectorStoreFilePublic.of(found)


@router.post("/vector_stores/{vector_store_id}/files/{file_id}", responses=errors(400))
async def update_vector_store_file(
    vector_store_id: str, file_id: str, body: FileUpdate, user: CurrentUser, svc: Svc
) -> VectorStoreFilePublic:
    found = await svc.db.write_retried(
        store.update_file_attributes,
        user_id=user.id,
        vector_store_id=vector_store_id,
        file_id=file_id,
        attributes=body.attributes or {},
    )
    return VectorStoreFilePublic.of(found)


@router.delete("/vector_stores/{vector_store_id}/files/{file_id}")
async def delete_vector_store_file(
    vector_store_id: str, file_id: str, user: CurrentUser, svc: Svc
) -> Deleted:
    await svc.db.write_retried(
        store.remove_file, user_id=user.id, vector_store_id=vector_store_id, file_id=file_id
    )
    return Deleted(id=file_id, object="vector_store.file.deleted")


@router.get("/vector_stores/{vector_store_id}/files/{file_id}/content")
async def vector_store_file_content(
    vector_store_id: str, file_id: str, user: CurrentUser, svc: Svc
) -> FileContentPage:
    pieces = await svc.db.read(
        store.file_pieces, user_id=user.id, vector_store_id=vector_store_id, file_id=file_id
    )
    return FileContentPage.of(pieces)


# ----------------------------------------------------------------------------- batches


@router.post("/vector_stores/{vector_store_id}/file_batches", responses=errors(400))
async def create_file_batch(
    vector_store_id: str, body: BatchCreate, caller: AuthenticatedCaller, svc: Svc
) -> FileBatchPublic:
    batch = await svc.db.write_retried(
        reads.create_batch,
        user_id=caller.user.id,
        vector_store_id=vector_store_id,
        files=body.to_add(),
        key_hash=caller.key_hash,
    )
    _added(svc)
    return batch


@router.get("/vector_stores/{vector_store_id}/file_batches/{batch_id}")
async def retrieve_file_batch(
    vector_store_id: str, batch_id: str, user: CurrentUser, svc: Svc
) -> FileBatchPublic:
    return await svc.db.read(
        reads.retrieve_batch, user_id=user.id, vector_store_id=vector_store_id, batch_id=batch_id
    )


@router.post("/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel")
async def cancel_file_batch(
    vector_store_id: str, batch_id: str, user: CurrentUser, svc: Svc
) -> FileBatchPublic:
    return await svc.db.write_retried(
        reads.cancel_batch, user_id=user.id, vector_store_id=vector_store_id, batch_id=batch_id
    )


@router.get("/vector_stores/{vector_store_id}/file_batches/{batch_id}/files", responses=errors(400))
async def list_file_batch_files(
    vector_store_id: str,
    batch_id: str,
    user: CurrentUser,
    svc: Svc,
    q: DescList,
    filter: StatusFilter = None,
) -> Page[VectorStoreFilePublic]:
    return await _files_page(svc, user.id, vector_store_id, q, filter, batch_id)


# ----------------------------------------------------------------------------- search


@router.post("/vector_stores/{vector_store_id}/search", responses=upstream_errors())
async def search_vector_store(
    vector_store_id: str,
    body: SearchRequest,
    caller: AuthenticatedCaller,
    svc: Svc,
    request: Request,
) -> SearchResultsPage:
    """The chunks of the store's files that best answer the query, best first. The query
    is searched as given (``rewrite_query`` is taken, and changes nothing)."""
    user = caller.user
    filters, ranking = body.parsed()  # a bad filter is a 400 before anything is done
    queries = body.queries()
    vs = await svc.db.write_retried(
        store.active_store, user_id=user.id, vector_store_id=vector_store_id
    )
    began = time.perf_counter()
    vectors = None
    model = vs.embedding_model
    if model is not None and ranking.embedding_weight > 0 and await _vectors(request, svc):
        embedded = await svc.providers.embed(model, queries)
        svc.usage.count(
            user_id=user.id,
            key_hash=caller.key_hash,
            model=svc.providers.qualified(model),
            face=SEARCH_FACE,
            used=Usage(input_tokens=embedded.input_tokens),
        )
        vectors = embedded.vectors
    found = await svc.db.read(
        index.search,
        user_id=user.id,
        vector_store_ids=[vs.id],
        query=queries,
        query_embeddings=vectors,
        filters=filters,
        max_num_results=body.max_num_results,
        ranking_options=ranking,
    )
    mode = "words" if vectors is None else "vectors" if ranking.text_weight == 0 else "hybrid"
    svc.engine.metrics.search_duration(time.perf_counter() - began, source="api", mode=mode)
    return SearchResultsPage(search_query=queries, data=[SearchResultItem.of(f) for f in found])


async def _vectors(request: Request, svc: Svc) -> bool:
    """Whether the database stores vectors (asked once): without, a query is not embedded."""
    state = request.app.state
    known: bool | None = getattr(state, "vector_search", None)
    if known is None:
        known = state.vector_search = await svc.db.read(index.vectors_available)
    return known
