"""MinIO: health endpoints, SigV4 with the root keys, bucket persistence across restarts."""

import boto3
import botocore
import pytest
from botocore.config import Config

from tidbsim.testing import http_get, wait_until


def client(minio, secret=None, key=None, **config):
    return boto3.client("s3", endpoint_url=minio.url(), aws_access_key_id=key or minio.user,
                        aws_secret_access_key=secret or minio.password, region_name="us-east-1", config=Config(**config))


def test_health_live_early_cluster_only_when_ready(sim):
    slow = sim.minio(env={"TIDBSIM_NEVER_READY": "1"})
    minio = sim.minio()
    wait_until(lambda: http_get(slow.url("/minio/health/live"))[0] == 200, 10, "live")
    assert http_get(slow.url("/minio/health/ready"))[0] == 200
    status, _body = http_get(slow.url("/minio/health/cluster"))
    assert status == 503
    minio.wait_ready()
    assert http_get(minio.url("/minio/health/cluster")) == (200, b"")
    assert http_get(minio.url("/minio/health/cluster?maintenance=true"))[0] == 412


def test_signed_requests_with_root_keys_and_403_otherwise(sim):
    minio = sim.minio(user="rootuser", password="root-secret-1")
    minio.wait_ready()
    s3 = client(minio)
    s3.create_bucket(Bucket="ticidefaultbucket")
    s3.put_object(Bucket="ticidefaultbucket", Key="tici_default_prefix/cdc/a b+c.json", Body=b"{}")
    assert s3.get_object(Bucket="ticidefaultbucket", Key="tici_default_prefix/cdc/a b+c.json")["Body"].read() == b"{}"
    listed = s3.list_objects_v2(Bucket="ticidefaultbucket", Prefix="tici_default_prefix/")
    assert [o["Key"] for o in listed["Contents"]] == ["tici_default_prefix/cdc/a b+c.json"]
    presigned = client(minio, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": "ticidefaultbucket", "Key": "tici_default_prefix/cdc/a b+c.json"})
    assert http_get(presigned) == (200, b"{}")
    with pytest.raises(botocore.exceptions.ClientError) as wrong_secret:
        client(minio, secret="not-the-secret").list_buckets()
    assert wrong_secret.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(botocore.exceptions.ClientError) as wrong_key:
        client(minio, key="someoneelse").list_buckets()
    assert wrong_key.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    with pytest.raises(botocore.exceptions.ClientError) as head:
        client(minio, secret="not-the-secret").head_bucket(Bucket="ticidefaultbucket")
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    status, body = http_get(minio.url("/ticidefaultbucket"))
    assert status == 403 and b"<Code>AccessDenied</Code>" in body


def test_buckets_survive_a_restart(sim):
    minio = sim.minio()
    minio.wait_ready()
    client(minio).create_bucket(Bucket="kept")
    client(minio).create_bucket(Bucket="dropped")
    client(minio).delete_bucket(Bucket="dropped")
    minio.restart()
    minio.wait_ready()
    assert [b["Name"] for b in client(minio).list_buckets()["Buckets"]] == ["kept"]


def test_credentials_from_files_as_docker_secrets(sim, tmp_path):
    """The roles hand MinIO its root credentials as *_FILE paths, so no secret sits in the container env."""
    (tmp_path / "user").write_text("fileuser\n", encoding="utf-8")
    (tmp_path / "password").write_text("file-secret+/=1\n", encoding="utf-8")
    minio = sim.minio(user="", password="", env={"MINIO_ROOT_USER_FILE": str(tmp_path / "user"),
                                                 "MINIO_ROOT_PASSWORD_FILE": str(tmp_path / "password")})
    minio.wait_ready()
    minio.user, minio.password = "fileuser", "file-secret+/=1"
    client(minio).create_bucket(Bucket="from-files")
    with pytest.raises(botocore.exceptions.ClientError) as default_keys:
        client(minio, key="minioadmin", secret="minioadmin").list_buckets()
    assert default_keys.value.response["Error"]["Code"] == "InvalidAccessKeyId"
