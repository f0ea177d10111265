# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""The MinIO user's pure parts; tests/simulator/tests/test_minio.py runs it against a MinIO."""

from __future__ import annotations

import pytest

from ansible_collections.tidbops.cluster.plugins.module_utils._minio import (
    MinioUser, MinioUserError, attached_policies, bucket_policy, error_code, same_policy, split_endpoint)


class FakeError(Exception):
    def __init__(self, body):
        super().__init__(body)
        self._body = body


def test_the_policy_names_one_bucket_and_its_objects_only():
    policy = bucket_policy('b1')
    resources = [r for statement in policy['Statement'] for r in statement['Resource']]
    assert resources == ['arn:aws:s3:::b1', 'arn:aws:s3:::b1/*']
    assert all(statement['Effect'] == 'Allow' for statement in policy['Statement'])
    assert not [a for statement in policy['Statement'] for a in statement['Action'] if '*' in a or 'Bucket' in a and 'Create' in a]
    shuffled = {'Statement': [dict(s, Action=list(reversed(s['Action']))) for s in reversed(policy['Statement'])], 'Version': '2012-10-17'}
    assert same_policy(shuffled, policy) and not same_policy(bucket_policy('b2'), policy)


def test_plan_takes_only_the_steps_that_differ():
    user = MinioUser(None, None, 'tici', 'secret-123', 'b1', 'p1')
    assert user.plan({'policy': None, 'user': None, 'policies': []}) == ['policy', 'user', 'attach']
    assert user.plan({'policy': bucket_policy('b1'), 'user': {'status': 'disabled'}, 'policies': ['p1']}) == ['enable']
    assert user.plan({'policy': bucket_policy('b1'), 'user': {'status': 'enabled'}, 'policies': ['p0', 'p1']}) == []
    # The bucket comes first, and only when it was asked for (not None) and is missing (False).
    converged = {'policy': bucket_policy('b1'), 'user': {'status': 'enabled'}, 'policies': ['p1']}
    assert user.plan(dict(converged, bucket=False)) == ['bucket']
    assert user.plan(dict(converged, bucket=True)) == [] and user.plan(dict(converged, bucket=None)) == []
    assert user.plan({'bucket': False, 'policy': None, 'user': None, 'policies': []}) == ['bucket', 'policy', 'user', 'attach']


class FakeRootS3:
    """minio-py's Minio as the bucket step uses it: bucket_exists and make_bucket."""

    def __init__(self, buckets=(), fail=None):
        self.buckets = set(buckets)
        self.fail = fail
        self.calls = []

    def bucket_exists(self, name):
        self.calls.append(('exists', name))
        if self.fail:
            raise self.fail
        return name in self.buckets

    def make_bucket(self, name):
        self.calls.append(('make', name))
        self.buckets.add(name)


def test_the_bucket_is_read_only_when_asked_and_made_once():
    assert MinioUser(None, None, 'tici', 'secret-123', 'b1', 'p1')._bucket_exists() is None
    root = FakeRootS3()
    user = MinioUser(None, lambda: None, 'tici', 'secret-123', 'b1', 'p1', root_s3=root)
    assert user._bucket_exists() is False
    assert user.apply(['bucket']) == ['bucket'] and root.buckets == {'b1'}
    assert user._bucket_exists() is True
    assert [call for call in root.calls if call[0] == 'make'] == [('make', 'b1')]
    failing = MinioUser(None, None, 'tici', 'secret-123', 'b1', 'p1', root_s3=FakeRootS3(fail=FakeError('Connection refused')))
    with pytest.raises(MinioUserError, match='checking that bucket b1 exists: Connection refused'):
        failing._bucket_exists()


def test_helpers_read_minio_answers():
    assert attached_policies({'policyName': 'a,b'}) == ['a', 'b'] and attached_policies({}) == []
    assert error_code(FakeError('{"Code":"XMinioAdminNoSuchUser"}')) == 'XMinioAdminNoSuchUser'
    assert error_code(FakeError('not json')) == ''
    assert split_endpoint('http://127.0.0.1:9000') == ('127.0.0.1:9000', False)
    assert split_endpoint('https://minio.example:9000/') == ('minio.example:9000', True)
    for bad in ('minio:9000', 'http://minio:9000/path', 'ftp://x'):
        with pytest.raises(ValueError, match='endpoint must be'):
            split_endpoint(bad)
