# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""A MinIO user limited to one bucket, through MinIO's admin API (minio-py's MinioAdmin), and, when
asked, the bucket itself (minio-py's Minio with the root credentials).

TiCDC, TiCI and TiFlash read and write TiCI's files in one bucket; they get a user whose canned policy
allows that bucket only (bucket_policy), so the MinIO root credentials stay with the MinIO role.

MinIO never returns a user's secret key, so whether the secret is current is asked the way any client
would: one signed S3 request with the user's keys (SignatureDoesNotMatch: it is not). Adding a user
that exists sets its secret (minio cmd/admin-handlers-users.go AddUser), and attaching a policy that is
already attached is an error (400 XMinioAdminPolicyChangeAlreadyApplied, minio/mc#4863), so each step
is taken only when what it sets differs.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

# Actions on the bucket itself, and on the objects in it: what an S3 client that lists, reads,
# writes, deletes and uploads in parts needs (AWS S3 actions, as MinIO's policy language names them).
BUCKET_ACTIONS = ('s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads')
OBJECT_ACTIONS = ('s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts')
# The answers of a signed request that say the key or the secret is not the user's current one.
STALE_CREDENTIALS = ('SignatureDoesNotMatch', 'InvalidAccessKeyId')


class MinioUserError(Exception):
    """A request MinIO refused, or MinIO could not be reached; the message names the step."""


def bucket_policy(bucket):
    """The canned policy that allows one bucket and its objects, nothing else."""
    return {'Version': '2012-10-17', 'Statement': [
        {'Effect': 'Allow', 'Action': list(BUCKET_ACTIONS), 'Resource': ['arn:aws:s3:::%s' % bucket]},
        {'Effect': 'Allow', 'Action': list(OBJECT_ACTIONS), 'Resource': ['arn:aws:s3:::%s/*' % bucket]},
    ]}


def same_policy(current, wanted):
    """Whether two policy documents say the same (key order and list order aside)."""
    def canonical(document):
        if isinstance(document, dict):
            return dict((key, canonical(value)) for key, value in document.items())
        if isinstance(document, list):
            return sorted((canonical(item) for item in document), key=lambda item: json.dumps(item, sort_keys=True))
        return document
    return canonical(current) == canonical(wanted)


def attached_policies(user_info):
    """The policy names of a user-info answer ({"policyName": "a,b", ...})."""
    return [name for name in (user_info.get('policyName') or '').split(',') if name]


def error_code(exc):
    """The S3 or admin error code of a minio-py exception, '' when it has none."""
    code = getattr(exc, 'code', None)
    if code:
        return code
    body = getattr(exc, '_body', '') or ''
    try:
        return json.loads(body).get('Code') or ''
    except (ValueError, AttributeError):
        return ''


class MinioUser:
    """One user and its bucket policy on one MinIO, through ``admin`` (MinioAdmin) and ``s3_as_user``
    (a callable that makes one signed S3 request with the user's keys, raising minio-py's S3Error).
    With ``root_s3`` (minio-py's Minio with the root credentials) the bucket is made too when it is
    missing: one HEAD when it exists, where a general S3 bucket module reads every bucket property."""

    def __init__(self, admin, s3_as_user, access_key, secret_key, bucket, policy_name, root_s3=None):
        self.admin = admin
        self.s3_as_user = s3_as_user
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket
        self.policy_name = policy_name
        self.root_s3 = root_s3

    def _bucket_exists(self):
        if self.root_s3 is None:
            return None
        try:
            return self.root_s3.bucket_exists(self.bucket)
        except Exception as exc:  # pylint: disable=broad-except  # minio-py raises several types
            raise MinioUserError('checking that bucket %s exists: %s' % (self.bucket, exc)) from exc

    def _admin_json(self, step, call, *args, **kwargs):
        try:
            text = call(*args, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except  # minio-py raises several types
            if error_code(exc) in ('XMinioAdminNoSuchUser', 'XMinioAdminNoSuchPolicy'):
                return None
            raise MinioUserError('%s: %s' % (step, exc)) from exc
        return json.loads(text) if text else {}

    def read(self):
        """{bucket (whether it exists; None when not asked), policy, user (None when absent), policies}
        as MinIO has them now."""
        bucket = self._bucket_exists()
        policy = self._admin_json('reading policy %s' % self.policy_name, self.admin.policy_info, self.policy_name)
        if isinstance(policy, dict) and isinstance(policy.get('Policy'), dict):  # the v2 answer wraps it
            policy = policy['Policy']
        user = self._admin_json('reading user %s' % self.access_key, self.admin.user_info, self.access_key)
        return {'bucket': bucket, 'policy': policy, 'user': user, 'policies': attached_policies(user or {})}

    def secret_is_current(self):
        try:
            self.s3_as_user()
        except Exception as exc:  # pylint: disable=broad-except
            if error_code(exc) in STALE_CREDENTIALS:
                return False
            raise MinioUserError('checking the secret key of %s with a request to bucket %s: %s'
                                 % (self.access_key, self.bucket, exc)) from exc
        return True

    def plan(self, state):
        """The steps that bring MinIO to the wanted state: bucket, policy, user, enable, attach."""
        steps = ['bucket'] if state.get('bucket') is False else []
        if state['policy'] is None or not same_policy(state['policy'], bucket_policy(self.bucket)):
            steps.append('policy')
        if state['user'] is None:
            steps.append('user')
        elif state['user'].get('status') != 'enabled':
            steps.append('enable')
        if self.policy_name not in state['policies']:
            steps.append('attach')
        return steps

    def apply(self, steps):
        """Take the planned steps, then set the secret when a signed request says it is stale.
        Returns the steps taken (the secret check adds 'secret')."""
        taken = list(steps)
        try:
            if 'bucket' in steps:
                self.root_s3.make_bucket(self.bucket)
            if 'policy' in steps:
                self.admin.policy_add(self.policy_name, policy=bucket_policy(self.bucket))
            if 'user' in steps:
                self.admin.user_add(self.access_key, self.secret_key)
            if 'enable' in steps:
                self.admin.user_enable(self.access_key)
            if 'attach' in steps:
                self.admin.attach_policy([self.policy_name], user=self.access_key)
        except Exception as exc:  # pylint: disable=broad-except
            raise MinioUserError('%s: %s' % (', '.join(steps), exc)) from exc
        if 'user' not in steps and not self.secret_is_current():
            try:
                self.admin.user_add(self.access_key, self.secret_key)
            except Exception as exc:  # pylint: disable=broad-except
                raise MinioUserError('setting the secret key of %s: %s' % (self.access_key, exc)) from exc
            taken.append('secret')
        return taken


def split_endpoint(endpoint):
    """(host:port, secure) of an http(s):// URL, as minio-py's clients take them."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ('http', 'https') or not parts.netloc or parts.path not in ('', '/'):
        raise ValueError('endpoint must be an http:// or https:// URL without a path, got %r' % endpoint)
    return parts.netloc, parts.scheme == 'https'
