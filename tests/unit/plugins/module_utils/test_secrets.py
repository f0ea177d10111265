# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Masking of secrets in URIs, nested data and text; keyed digests."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from ansible_collections.tidbops.cluster.plugins.module_utils._secrets import (
    MASK, Redactor, keyed_digest, mask_data, mask_uri, secret_values)

S3 = 's3://bucket/prefix/cdc?protocol=canal-json&endpoint=http://minio0:9000&access-key=AKIA123&secret-access-key=s3cr%2Bet%2Fkey'


@pytest.mark.parametrize('uri, hidden, kept', [
    (S3, ['AKIA123', 's3cr', 'secret-access-key=s3'], ['protocol=canal-json', 'endpoint=http://minio0:9000', 's3://bucket/prefix/cdc']),
    ('mysql://root:p4ss@tidb0:4000/', ['p4ss'], ['mysql://root:' + MASK + '@tidb0:4000/']),
    ('kafka://k0:9092/topic?sasl-user=u&sasl-password=pw0', ['pw0'], ['sasl-user=u']),
    ('blackhole://?protocol=canal-json&secret-access-key=x1', ['x1'], ['blackhole://?protocol=canal-json&secret-access-key=' + MASK]),
])
def test_mask_uri(uri, hidden, kept):
    masked = mask_uri(uri)
    for text in hidden:
        assert text not in masked
    for text in kept:
        assert text in masked


def test_mask_uri_leaves_clean_uris_alone():
    assert mask_uri('s3://b/p?protocol=canal-json&b=2&a=1') == 's3://b/p?protocol=canal-json&b=2&a=1'
    assert mask_uri('not a uri') == 'not a uri'


def test_secret_values():
    assert sorted(secret_values(S3)) == ['AKIA123', 's3cr+et/key']
    assert secret_values('mysql://root:p4ss@h:1/') == ['p4ss']
    assert secret_values(None) == []


def test_mask_data_nested():
    data = {'sink_uri': S3, 'config': {'sink': {'protocol': 'canal-json'}, 'tici': [{'secret_key': 'x', 'access-key': 'y', 'SecretAccessKey': 'z'}]},
            'minio_root_password': 'pw', 'token': '', 'count': 3}
    masked = mask_data(data)
    assert 'AKIA123' not in str(masked)
    assert masked['config']['tici'] == [{'secret_key': MASK, 'access-key': MASK, 'SecretAccessKey': MASK}]
    assert masked['minio_root_password'] == MASK
    assert masked['token'] == ''
    assert masked['count'] == 3
    assert masked['config']['sink'] == {'protocol': 'canal-json'}
    assert data['minio_root_password'] == 'pw', 'the input is not modified'


def test_redactor_text_and_encoded_forms():
    redactor = Redactor(secret_values(S3))
    text = redactor.text('[CDC:ErrSinkURIInvalid]sink uri invalid: secret s3cr+et/key (s3cr%2Bet%2Fkey) AKIA123')
    assert 's3cr' not in text and 'AKIA123' not in text
    assert redactor.data({'a': ['s3cr+et/key in a list']}) == {'a': [MASK + ' in a list']}


def test_redactor_masks_uris_inside_text_even_with_unknown_secrets():
    text = Redactor().text("sink uri invalid 's3://b/p?access-key=AK1&secret-access-key=other': failed")
    assert 'AK1' not in text and 'other' not in text
    assert text.startswith("sink uri invalid 's3://b/p?access-key=") and text.endswith("': failed")


def test_keyed_digest_is_an_hmac_over_canonical_json_and_refuses_short_keys():
    key = 'k' * 32
    data = {'b': [1, 2], 'a': 'pw'}
    assert keyed_digest(key, data) == keyed_digest(key, {'a': 'pw', 'b': [1, 2]})
    assert keyed_digest(key, data) == hmac.new(key.encode(), b'{"a": "pw", "b": [1, 2]}', hashlib.sha256).hexdigest()
    assert keyed_digest(key, data) != keyed_digest('j' * 32, data)
    for bad in (None, '', 'k' * 31, 32):
        with pytest.raises(ValueError, match='at least 32'):
            keyed_digest(bad, data)
