# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""The container backend's image IDs and plan (plugins/filter/container.py)."""

from __future__ import annotations

from ansible_collections.tidbops.cluster.plugins.filter.container import container_listing, container_plan, container_plans, image_ids, tls_switched

SPEC = {'hash': 'h1', 'image': 'localhost/tidbsim:0.1.0'}


def running(image_id='sha256:aaa', hash_='h1', running_=True):
    return {'exists': True, 'running': running_, 'image_id': image_id.split(':', 1)[-1], 'labels': {'tidbops.spec-hash': hash_}}


def test_docker_and_podman_listings_give_the_image_id_without_prefix():
    docker = [{'Names': ['/c-pd0'], 'State': 'running', 'Image': 'localhost/tidbsim:0.1.0', 'ImageID': 'sha256:abc',
               'Labels': {'tidbops.cluster': 'c'}}]
    podman = [{'Name': 'c-pd0', 'State': {'Running': True, 'Status': 'running'}, 'ImageName': 'localhost/tidbsim:0.1.0',
               'Image': 'abc', 'Config': {'Labels': {'tidbops.cluster': 'c'}}}]
    assert container_listing(docker, 'docker', 'c')['c-pd0']['image_id'] == 'abc'
    assert container_listing(podman, 'podman', 'c')['c-pd0']['image_id'] == 'abc'


def test_image_ids_match_tags_digests_and_the_names_engines_rewrite():
    digest = 'quay.io/minio/minio@sha256:' + 'd' * 64
    images = [
        {'Id': 'sha256:111', 'RepoTags': ['localhost/tidbsim:0.1.0'], 'RepoDigests': []},
        {'Id': '222', 'RepoTags': ['docker.io/pingcap/pd:v9'], 'RepoDigests': []},  # Podman keeps docker.io/
        {'Id': 'sha256:333', 'RepoTags': ['busybox:1'], 'RepoDigests': []},  # Docker drops library/
        {'Id': 'sha256:444', 'RepoTags': [], 'RepoDigests': [digest]},
    ]
    found = image_ids(images, ['localhost/tidbsim:0.1.0', 'pingcap/pd:v9', 'docker.io/library/busybox:1', digest, 'x/missing:1'])
    assert found == {'localhost/tidbsim:0.1.0': '111', 'pingcap/pd:v9': '222', 'docker.io/library/busybox:1': '333', digest: '444'}


def test_the_plan_compares_image_ids():
    assert container_plan(SPEC, None) == 'create'
    assert container_plan(SPEC, running(), False, 'sha256:aaa') == 'none'
    # The tag now resolves to another image (a new build pulled): replace, through the rolling path.
    assert container_plan(SPEC, running(), False, 'sha256:bbb') == 'update'
    assert container_plan(SPEC, running(hash_='h0'), False, 'sha256:aaa') == 'update'
    assert container_plan(SPEC, running(running_=False), False, 'sha256:aaa') == 'update'
    assert container_plan(SPEC, running(), True, 'sha256:aaa') == 'restart'
    # Unknown (check mode before a pull): the spec hash decides alone.
    assert container_plan(SPEC, running(), False, '') == 'none'


def test_the_plans_of_an_engine_host_match_files_by_position_and_images_by_reference():
    specs = {'pd0': dict(SPEC, name='c-pd0'), 'tikv0': dict(SPEC, name='c-tikv0'), 'tidb0': dict(SPEC, name='c-tidb0'),
             'tiflash0': dict(SPEC, name='c-tiflash0')}
    state = {'c-pd0': running(), 'c-tikv0': running(), 'c-tidb0': running(running_=False)}
    plain = {'directories': [{'path': '/p', 'changed': False}, {'path': '/k', 'changed': True}, {'path': '/d', 'changed': False}]}
    secret = {'skipped': True, 'changed': False}  # no secret files: a skipped run
    plans = container_plans(specs, state, ['pd0', 'tikv0', 'tidb0', 'tiflash0'], [plain, secret], {SPEC['image']: 'sha256:aaa'})
    assert plans == {
        'pd0': {'plan': 'none', 'running': True, 'created': True},
        'tikv0': {'plan': 'restart', 'running': True, 'created': True},  # its file was rendered again
        'tidb0': {'plan': 'update', 'running': False, 'created': True},
        'tiflash0': {'plan': 'create', 'running': False, 'created': False},
    }
    # A changed secret file counts as much as a plain one; the image ID decides too.
    secret = {'directories': [{'changed': True}, {'changed': False}, {'changed': False}, {'changed': False}]}
    plans = container_plans(specs, state, ['pd0', 'tikv0'], [plain, secret], {SPEC['image']: 'sha256:bbb'})
    assert plans['pd0']['plan'] == 'update' and plans['tikv0']['plan'] == 'update'
    assert container_plans(specs, state, ['pd0'], [plain, secret], {})['pd0']['plan'] == 'restart'


def test_tls_switched_names_containers_made_with_the_other_setting():
    specs = dict((host, {'name': 'c-' + host, 'labels': {'tidbops.tls': 'on'}}) for host in ('pd0', 'tikv0', 'tidb0', 'new0'))
    state = {'c-pd0': {'exists': True, 'labels': {'tidbops.tls': 'on'}},
             'c-tikv0': {'exists': True, 'labels': {'tidbops.tls': 'off'}},
             'c-tidb0': {'exists': True, 'labels': {}}}  # made before the label: without TLS
    assert tls_switched(specs, state, ['pd0', 'tikv0', 'tidb0', 'new0']) == ['tikv0', 'tidb0']
    for spec in specs.values():
        spec['labels']['tidbops.tls'] = 'off'
    assert tls_switched(specs, state, ['pd0', 'tikv0', 'tidb0', 'new0']) == ['pd0']
