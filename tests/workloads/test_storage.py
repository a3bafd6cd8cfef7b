"""workloads.storage: locations as local folders or URIs, against a real S3-protocol server (moto on 127.0.0.1),
and the refusal of a local path on a multi-node cluster."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from workloads import storage
from workloads.contract import UsageError

from . import s3

TWO_NODES = [{"NodeID": "head", "Alive": True}, {"NodeID": "worker", "Alive": True}]


@pytest.fixture
def s3_store(monkeypatch):
    """A real S3-protocol server (moto) on 127.0.0.1 with the bucket `bucket`; AWS_* variables set."""
    yield from s3.store_for_test(monkeypatch)


def test_a_local_path_on_a_multi_node_cluster_is_refused():
    with pytest.raises(UsageError) as refused:
        storage.require_shared("runs/x", nodes=TWO_NODES)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("--out runs/x is a local folder")
    assert "2-node" in message and "s3://" in message and "file:///" in message
    with pytest.raises(UsageError, match="^--registry /srv/models"):
        storage.require_shared("/srv/models", flag="--registry", nodes=TWO_NODES + TWO_NODES)
    for shared in ("s3://bucket/x", "gs://bucket/x", "file:///mnt/shared/x"):  # URIs pass
        storage.require_shared(shared, nodes=TWO_NODES)
    storage.require_shared("runs/x", nodes=[TWO_NODES[0], {**TWO_NODES[1], "Alive": False}])  # one alive node
    storage.require_shared("runs/x", nodes=TWO_NODES[:1])


def test_join_keeps_the_query_of_a_uri():
    assert (
        storage.join("s3://b/runs/x/?region=eu-west-1", "tune", "a.json")
        == "s3://b/runs/x/tune/a.json?region=eu-west-1"
    )
    assert storage.join("runs/x", "summary.json") == "runs/x/summary.json"


def test_the_aws_endpoint_variable_reaches_the_filesystem(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    assert storage.with_endpoint("s3://b/x") == "s3://b/x?endpoint_override=http%3A%2F%2F127.0.0.1%3A9"
    assert (
        storage.with_endpoint("s3://b/x?region=r") == "s3://b/x?region=r&endpoint_override=http%3A%2F%2F127.0.0.1%3A9"
    )
    assert storage.with_endpoint("s3://b/x?endpoint_override=h:1") == "s3://b/x?endpoint_override=h:1"  # the URI wins
    assert storage.with_endpoint("gs://b/x") == "gs://b/x" and storage.with_endpoint("runs/x") == "runs/x"
    fs, path = storage.filesystem("s3://b/x")
    assert path == "b/x" and "127.0.0.1:9" in str(fs.__reduce__())  # the endpoint travels with the pickled fs


def test_upload_read_download_through_a_real_s3_server(s3_store, tmp_path, monkeypatch):
    run = tmp_path / "run"
    (run / "tune" / "trial_1").mkdir(parents=True)
    (run / "summary.json").write_text('{"status": "ok"}')
    (run / "model.skops").write_bytes(bytes(range(256)) * 40_000)  # 10 MB: a multipart upload
    (run / "tune" / "trial_1" / "result.json").write_text("{}")
    uri = f"s3://{s3_store.bucket}/runs/x"
    storage.check_writable(uri)
    assert storage.upload(run, uri, names=["summary.json"]) == ["summary.json"]
    assert storage.upload(run, uri) == ["model.skops", "summary.json", "tune/trial_1/result.json"]
    keys = [k for k in s3_store.keys("runs/x/") if not k.endswith("/")]  # (pyarrow's folder markers aside)
    assert keys == ["runs/x/model.skops", "runs/x/summary.json", "runs/x/tune/trial_1/result.json"]
    assert s3_store.read("runs/x/model.skops") == (run / "model.skops").read_bytes()
    assert storage.read_bytes(storage.join(uri, "summary.json")) == b'{"status": "ok"}'
    assert storage.read_bytes(storage.join(uri, "missing.json")) is None
    assert storage.exists(uri) and not storage.exists(f"s3://{s3_store.bucket}/runs/y")
    back = tmp_path / "back"
    assert storage.download(uri, back, skip=("tune",)) == ["model.skops", "summary.json"]
    assert (back / "model.skops").read_bytes() == (run / "model.skops").read_bytes()
    # The endpoint named in the URI instead of the environment.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    explicit = f"{uri}?endpoint_override={quote(s3_store.endpoint, safe='')}"
    assert storage.read_bytes(storage.join(explicit, "summary.json")) == b'{"status": "ok"}'
    with pytest.raises(OSError, match="no-such-bucket"):
        storage.check_writable(f"s3://no-such-bucket/x?endpoint_override={quote(s3_store.endpoint, safe='')}")
