"""A real S3 call (HeadBucket) with given credentials: how TiCDC, TiFlash and TiCI find a bad bucket or key."""

import functools


@functools.lru_cache(maxsize=32)
def client(endpoint, access_key, secret_key, region="us-east-1", path_style=True, timeout=3.0):
    """A botocore S3 client for these settings, made once: the components check and read S3 every
    half second, and making a client costs more CPU than the request it sends (tens of ms, on a
    2-core test machine running several clusters). Each check still sends its own request."""
    import botocore.session  # pylint: disable=import-outside-toplevel
    from botocore.config import Config  # pylint: disable=import-outside-toplevel
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1},
                    s3={"addressing_style": "path" if path_style else "virtual"})
    return botocore.session.get_session().create_client(
        "s3", region_name=region or "us-east-1", endpoint_url=endpoint, aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None, config=config)


def bucket_error(endpoint, bucket, access_key, secret_key, region="us-east-1", path_style=True, timeout=3.0):
    """None when the bucket answers HeadBucket with these credentials, else a short reason."""
    if not bucket:
        return "bucket is empty"
    if not endpoint:
        return "endpoint is empty"
    try:
        from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel
    except ImportError:
        return "botocore is not installed"
    try:
        s3 = client(endpoint, access_key, secret_key, region, path_style, timeout)
    except BotoCoreError as exc:
        return f"HeadBucket {bucket}: {exc}"
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"HeadBucket {bucket}: {status} {code}".strip()
    except BotoCoreError as exc:
        return f"HeadBucket {bucket}: {exc}"
    return None
