"""The S3 backend, against moto's in-process S3 (no real S3 is reachable from
the build machine): objects stream up in multipart parts and back, the blob
store round-trips through it, and a failed upload leaves nothing behind."""

from __future__ import annotations

import io
import uuid

import boto3
import pytest
from moto import mock_aws
from tests.conftest import scratch_dir
from tests.functional.encryption.helpers import (
    MARCH,
    make_practice,
    new_keystore,
    run_with_store,
    synthetic_audio,
    system,
)

from perpetua.blobs import BlobStore, BlobUnreadable, S3Objects, open_objects
from perpetua.blobs import objects as objects_module
from perpetua.config import Settings
from perpetua.crypto.keystore import DataClass
from perpetua.db.pool import Database
from perpetua.errors import ConfigError


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="perpetua-test")
        yield client


def test_multipart_upload_streams_and_reads_back(s3, monkeypatch):
    monkeypatch.setattr(objects_module, "S3_PART_SIZE", 5 << 20)
    store = S3Objects(s3, "perpetua-test", "site-a")
    data = synthetic_audio((11 << 20) + 123)
    with store.write("recordings/p/2026-03/obj") as sink:
        for start in range(0, len(data), 1 << 20):
            sink.write(memoryview(data)[start : start + (1 << 20)])
    assert store.size("recordings/p/2026-03/obj") == len(data)
    head = s3.head_object(Bucket="perpetua-test", Key="site-a/recordings/p/2026-03/obj")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    back = bytearray()
    with store.open("recordings/p/2026-03/obj") as source:
        buffer = bytearray(70000)
        while got := source.readinto(memoryview(buffer)):
            back += buffer[:got]
    assert bytes(back) == data
    assert list(store.keys("recordings")) == ["recordings/p/2026-03/obj"]
    store.delete("recordings/p/2026-03/obj")
    with pytest.raises(FileNotFoundError):
        store.size("recordings/p/2026-03/obj")


def test_failed_upload_leaves_no_object(s3):
    store = S3Objects(s3, "perpetua-test")

    def upload_that_fails() -> None:
        with store.write("a/b") as sink:
            sink.write(memoryview(b"partial"))
            raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        upload_that_fails()
    assert list(store.keys("a")) == []


def test_blob_store_round_trips_through_s3_and_detects_tampering(s3, blob_target):
    practice = make_practice(blob_target)
    settings = Settings(
        data_dir=scratch_dir("perpetua-s3-"), blob_store_url="s3://perpetua-test/prod"
    )
    objects = open_objects(settings, "blobs")
    keystore = new_keystore(settings.data_dir / "keys")
    data = synthetic_audio(50_000)
    oid = uuid.uuid4()

    async def body(_blobs):
        db = Database(blob_target.conninfo("service"), min_size=1, max_size=2)
        await db.open()
        try:
            store = BlobStore(objects, keystore, db, segment_size=4096)
            await store.put(
                system(practice), DataClass.TRANSCRIPTS, oid, io.BytesIO(data), at=MARCH
            )
            sink = io.BytesIO()
            await store.read_into(system(practice), oid, sink)
            key = f"prod/blobs/{practice}/transcripts/2026-03/{oid}"
            stored = s3.get_object(Bucket="perpetua-test", Key=key)["Body"].read()
            assert data[:100] not in stored
            s3.put_object(Bucket="perpetua-test", Key=key, Body=stored[:-1] + b"\0")
            with pytest.raises(BlobUnreadable):
                await store.read_into(system(practice), oid, io.BytesIO())
            return sink.getvalue()
        finally:
            await db.close()

    assert run_with_store(blob_target, body) == data


def test_s3_endpoint_must_use_tls_unless_local():
    settings = Settings(
        data_dir=scratch_dir("perpetua-s3-"),
        blob_store_url="s3://bucket",
        s3_endpoint_url="http://minio.example.test:9000",
    )
    with pytest.raises(ConfigError):
        open_objects(settings)
    with pytest.raises(ConfigError):
        open_objects(Settings(data_dir=settings.data_dir, blob_store_url="bucket"))
