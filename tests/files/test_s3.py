"""``s3`` file storage against a real S3 server on loopback (moto in server mode, a child
process): two ``parley serve`` replicas on one database share one bucket. The bucket is
looked at through the S3 API, never through Parley."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import openai
import pytest

from parley.files.s3 import PART, S3Storage
from parley.files.sweep import ORPHAN_SECONDS
from parley.store.db import Database
from tests.harness import FreshDatabase, ParleyServer, free_port

BUCKET = "parley-files"
PREFIX = "team/files"
#: What every process of this module reads as its AWS credentials (moto takes any).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a loopback port, with the bucket made."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"moto did not start:\n{log.read_text()}"
                time.sleep(0.05)
        api = _bucket_api(url)
        api.create_bucket(Bucket=BUCKET)
        api.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _bucket_api(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> Iterator[Any]:
    """The bucket's own S3 API."""
    api = _bucket_api(s3_endpoint)
    yield api
    api.close()


def objects(bucket: Any) -> dict[str, int]:
    """Every object in the bucket: name -> size."""
    found = bucket.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: o["Size"] for o in found}


def pending_uploads(bucket: Any) -> list[str]:
    return [u["Key"] for u in bucket.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


@pytest.fixture(scope="module")
def replicas(
    s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    """Two servers on one database, their files in the bucket."""
    tmp = tmp_path_factory.mktemp("s3")
    db = FreshDatabase(tmp)
    env = {
        **AWS_ENV,
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "PARLEY_FILES_STORAGE": "s3",
        "PARLEY_FILES_S3_BUCKET": BUCKET,
        "PARLEY_FILES_S3_PREFIX": PREFIX,
        "PARLEY_FILES_S3_ENDPOINT_URL": s3_endpoint,
        "PARLEY_FILES_S3_PATH_STYLE": "true",
    }
    servers = [ParleyServer(database_url=db.url, workdir=tmp, env=env) for _ in range(2)]
    try:
        for srv in servers:
            srv.env.pop("AWS_PROFILE", None)
            srv.start()
        yield servers[0], servers[1]
        for srv in servers:
            srv.stop()
            srv.assert_clean_log()
    finally:
        for srv in servers:
            srv.stop()
        db.drop()


def sdk(server: ParleyServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=60)


def test_a_file_written_through_one_replica_is_an_object_the_other_reads_and_deletes(
    replicas: tuple[ParleyServer, ParleyServer], bucket: Any
) -> None:
    first, second = replicas
    key = first.new_user()
    data = os.urandom(PART + 300_000)  # sent as a multipart upload of two parts
    before = objects(bucket)
    with sdk(first, key) as one, sdk(second, key) as other:
        made = one.files.create(file=("big.bin", data), purpose="assistants")
        added = {k: v for k, v in objects(bucket).items() if k not in before}
        assert list(added.values()) == [len(data)]
        (name,) = added
        assert name.startswith(f"{PREFIX}/") and len(name) == len(PREFIX) + 33
        got = bucket.get_object(Bucket=BUCKET, Key=name)
        assert got["ETag"].endswith('-2"')  # the ETag of a multipart upload of two parts
        assert got["Body"].read() == data
        assert other.files.content(made.id).read() == data
        other.files.delete(made.id)
        assert name not in objects(bucket)
        with pytest.raises(openai.NotFoundError):
            one.files.content(made.id)
    assert pending_uploads(bucket) == []


def test_an_upload_in_parts_completes_into_one_object(
    replicas: tuple[ParleyServer, ParleyServer], bucket: Any
) -> None:
    first, second = replicas
    key = first.new_user()
    halves = [os.urandom(700_000), os.urandom(500_000)]
    before = objects(bucket)
    with sdk(first, key) as one, sdk(second, key) as other:
        upload = one.uploads.create(
            bytes=1_200_000, filename="parts.bin", mime_type="application/octet-stream",
            purpose="assistants",
        )  # fmt: skip
        part_ids = [one.uploads.parts.create(upload.id, data=h).id for h in halves]
        assert len(set(objects(bucket)) - set(before)) == 2  # one object per part
        done = other.uploads.complete(
            upload.id, part_ids=part_ids, md5=hashlib.md5(b"".join(halves)).hexdigest()
        )
        assert done.status == "completed" and done.file is not None
        added = {k: v for k, v in objects(bucket).items() if k not in before}
        assert list(added.values()) == [1_200_000]  # the parts' objects are gone
        assert one.files.content(done.file.id).read() == b"".join(halves)
        one.files.delete(done.file.id)
    assert objects(bucket) == before


class CutOff(Exception):
    pass


async def _chunks(data: bytes, *, then_fail: bool = False) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1024 * 1024):
        yield data[i : i + 1024 * 1024]
    if then_fail:
        raise CutOff


@pytest.fixture
def storage(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    """The bucket as the servers' storage sees it, in this process."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    return S3Storage(bucket=BUCKET, prefix=PREFIX, endpoint_url=s3_endpoint, path_style=True)


async def test_a_write_cut_off_leaves_no_object(
    replicas: tuple[ParleyServer, ParleyServer], bucket: Any, storage: S3Storage
) -> None:
    first, _ = replicas
    key = first.new_user()
    before = objects(bucket)
    # A request cut off midway: the server has read a part of its body when it goes away.
    with socket.create_connection(("127.0.0.1", first.port)) as sock:
        head = (
            "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {3 * PART}\r\n\r\n"
            '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
            '--b\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n'
        )
        sock.sendall(head.encode() + os.urandom(PART + 1))
    # A write that fails after its first part went: its multipart upload is aborted.
    with pytest.raises(CutOff):
        await storage.put(_chunks(os.urandom(PART + 1), then_fail=True))
    assert pending_uploads(bucket) == []
    # The server goes on: a file sent after both is the one object added.
    with sdk(first, key) as one:
        made = one.files.create(file=("kept.txt", b"kept"), purpose="assistants")
        assert list({k: v for k, v in objects(bucket).items() if k not in before}.values()) == [4]
        one.files.delete(made.id)
    assert objects(bucket) == before and pending_uploads(bucket) == []


async def test_the_sweep_takes_old_leftovers_and_keeps_what_rows_name(
    replicas: tuple[ParleyServer, ParleyServer], bucket: Any, storage: S3Storage
) -> None:
    first, _ = replicas
    before = objects(bucket)
    with sdk(first, first.new_user()) as one:
        made = one.files.create(file=("kept.txt", b"kept"), purpose="assistants")
        named = set(objects(bucket)) - set(before)
        # What a process that died midway leaves: bytes no row names, an upload left open
        # (made after the first sweep: moto says every upload began in 2010).
        stray = await storage.put(_chunks(b"stray"))
        bucket.put_object(Bucket=BUCKET, Key=f"{PREFIX}/notes.txt", Body=b"not ours")
        db = Database(first.database_url)
        try:
            assert await storage.sweep_orphans(db, before=time.time() - ORPHAN_SECONDS) == 0
            bucket.create_multipart_upload(Bucket=BUCKET, Key=storage.name("f" * 32))
            assert await storage.sweep_orphans(db, before=time.time() + 60) == 2
        finally:
            await db.dispose()
        left = set(objects(bucket)) - set(before)
        assert left == {*named, f"{PREFIX}/notes.txt"} and pending_uploads(bucket) == []
        assert storage.name(stray.key) not in left
        assert one.files.content(made.id).read() == b"kept"
        one.files.delete(made.id)
    bucket.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/notes.txt")
    assert objects(bucket) == before


def test_a_store_out_of_reach_stops_the_start(
    replicas: tuple[ParleyServer, ParleyServer], tmp_path: Path
) -> None:
    """``parley serve`` says what is wrong and exits 2: a bucket not there, no bucket set,
    boto3 missing (hidden by a package of that name that cannot be imported)."""
    first, _ = replicas
    hidden = tmp_path / "hidden" / "boto3"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("not installed")\n')
    path = os.pathsep.join(filter(None, [str(hidden.parent), os.environ.get("PYTHONPATH")]))
    cases = [
        ({"PARLEY_FILES_S3_BUCKET": "no-such-bucket"}, "no such bucket"),
        ({"PARLEY_FILES_S3_BUCKET": ""}, "set PARLEY_FILES_S3_BUCKET"),
        ({"PYTHONPATH": path}, "needs boto3: pip install 'parley-ai[s3]'"),
    ]
    for env, said in cases:
        srv = ParleyServer(
            database_url=first.database_url, workdir=tmp_path, env={**first.env, **env}
        )
        done = srv.cli("serve", "--port", str(srv.port))
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "testing" not in done.stderr
