# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Image references from tidb_images, tidb_version and component_versions (module_utils/_images.py)."""

from __future__ import annotations

import pytest

from ansible_collections.tidbops.cluster.plugins.module_utils import _images

REPOS = {key: 'registry.example.invalid/%s' % key for key in ('pd', 'tikv', 'tidb', 'tiflash', 'ticdc', 'tici', 'minio')}


def settings(**extra):
    return dict({'images': dict(REPOS), 'version': 'v9.0.0', 'component_versions': {}}, **extra)


@pytest.mark.parametrize('reference, pinned', [
    ('pingcap/pd', False),
    ('localhost:5000/pingcap/pd', False),  # a registry port is not a tag
    ('pingcap/pd:v8.5.0', True),
    ('localhost:5000/pingcap/pd:v8.5.0', True),
    ('pingcap/pd@sha256:' + 'a' * 64, True),
])
def test_a_tag_or_a_digest_pins_a_reference(reference, pinned):
    assert _images.is_pinned(reference) is pinned


def test_every_kind_takes_tidb_version():
    refs = dict((kind, _images.reference(settings(), kind)) for kind in ('pd', 'tikv', 'tidb', 'tiflash', 'ticdc', 'tici_meta', 'minio'))
    assert refs['pd'] == 'registry.example.invalid/pd:v9.0.0'
    assert refs['tici_meta'] == 'registry.example.invalid/tici:v9.0.0'
    assert refs['minio'] == 'registry.example.invalid/minio:v9.0.0'
    assert _images.source(settings(), 'tikv') == 'tidb_images.tikv with tidb_version'


def test_component_versions_use_tiup_keys_and_win():
    chosen = settings(component_versions={'cdc': 'v9.0.1', 'tici_worker': 'w2'})
    assert _images.reference(chosen, 'ticdc') == 'registry.example.invalid/ticdc:v9.0.1'
    assert _images.reference(chosen, 'tici_worker') == 'registry.example.invalid/tici:w2'
    assert _images.reference(chosen, 'tici_meta') == 'registry.example.invalid/tici:v9.0.0'
    assert _images.source(chosen, 'ticdc') == 'tidb_images.ticdc with component_versions.cdc'


def test_the_feature_fts_build_set_takes_master_where_there_is_no_such_build():
    chosen = settings(version='feature-fts')
    assert _images.reference(chosen, 'tidb').endswith('/tidb:feature-fts')
    assert _images.reference(chosen, 'tiflash').endswith('/tiflash:feature-fts')
    for kind in ('pd', 'tikv', 'ticdc', 'tici_meta', 'tici_worker'):
        assert _images.reference(chosen, kind).endswith(':master'), kind


def test_a_pinned_entry_ignores_the_versions():
    digest = 'quay.io/minio/minio@sha256:' + 'b' * 64
    chosen = settings(images=dict(REPOS, minio=digest, pd='pingcap/pd:v8.5.0'), component_versions={'pd': 'v9'})
    assert _images.reference(chosen, 'minio') == digest
    assert _images.reference(chosen, 'pd') == 'pingcap/pd:v8.5.0'
    assert _images.source(chosen, 'pd') == 'tidb_images.pd'


@pytest.mark.parametrize('extra, expected', [
    ({'version': 'v9.0.0 beta'}, "tidb_version must be an image tag"),
    ({'version': '-v9'}, "tidb_version must be an image tag"),
    ({'version': 'x' * 129}, "tidb_version must be an image tag"),
    ({'component_versions': {'ticdc': 'v9'}}, "component_versions.ticdc: unknown component; expected one of cdc, pd,"),
    ({'component_versions': {'tikv': 'v9/x'}}, "component_versions.tikv must be an image tag, got 'v9/x'"),
    ({'component_versions': ['pd']}, "component_versions must map components"),
])
def test_bad_versions_are_named(extra, expected):
    problems = _images.version_problems(settings(**extra))
    assert any(expected in problem for problem in problems), problems


def test_good_versions_have_no_problem():
    assert _images.version_problems(settings(version='v8.5.0-alpha.1_x', component_versions={'pd': 'nightly', 'tikv': ''})) == []
