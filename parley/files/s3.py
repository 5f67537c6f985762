"""File bytes in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, ...): the ``s3``
kind of ``parley.files.storage``, which every replica reaches.

Each key is one object, ``<prefix>/<key>``. ``put`` sends the bytes as they come: a file
of up to ``PART`` bytes in one ``PutObject``, a larger one as a multipart upload of
``PART``-byte parts, so no more than a part is held in memory; a write cut off midway
aborts its multipart upload, and nothing appears under the key. ``read`` streams the object
``PIECE`` bytes at a time.

The client is boto3 (the ``s3`` extra), imported and made on first use, in a thread; every
call to it runs in a thread, never on the event loop. Credentials come from AWS's usual
places (``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, the shared
files, an instance role). ``check_bucket`` is what ``parley serve`` asks before it starts.

An S3 failure during a request is a 503 (``file_store_unavailable``), its cause logged. The
sweep (``sweep_orphans``) aborts multipart uploads and deletes objects no row names once
they are a day old: the leftovers of a process that died midway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Connection

from parley.config import ConfigError, Settings
from parley.errors import ServiceUnavailable
from parley.files.interface import PIECE, Digests, Stored, new_key
from parley.store.tables import container_files, files, upload_parts

if TYPE_CHECKING:
    from parley.store.db import Database

log = logging.getLogger("parley.files")

#: Bytes per part of a multipart upload (S3 takes parts of 5 MiB and more, but the last),
#: and the largest file sent in one request.
PART = 8 * 1024 * 1024
#: Keys per ``DeleteObjects`` request (S3's most).
DELETE_BATCH = 1000

_T = TypeVar("_T")


class S3Storage:
    """The objects under ``prefix`` in ``bucket``."""

    kind = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        path_style: bool = False,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.path_style = path_style
        self._client: Any = None
        self._errors: tuple[type[Exception], ...] = ()
        self._lock = threading.Lock()

    @classmethod
    def of(cls, settings: Settings) -> S3Storage:
        """The storage the ``files_s3_*`` settings describe (no I/O)."""
        if not settings.files_s3_bucket:
            raise ConfigError("s3 file storage needs a bucket: set PARLEY_FILES_S3_BUCKET")
        return cls(
            bucket=settings.files_s3_bucket,
            prefix=settings.files_s3_prefix,
            endpoint_url=settings.files_s3_endpoint_url,
            region=settings.files_s3_region,
            path_style=settings.files_s3_path_style,
        )

    def where(self) -> str:
        """The bucket (and endpoint), as said in errors: never a credential."""
        place = f"s3://{self.bucket}/{self.prefix}"
        return f"{place} at {self.endpoint_url}" if self.endpoint_url else place

    def name(self, key: str) -> str:
        """The object's name of ``key``."""
        return f"{self.prefix}/{key}" if self.prefix else key

    # ------------------------------------------------------------ the client (a thread)

    def client(self) -> Any:
        """The boto3 client, made on first use. Blocks (imports, reads the credentials'
        files): call it in a thread. Raises ``ConfigError`` when boto3 is not installed."""
        with self._lock:
            if self._client is None:
                self._client, self._errors = self._make_client()
            return self._client

    def _make_client(self) -> tuple[Any, tuple[type[Exception], ...]]:
        try:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]
            from botocore.exceptions import (  # type: ignore[import-untyped]
                BotoCoreError,
                ClientError,
            )
        except ImportError:
            raise ConfigError(
                "PARLEY_FILES_STORAGE is s3, which needs boto3: "
                "pip install 'parley-ai[s3]' (or 'parley-ai[all]')"
            ) from None
        config = Config(
            s3={"addressing_style": "path" if self.path_style else "auto"},
            # Checksums only where S3 requires them: many S3-compatible servers refuse
            # the ones newer clients add to every upload.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=32,
            connect_timeout=10,
            read_timeout=60,
        )
        session = boto3.session.Session()
        made = session.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
        )
        return made, (BotoCoreError, ClientError)

    async def _call(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """``fn(*args, **kwargs)`` in a thread; an S3 failure is a ``ServiceUnavailable``
        (``FileNotFoundError`` for an object that is not there)."""
        return await asyncio.to_thread(self._guarded, fn, *args, **kwargs)

    def _guarded(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        self.client()
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            if _code(exc) in ("NoSuchKey", "NoSuchUpload", "404"):
                raise FileNotFoundError(str(exc)) from None
            log.warning("the file store %s failed: %s", self.where(), exc)
            raise ServiceUnavailable(
                "The file store did not answer; try again later.",
                code="file_store_unavailable",
            ) from None

    # ------------------------------------------------------------------- the interface

    async def put(self, chunks: AsyncIterable[bytes]) -> Stored:
        name = self.name(key := new_key())
        digests = Digests()
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                while len(buffer) > PART:  # a part goes once more bytes follow it
                    if upload_id is None:
                        upload_id = await self._call(self._begin, name)
                    data = bytes(buffer[:PART])
                    del buffer[:PART]
                    parts.append(
                        await self._call(self._part, name, upload_id, parts, data, digests)
                    )
            if upload_id is None:  # all of it fits in one part: one request
                await self._call(self._whole, name, bytes(buffer), digests)
            else:
                data = bytes(buffer)
                parts.append(await self._call(self._part, name, upload_id, parts, data, digests))
                await self._call(self._complete, name, upload_id, parts)
        except BaseException:
            if upload_id is not None:
                # Shielded: the parts go even when the request is cancelled; an upload
                # left behind would be swept anyway (``sweep_orphans``).
                await asyncio.shield(asyncio.to_thread(self._abort, name, upload_id))
            raise
        return digests.stored(self.kind, key)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        body = await self._call(self._get, self.name(key))
        try:
            while chunk := await self._call(body.read, PIECE):
                yield chunk
        finally:
            body.close()

    async def delete(self, keys: Sequence[str]) -> None:
        names = [self.name(k) for k in keys]
        for start in range(0, len(names), DELETE_BATCH):
            await self._call(self._delete, names[start : start + DELETE_BATCH])

    # ------------------------------------------------------------ the calls (a thread)

    def _whole(self, name: str, data: bytes, digests: Digests) -> None:
        digests.update(data)  # in the thread: the digests of megabytes are not the loop's
        self.client().put_object(Bucket=self.bucket, Key=name, Body=data)

    def _begin(self, name: str) -> str:
        made = self.client().create_multipart_upload(Bucket=self.bucket, Key=name)
        return str(made["UploadId"])

    def _part(
        self, name: str, upload_id: str, before: list[Any], data: bytes, digests: Digests
    ) -> dict[str, Any]:
        """Send the part after ``before``; its number and ETag, for the completion."""
        digests.update(data)
        number = len(before) + 1
        sent = self.client().upload_part(
            Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": sent["ETag"]}

    def _complete(self, name: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        self.client().complete_multipart_upload(
            Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    def _abort(self, name: str, upload_id: str) -> None:
        # Gone already, or failed (logged; the sweep aborts it later).
        with contextlib.suppress(FileNotFoundError, ServiceUnavailable):
            self._guarded(
                self.client().abort_multipart_upload,
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
            )

    def _get(self, name: str) -> Any:
        return self.client().get_object(Bucket=self.bucket, Key=name)["Body"]

    def _delete(self, names: list[str]) -> None:
        answer = self.client().delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": n} for n in names], "Quiet": True},
        )
        failed = answer.get("Errors") or []
        if failed:
            first = failed[0]
            log.warning(
                "the file store %s kept %d objects it was asked to delete (%s: %s)",
                self.where(),
                len(failed),
                first.get("Code"),
                first.get("Message"),
            )
            raise ServiceUnavailable(
                "The file store did not delete the bytes; try again later.",
                code="file_store_unavailable",
            )

    # ------------------------------------------------------------------- the sweep

    async def sweep_orphans(self, db: Database, *, before: float) -> int:
        """Abort multipart uploads begun before ``before`` (a time stamp), and delete our
        objects written before it that no file or upload part names; returns how many.
        Only names of ours (the prefix, then a key) are looked at."""
        count = 0
        for name, upload_id in await self._call(self._stale_uploads, before):
            await self._call(self._abort, name, upload_id)
            count += 1
        token: str | None = None
        while True:
            old, token = await self._call(self._old_objects, before, token)
            if old:
                named = await db.read(_named_keys, keys=list(old))
                unnamed = [key for key in old if key not in named]
                await self.delete(unnamed)
                count += len(unnamed)
            if token is None:
                return count

    def _listed(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _key_of(self, name: str) -> str | None:
        key = name.removeprefix(self._listed())
        return key if len(key) == 32 and all(c in "0123456789abcdef" for c in key) else None

    def _stale_uploads(self, before: float) -> list[tuple[str, str]]:
        stale: list[tuple[str, str]] = []
        pages = self.client().get_paginator("list_multipart_uploads")
        for page in pages.paginate(Bucket=self.bucket, Prefix=self._listed()):
            for upload in page.get("Uploads", []):
                name, began = upload["Key"], _stamp(upload["Initiated"])
                if self._key_of(name) is not None and began < before:
                    stale.append((name, upload["UploadId"]))
        return stale

    def _old_objects(self, before: float, token: str | None) -> tuple[list[str], str | None]:
        """One page of our keys whose objects were written before ``before``, and the
        token of the next page (None: the last)."""
        more = {"ContinuationToken": token} if token else {}
        page = self.client().list_objects_v2(Bucket=self.bucket, Prefix=self._listed(), **more)
        old = [
            key
            for item in page.get("Contents", [])
            if (key := self._key_of(item["Key"])) is not None
            and _stamp(item["LastModified"]) < before
        ]
        return old, page.get("NextContinuationToken") if page.get("IsTruncated") else None

    # ------------------------------------------------------------------ the start check

    def check(self) -> None:
        """Reach the bucket (``HeadBucket``), in this thread. Raises ``ConfigError`` saying
        what is wrong: boto3 missing, no credentials, a bucket not found or refused, an
        endpoint that does not answer."""
        client = self.client()
        try:
            client.head_bucket(Bucket=self.bucket)
        except self._errors as exc:
            code = _code(exc)
            if code in ("404", "NoSuchBucket"):
                reason = "no such bucket"
            elif code in ("403", "AccessDenied"):
                reason = "access denied (check the AWS credentials)"
            else:
                reason = str(exc)
            raise ConfigError(f"cannot reach the file store {self.where()}: {reason}") from None


def check_bucket(settings: Settings) -> None:
    """What ``parley serve`` asks of ``s3`` storage before it starts: that boto3 is
    installed and the bucket answers. Raises ``ConfigError``."""
    S3Storage.of(settings).check()


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _stamp(when: datetime) -> float:
    return when.timestamp()


def _named_keys(conn: Connection, *, keys: list[str]) -> set[str]:
    """Which of ``keys`` (of ``s3`` storage) a file, an upload's part or a container's file
    names."""
    named: set[str] = set()
    for table in (files, upload_parts, container_files):
        query = select(table.c.storage_key).where(
            table.c.storage == "s3", table.c.storage_key.in_(keys)
        )
        named.update(conn.execute(query).scalars())
    return named
