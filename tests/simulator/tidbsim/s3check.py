"""A real S3 call (HeadBucket) with given credentials: how TiCDC, TiFlash and TiCI find a bad bucket or key."""


def bucket_error(endpoint, bucket, access_key, secret_key, region="us-east-1", path_style=True, timeout=3.0):
    """None when the bucket answers HeadBucket with these credentials, else a short reason."""
    if not bucket:
        return "bucket is empty"
    if not endpoint:
        return "endpoint is empty"
    try:
        import botocore.session  # pylint: disable=import-outside-toplevel
        from botocore.config import Config  # pylint: disable=import-outside-toplevel
        from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel
    except ImportError:
        return "botocore is not installed"
    session = botocore.session.get_session()
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1},
                    s3={"addressing_style": "path" if path_style else "virtual"})
    client = session.create_client("s3", region_name=region or "us-east-1", endpoint_url=endpoint,
                                   aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
                                   config=config)
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"HeadBucket {bucket}: {status} {code}".strip()
    except BotoCoreError as exc:
        return f"HeadBucket {bucket}: {exc}"
    return None
