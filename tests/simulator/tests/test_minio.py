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


def _minio_user(minio, secret, bucket="ticidefaultbucket", create_bucket=False):
    """module_utils/_minio with minio-py's real clients, as tidbops.cluster.minio_user builds them."""
    from minio import Minio  # pylint: disable=import-outside-toplevel
    from minio.credentials import StaticProvider  # pylint: disable=import-outside-toplevel
    from minio.minioadmin import MinioAdmin  # pylint: disable=import-outside-toplevel
    from ansible_collections.tidbops.cluster.plugins.module_utils._minio import MinioUser  # pylint: disable=import-outside-toplevel
    host = minio.url().split("://", 1)[1].rstrip("/")
    admin = MinioAdmin(endpoint=host, credentials=StaticProvider(minio.user, minio.password), region="us-east-1", secure=False)
    as_user = Minio(host, access_key="tici", secret_key=secret, region="us-east-1", secure=False)

    root_s3 = Minio(host, access_key=minio.user, secret_key=minio.password, region="us-east-1", secure=False) if create_bucket else None

    def s3_as_user():
        next(iter(as_user.list_objects(bucket)), None)
    return MinioUser(admin, s3_as_user, "tici", secret, bucket, "tidbops-tici-" + bucket, root_s3=root_s3), admin


def test_tici_user_is_limited_to_its_bucket_and_converges_idempotently(sim):
    """The admin API as minio-py calls it (encrypted bodies, root only), the bucket policy enforced on
    every S3 request of the user, a second attach refused as MinIO refuses it, and the secret checked by
    a signed request."""
    from minio.error import MinioAdminException  # pylint: disable=import-outside-toplevel
    minio = sim.minio(user="rootuser", password="root-secret-1")
    minio.wait_ready()
    root = client(minio)
    root.create_bucket(Bucket="ticidefaultbucket")
    root.create_bucket(Bucket="otherbucket")
    root.put_object(Bucket="otherbucket", Key="private.txt", Body=b"not for tici")
    user, admin = _minio_user(minio, "tici-secret-1")
    assert user.plan(user.read()) == ["policy", "user", "attach"]
    assert user.apply(["policy", "user", "attach"]) == ["policy", "user", "attach"]
    assert user.plan(user.read()) == [] and user.apply([]) == []  # converged: nothing to do, secret current
    with pytest.raises(MinioAdminException) as twice:
        admin.attach_policy(["tidbops-tici-ticidefaultbucket"], user="tici")
    assert "XMinioAdminPolicyChangeAlreadyApplied" in str(twice.value)

    tici = client(minio, key="tici", secret="tici-secret-1")
    tici.put_object(Bucket="ticidefaultbucket", Key="tici_default_prefix/cdc/1.json", Body=b"{}")
    assert tici.get_object(Bucket="ticidefaultbucket", Key="tici_default_prefix/cdc/1.json")["Body"].read() == b"{}"
    assert [o["Key"] for o in tici.list_objects_v2(Bucket="ticidefaultbucket")["Contents"]] == ["tici_default_prefix/cdc/1.json"]
    tici.delete_object(Bucket="ticidefaultbucket", Key="tici_default_prefix/cdc/1.json")
    for call in (lambda: tici.create_bucket(Bucket="newbucket"), lambda: tici.list_objects_v2(Bucket="otherbucket"),
                 lambda: tici.get_object(Bucket="otherbucket", Key="private.txt"), tici.list_buckets,
                 lambda: tici.put_object(Bucket="otherbucket", Key="x", Body=b"x"),
                 lambda: tici.delete_bucket(Bucket="ticidefaultbucket")):
        with pytest.raises(botocore.exceptions.ClientError) as denied:
            call()
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
    # The admin API answers the root credentials only.
    from minio.credentials import StaticProvider  # pylint: disable=import-outside-toplevel
    from minio.minioadmin import MinioAdmin  # pylint: disable=import-outside-toplevel
    as_tici = MinioAdmin(endpoint=minio.url().split("://", 1)[1].rstrip("/"), credentials=StaticProvider("tici", "tici-secret-1"),
                         region="us-east-1", secure=False)
    with pytest.raises(MinioAdminException) as refused:
        as_tici.user_info("tici")
    assert "AccessDenied" in str(refused.value)
    # A new secret is found stale by a signed request and set again; users survive a restart.
    rotated, _admin = _minio_user(minio, "tici-secret-2")
    assert rotated.plan(rotated.read()) == [] and not rotated.secret_is_current()
    assert rotated.apply([]) == ["secret"] and rotated.secret_is_current()
    minio.restart()
    minio.wait_ready()
    client(minio, key="tici", secret="tici-secret-2").head_bucket(Bucket="ticidefaultbucket")


def test_the_bucket_is_made_with_the_root_keys_when_missing_then_only_read(sim):
    """create_bucket: a HEAD as root says the bucket is missing, the bucket is made before the user's
    secret is checked (a missing bucket answers the user's signed request NoSuchBucket), and a second
    run only reads."""
    minio = sim.minio(user="rootuser", password="root-secret-1")
    minio.wait_ready()
    user, _admin = _minio_user(minio, "tici-secret-1", create_bucket=True)
    before = user.read()
    assert before["bucket"] is False and user.plan(before) == ["bucket", "policy", "user", "attach"]
    assert user.apply(user.plan(before)) == ["bucket", "policy", "user", "attach"]
    after = user.read()
    assert after["bucket"] is True and user.plan(after) == [] and user.apply([]) == []
    client(minio).head_bucket(Bucket="ticidefaultbucket")
    tici = client(minio, key="tici", secret="tici-secret-1")
    tici.put_object(Bucket="ticidefaultbucket", Key="tici_default_prefix/x", Body=b"x")
    # Without the root keys' bucket step, a missing bucket is an error of the secret check, named.
    missing, _admin = _minio_user(minio, "tici-secret-1", bucket="otherbucket")
    assert missing.read()["bucket"] is None
    from ansible_collections.tidbops.cluster.plugins.module_utils._minio import MinioUserError  # pylint: disable=import-outside-toplevel
    with pytest.raises(MinioUserError, match="NoSuchBucket|AccessDenied"):
        missing.secret_is_current()
