"""A real S3-protocol object store for tests: moto's server on 127.0.0.1 and a free port, with one bucket.

Use it through a fixture (`store_for_test`) or call `serve()`.
The store speaks HTTP S3 (signatures, multipart uploads, listings) to any client: pyarrow in the workload, Tune's
trial uploads from Ray workers, boto3 in the test. Credentials are dummies; nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.ports import free_port


@dataclass
class S3Store:
    """A running store: its endpoint, one empty bucket, the environment a client needs, and a boto3 client."""

    endpoint: str
    bucket: str
    env: dict[str, str]
    client: object = field(repr=False)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under `prefix` (as S3 lists them, all pages)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


@contextlib.contextmanager
def serve(bucket: str = "bucket") -> Iterator[S3Store]:
    """Start moto's threaded server, empty it, create `bucket`, yield the store, stop the server."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its buckets in process-wide state that outlives a server: start from an empty store
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata probe for credentials or region
    }
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )
        client.create_bucket(Bucket=bucket)
        yield S3Store(endpoint=endpoint, bucket=bucket, env=env, client=client)
    finally:
        server.stop()


def store_for_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    """The body of a test module's fixture: a fresh store with the bucket `bucket`, its AWS_* variables set in the
    test's own process too (undone afterwards). A module declares

        @pytest.fixture
        def s3_store(monkeypatch):
            yield from s3.store_for_test(monkeypatch)
    """
    with serve() as store:
        for name, value in store.env.items():
            monkeypatch.setenv(name, value)
        yield store
