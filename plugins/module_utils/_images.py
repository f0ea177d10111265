# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Which image each kind runs: ``tidb_images`` (repositories), ``tidb_version`` and
``component_versions`` (TiUP's topology section of that name, pingcap/tiup pkg/cluster/spec/spec.go
``ComponentVersions``; its keys are the ``server_configs`` keys: pd, tikv, tidb, tiflash, cdc,
tici_meta, tici_worker).

* A ``tidb_images`` entry with a tag or a digest is pinned: it is used as it is (MinIO's default is).
* Any other entry is a repository, tagged with the kind's version: its ``component_versions`` entry,
  else ``tidb_version``.
* The version ``feature-fts`` names the full-text-search preview build set (pingcap/tidb-operator
  release-1.x examples/tici/tici-tc.yaml): TiDB and TiFlash from their ``feature-fts`` builds, the
  components that have no such build from ``master``.

A version must be a valid image tag; whether it exists is known only when the engine resolves it
(the container backend does, before anything changes).
"""

from __future__ import annotations

import re

from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo

DEFAULT_VERSION = 'feature-fts'
# Tags of the kinds that have no build of a named build set.
BUILD_SETS = {'feature-fts': {'pd': 'master', 'tikv': 'master', 'ticdc': 'master', 'tici_meta': 'master',
                              'tici_worker': 'master'}}
# The OCI distribution spec's tag grammar.
_TAG = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')
# Versions of the kinds TiUP versions (its component_versions keys); MinIO is not one.
VERSIONED = dict((kind.config_key, kind.name) for kind in topo.KINDS if kind.config_key)


def is_pinned(reference):
    """True when the reference carries a tag or a digest (a ':' after the last '/', or an '@')."""
    return '@' in reference or ':' in reference.rsplit('/', 1)[-1]


def valid_tag(text):
    return isinstance(text, str) and bool(_TAG.match(text))


def version_problems(settings):
    """tidb_version and component_versions, checked (each broken rule named)."""
    problems = []
    version = settings.get('version', DEFAULT_VERSION)
    if not valid_tag(version):
        problems.append('tidb_version must be an image tag (letters, digits, _ . -, at most 128, not starting with . or -), '
                        'got %r' % (version,))
    versions = settings.get('component_versions') or {}
    if not isinstance(versions, dict):
        return problems + ['component_versions must map components (%s) to versions' % ', '.join(sorted(VERSIONED))]
    for key, value in sorted(versions.items()):
        if key not in VERSIONED:
            problems.append('component_versions.%s: unknown component; expected one of %s' % (key, ', '.join(sorted(VERSIONED))))
        elif value not in (None, '') and not valid_tag(value):
            problems.append('component_versions.%s must be an image tag, got %r' % (key, value))
    return problems


def version_of(settings, kind_name):
    """The version a kind runs: its component_versions entry, else tidb_version (through its build set)."""
    kind = topo.kind(kind_name)
    version = settings.get('version') or DEFAULT_VERSION
    own = (settings.get('component_versions') or {}).get(kind.config_key) if kind.config_key else None
    if own:
        return own
    return BUILD_SETS.get(version, {}).get(kind_name, version)


def reference(settings, kind_name):
    """The image reference one kind runs (see the module docstring)."""
    image = settings['images'][topo.kind(kind_name).image]
    return image if is_pinned(image) else '%s:%s' % (image, version_of(settings, kind_name))


def source(settings, kind_name):
    """Which variables chose a kind's image, for error messages."""
    kind = topo.kind(kind_name)
    image = settings['images'][kind.image]
    if is_pinned(image):
        return 'tidb_images.%s' % kind.image
    if kind.config_key and (settings.get('component_versions') or {}).get(kind.config_key):
        return 'tidb_images.%s with component_versions.%s' % (kind.image, kind.config_key)
    return 'tidb_images.%s with tidb_version' % kind.image
