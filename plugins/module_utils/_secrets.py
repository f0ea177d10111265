# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Masking of secrets in sink URIs, nested data and free text, and keyed digests of data with secrets.

TiCDC echoes S3 keys in clear text inside ``sink_uri`` (pingcap/ticdc pkg/util/uri.go MaskSinkURI
masks passwords only), so every value a module returns, diffs or prints goes through these helpers
first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

MASK = '********'

# Query parameters of sink URIs (S3, GCS, Azure, Kafka, MySQL) that carry credentials.
SECRET_QUERY_KEYS = frozenset((
    'access-key', 'secret-access-key', 'session-token', 'sasl-password', 'password',
    'sasl-oauth-client-secret', 'account-key', 'sas-token', 'secret-key', 'token',
))

# Dict keys whose values are secrets, compared after lowercasing and dropping '-' and '_'.
_SECRET_KEY_PATTERN = re.compile(r'(secret|password|passwd|accesskey|token|credential|accountkey|saskey|privatekey)')


# A URI inside free text: a scheme, '://', then anything up to whitespace or a quote.
_URI_IN_TEXT = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*://[^\s\'"]+')


def _is_secret_key(name):
    return bool(_SECRET_KEY_PATTERN.search(str(name).lower().replace('-', '').replace('_', '')))


def mask_uri(uri):
    """Return ``uri`` with its userinfo password and credential query values replaced by MASK.

    Anything that does not parse as a URI with a scheme is returned unchanged.
    """
    if not isinstance(uri, str) or '://' not in uri:
        return uri
    try:
        parts = urlsplit(uri)
        netloc = parts.netloc
        if '@' in netloc:
            userinfo, hostport = netloc.rsplit('@', 1)
            if ':' in userinfo:
                userinfo = userinfo.split(':', 1)[0] + ':' + MASK
            netloc = userinfo + '@' + hostport
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return MASK
    if netloc == parts.netloc and not any(key.lower() in SECRET_QUERY_KEYS for key, _value in pairs):
        return uri
    query = '&'.join(
        '%s=%s' % (quote(key, safe=''), MASK if key.lower() in SECRET_QUERY_KEYS else quote(value, safe='/:,'))
        for key, value in pairs
    )
    masked = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    if not netloc:  # urlunsplit drops the '//' of 'blackhole://?...'; keep the URI as written
        masked = masked.replace(parts.scheme + ':', parts.scheme + '://', 1)
    return masked


def secret_values(uri):
    """Return the raw secret strings inside a URI (password, credential query values)."""
    found = []
    if not isinstance(uri, str) or '://' not in uri:
        return found
    try:
        parts = urlsplit(uri)
        if parts.password:
            found.append(parts.password)
        found.extend(value for key, value in parse_qsl(parts.query, keep_blank_values=True) if key.lower() in SECRET_QUERY_KEYS)
    except ValueError:
        pass
    return [value for value in found if value]


def mask_data(data):
    """Return a deep copy of ``data`` with secret-named keys masked and URIs masked."""
    if isinstance(data, dict):
        return dict(
            (key, MASK if _is_secret_key(key) and value not in (None, '') else mask_data(value))
            for key, value in data.items()
        )
    if isinstance(data, (list, tuple)):
        return [mask_data(item) for item in data]
    if isinstance(data, str):
        return mask_uri(data)
    return data


class Redactor:
    """Remove known secret strings from free text (error messages, server replies)."""

    def __init__(self, secrets=()):
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted(set(s for s in secrets if s), key=len, reverse=True)

    def add(self, *secrets):
        self._secrets = sorted(set(self._secrets).union(s for s in secrets if s), key=len, reverse=True)

    def text(self, text):
        if not isinstance(text, str):
            return text
        for secret in self._secrets:
            text = text.replace(secret, MASK)
            encoded = quote(secret, safe='')
            if encoded != secret:
                text = text.replace(encoded, MASK)
        return _URI_IN_TEXT.sub(lambda match: mask_uri(match.group(0)), text)

    def data(self, data):
        """Mask ``data`` (see mask_data) and remove known secrets from every string in it."""
        data = mask_data(data)
        return self._scrub(data)

    def _scrub(self, data):
        if isinstance(data, dict):
            return dict((key, self._scrub(value)) for key, value in data.items())
        if isinstance(data, list):
            return [self._scrub(item) for item in data]
        return self.text(data)


# The shortest digest key accepted: 128 bits as hex digits.
DIGEST_KEY_MIN_LENGTH = 32


def keyed_digest(key, data):
    """HMAC-SHA256 (hex) of ``data`` as canonical JSON, keyed with the cluster's digest key.

    Engines and the Kubernetes API show the digests a spec is compared by (a container label, a pod
    template annotation) to anyone who may inspect them. A plain hash over content that holds a
    password lets such a reader test guesses offline; without the key, the digest tells nothing.
    """
    if not isinstance(key, str) or len(key) < DIGEST_KEY_MIN_LENGTH:
        raise ValueError('the digest key must be a string of at least %d characters' % DIGEST_KEY_MIN_LENGTH)
    message = json.dumps(data, sort_keys=True).encode('utf-8')
    return hmac.new(key.encode('utf-8'), message, hashlib.sha256).hexdigest()
