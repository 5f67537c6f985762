"""The Vector Stores API's objects, as OpenAI's document has them (``VectorStoreObject``,
``CreateVectorStoreRequest``, ``VectorStoreFileObject``, ``VectorStoreFileBatchObject``,
``VectorStoreSearchRequest``, ``VectorStoreSearchResultsPage``, ...).

Every request body refuses unknown fields and checks OpenAI's limits: metadata of 16 string
pairs (keys up to 64 characters, values up to 512), attributes of 16 pairs whose values are
strings (up to 512), numbers or booleans, ``expires_after.days`` from 1 to 365, a static
chunking strategy of 100 to 4,096 tokens overlapping by at most half. A search's
``filters`` and ``ranking_options`` are read by the chunk index's own parsers
(``parley.store.index``), whose 400s name the field at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from parley.errors import InvalidRequest
from parley.retrieval.chunking import MAX_MAX_TOKENS, MIN_MAX_TOKENS
from parley.server.faces.kit.bodies import Body, check_metadata
from parley.store import index
from parley.store import vector_stores as store
from parley.store.records import VectorStore, VectorStoreFile

Status = Literal["in_progress", "completed", "failed", "cancelled"]
FileId = Annotated[str, Field(min_length=1, max_length=64)]
#: How many files one request may name: a store's creation, a batch (OpenAI's limits).
MAX_STORE_FILES = 500
MAX_BATCH_FILES = 2000
MAX_ATTRIBUTES = 16
#: The most queries one search takes.
MAX_QUERIES = 32

AttributeValue = Annotated[StrictStr, Field(max_length=512)] | StrictBool | StrictInt | StrictFloat


def _attribute_values(value: Any) -> Any:
    """A value of another type is refused by name, with what the values may be."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(item, str | int | float | bool):
                raise ValueError(
                    f"the value of {key!r} is not a string (up to 512 characters), a number "
                    "or a boolean"
                )
    return value


#: A file's attributes in a store (OpenAI's ``VectorStoreFileAttributes``).
Attributes = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=64)], AttributeValue],
    Field(max_length=MAX_ATTRIBUTES),
    BeforeValidator(_attribute_values),
]


class ExpiresAfter(Body):
    """When the store expires: ``days`` after it was last active (``anchor``)."""

    anchor: Literal["last_active_at"]
    days: Annotated[StrictInt, Field(ge=1, le=365)]


class AutoChunking(Body):
    """OpenAI's default: 800 tokens, 400 of them shared with the chunk before."""

    type: Literal["auto"]


class StaticValues(Body):
    max_chunk_size_tokens: Annotated[StrictInt, Field(ge=MIN_MAX_TOKENS, le=MAX_MAX_TOKENS)]
    chunk_overlap_tokens: Annotated[StrictInt, Field(ge=0)]

    @model_validator(mode="before")
    @classmethod
    def _integers(cls, value: Any) -> Any:
        """Each number checked here, so that the error names its field as the client wrote
        it (a discriminated union would put its tag in the path: ``static.static.``)."""
        if not isinstance(value, Mapping):
            return value
        bounds = {
            "max_chunk_size_tokens": (MIN_MAX_TOKENS, MAX_MAX_TOKENS),
            "chunk_overlap_tokens": (0, MAX_MAX_TOKENS),
        }
        for name, (least, most) in bounds.items():
            given = value.get(name)
            if name not in value:
                continue
            if isinstance(given, bool) or not isinstance(given, int) or not least <= given <= most:
                raise InvalidRequest(
                    f"'{name}' must be an integer from {least} to {most}, got {given!r}.",
                    code="invalid_value",
                    param=f"chunking_strategy.static.{name}",
                )
        return value

    @model_validator(mode="after")
    def _half_at_most(self) -> StaticValues:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise InvalidRequest(
                "'chunk_overlap_tokens' must not exceed half of 'max_chunk_size_tokens' "
                f"({self.max_chunk_size_tokens // 2} for {self.max_chunk_size_tokens}), got "
                f"{self.chunk_overlap_tokens}.",
                code="invalid_value",
                param="chunking_strategy.static.chunk_overlap_tokens",
            )
        return self


class StaticChunking(Body):
    type: Literal["static"]
    static: StaticValues


ChunkingParam = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]


def stored_strategy(given: AutoChunking | StaticChunking | None) -> dict[str, Any]:
    """The strategy as a file shows it: ``auto`` is OpenAI's static 800 / 400."""
    if isinstance(given, StaticChunking):
        return {"type": "static", "static": given.static.model_dump()}
    return dict(store.AUTO_CHUNKING)


class _Metadata(Body):
    @field_validator("metadata", check_fields=False)
    @classmethod
    def _openai_limits(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_metadata(value)


class VectorStoreCreate(_Metadata):
    """``POST /v1/vector_stores`` (OpenAI's ``CreateVectorStoreRequest``)."""

    file_ids: Annotated[list[FileId], Field(max_length=MAX_STORE_FILES)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    description: Annotated[str, Field(max_length=512)] | None = None
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingParam | None = None
    metadata: dict[str, Any] | None = None


class VectorStoreUpdate(_Metadata):
    """``POST /v1/vector_stores/{id}`` (OpenAI's ``UpdateVectorStoreRequest``): what is
    given changes; ``expires_after`` null makes the store never expire."""

    name: Annotated[str, Field(max_length=256)] | None = None
    expires_after: ExpiresAfter | None = None
    metadata: dict[str, Any] | None = None


class FileCreate(Body):
    """``POST /v1/vector_stores/{id}/files`` (OpenAI's ``CreateVectorStoreFileRequest``)."""

    file_id: FileId
    attributes: Attributes | None = None
    chunking_strategy: ChunkingParam | None = None

    def to_add(self) -> store.FileToAdd:
        return store.FileToAdd(
            self.file_id, self.attributes or {}, stored_strategy(self.chunking_strategy)
        )


class FileUpdate(Body):
    """``POST /v1/vector_stores/{id}/files/{file_id}``
    (``UpdateVectorStoreFileAttributesRequest``); null clears them."""

    attributes: Attributes | None


class BatchCreate(Body):
    """``POST /v1/vector_stores/{id}/file_batches`` (``CreateVectorStoreFileBatchRequest``):
    ``file_ids`` with the attributes and strategy of them all, or ``files``, each with its
    own."""

    file_ids: Annotated[list[FileId], Field(min_length=1, max_length=MAX_BATCH_FILES)] | None = None
    files: Annotated[list[FileCreate], Field(min_length=1, max_length=MAX_BATCH_FILES)] | None = (
        None
    )
    attributes: Attributes | None = None
    chunking_strategy: ChunkingParam | None = None

    @model_validator(mode="after")
    def _one_list(self) -> BatchCreate:
        if (self.file_ids is None) == (self.files is None):
            raise InvalidRequest(
                "Give 'file_ids' or 'files' (one of them, not both).",
                code="invalid_value",
                param="file_ids",
            )
        if self.files is not None and (
            self.attributes is not None or self.chunking_strategy is not None
        ):
            raise InvalidRequest(
                "With 'files', give 'attributes' and 'chunking_strategy' on each file.",
                code="invalid_value",
                param="attributes" if self.attributes is not None else "chunking_strategy",
            )
        return self

    def to_add(self) -> list[store.FileToAdd]:
        if self.files is not None:
            wanted = {f.file_id: f.to_add() for f in self.files}
            return list(wanted.values())
        strategy = stored_strategy(self.chunking_strategy)
        ids = dict.fromkeys(self.file_ids or ())
        return [store.FileToAdd(i, self.attributes or {}, strategy) for i in ids]


class SearchRequest(Body):
    """``POST /v1/vector_stores/{id}/search`` (OpenAI's ``VectorStoreSearchRequest``)."""

    query: StrictStr | Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_QUERIES)]
    rewrite_query: StrictBool = False
    max_num_results: Annotated[StrictInt, Field(ge=1, le=index.MAX_RESULTS)] = 10
    #: OpenAI's ``ComparisonFilter`` or ``CompoundFilter``, on the files' attributes.
    filters: dict[str, Any] | None = None
    #: ``ranker``, ``score_threshold`` (0 to 1) and ``hybrid_search``
    #: (``embedding_weight``, ``text_weight``).
    ranking_options: dict[str, Any] | None = None

    @field_validator("query", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        """A query that is neither a string nor a list of 1 to ``MAX_QUERIES`` strings is
        refused saying so (not with the first member type's complaint)."""
        if isinstance(value, str):
            return value
        if (
            not isinstance(value, list)
            or not 1 <= len(value) <= MAX_QUERIES
            or not all(isinstance(v, str) for v in value)
        ):
            raise InvalidRequest(
                f"'query' must be a string or a list of 1 to {MAX_QUERIES} strings.",
                code="invalid_value",
                param="query",
            )
        return value

    @field_validator("query")
    @classmethod
    def _words(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not any(t.strip() for t in texts):
            raise ValueError("the query is empty")
        if sum(len(t) for t in texts) > 8192:
            raise ValueError("the query is longer than 8192 characters")
        return value

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)

    def parsed(self) -> tuple[index.Filter | None, index.RankingOptions]:
        """The filters and ranking options, read by the index's parsers (400s naming the
        field at fault)."""
        filters = None if self.filters is None else index.parse_filter(self.filters)
        return filters, index.parse_ranking_options(self.ranking_options)


# ----------------------------------------------------------------------------- answers


class FileCounts(BaseModel):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int

    @classmethod
    def of(cls, tally: store.Tally) -> FileCounts:
        return cls(**tally.counts, total=tally.total)


class ExpiresAfterPublic(BaseModel):
    anchor: Literal["last_active_at"] = "last_active_at"
    days: int


class VectorStorePublic(BaseModel):
    """A vector store (OpenAI's ``VectorStoreObject``)."""

    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    description: str | None = None
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["expired", "in_progress", "completed"]
    expires_after: ExpiresAfterPublic | None = None
    expires_at: int | None = None
    last_active_at: int | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, vs: VectorStore, tally: store.Tally) -> VectorStorePublic:
        if store.expired(vs):
            status: Literal["expired", "in_progress", "completed"] = "expired"
        elif tally.counts["in_progress"]:
            status = "in_progress"
        else:
            status = "completed"
        days = vs.expires_after_days
        return cls(
            id=vs.id,
            created_at=int(vs.created_at),
            name=vs.name or "",
            description=vs.description,
            usage_bytes=tally.usage_bytes,
            file_counts=FileCounts.of(tally),
            status=status,
            expires_after=None if days is None else ExpiresAfterPublic(days=days),
            expires_at=None if vs.expires_at is None else int(vs.expires_at),
            last_active_at=int(vs.last_active_at),
            metadata=vs.metadata,
        )


class LastError(BaseModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFilePublic(BaseModel):
    """A file in a vector store (OpenAI's ``VectorStoreFileObject``)."""

    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int
    created_at: int
    vector_store_id: str
    status: Status
    last_error: LastError | None
    chunking_strategy: dict[str, Any]
    attributes: dict[str, Any]

    @classmethod
    def of(cls, f: VectorStoreFile) -> VectorStoreFilePublic:
        error = f.last_error
        return cls(
            id=f.file_id,
            usage_bytes=f.usage_bytes,
            created_at=int(f.created_at),
            vector_store_id=f.vector_store_id,
            status=f.status,  # type: ignore[arg-type]
            last_error=None if error is None else LastError(**_error_of(error)),
            chunking_strategy=f.chunking_strategy,
            attributes=f.attributes,
        )


def _error_of(error: Mapping[str, Any]) -> dict[str, str]:
    code = error.get("code")
    known = code in ("server_error", "unsupported_file", "invalid_file")
    return {
        "code": str(code) if known else "server_error",
        "message": str(error.get("message") or "The file could not be indexed."),
    }


class FileBatchPublic(BaseModel):
    """A file batch (OpenAI's ``VectorStoreFileBatchObject``)."""

    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Status
    file_counts: FileCounts

    @classmethod
    def of(cls, batch: store.FileBatch, tally: store.Tally) -> FileBatchPublic:
        counts = tally.counts
        if batch.status == "cancelled":
            status: Status = "cancelled"
        elif counts["in_progress"]:
            status = "in_progress"
        elif tally.total and counts["failed"] == tally.total:
            status = "failed"
        else:
            status = "completed"
        return cls(
            id=batch.id,
            created_at=int(batch.created_at),
            vector_store_id=batch.vector_store_id,
            status=status,
            file_counts=FileCounts.of(tally),
        )


class TextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class FileContentPage(BaseModel):
    """A file's text in the store (OpenAI's ``VectorStoreFileContentResponse``): its
    chunks in order, each without what the chunk before already gave, so that the texts
    one after the other are the file's text as it was indexed."""

    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[TextContent]
    has_more: bool = False
    next_page: str | None = None

    @classmethod
    def of(cls, pieces: list[store.Piece]) -> FileContentPage:
        data: list[TextContent] = []
        reached = 0
        for piece in pieces:
            text = piece.text[max(0, reached - piece.start) :]
            reached = max(reached, piece.end)
            if text:
                data.append(TextContent(text=text))
        return cls(data=data)


class SearchResultItem(BaseModel):
    """A chunk found (OpenAI's ``VectorStoreSearchResultItem``)."""

    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any]
    content: list[TextContent]

    @classmethod
    def of(cls, found: index.SearchResult) -> SearchResultItem:
        return cls(
            file_id=found.file_id,
            filename=found.filename,
            score=found.score,
            attributes=found.attributes,
            content=[TextContent(text=found.text)],
        )


class SearchResultsPage(BaseModel):
    """OpenAI's ``VectorStoreSearchResultsPage``: every result is on the one page."""

    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResultItem]
    has_more: bool = False
    next_page: str | None = None
