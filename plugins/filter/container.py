# -*- coding: utf-8 -*-
# Copyright: tidbops.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the container backend (roles/_container): from the cluster model's process specs to
container specs, the files an engine host renders, the engine's listing, and each container's plan.

* ``container_specs(cluster, settings)``: {instance: container spec} for every deployed instance;
  a spec is the process spec (module_utils/_process.py) plus the container's name, labels, data
  mount, network and limits, and ``hash``, a digest of all of it (file contents included) that the
  container carries as a label: a different digest means the container no longer matches its spec.
  The digest is keyed with the cluster's digest key (the model's ``digest_key``), so the label tells
  a reader of the engine's metadata nothing about the secrets in the files.
* ``container_command(spec, pd_members)``: the command a container is created with, PD's first-start
  flags (``--initial-cluster`` or ``--join``, by what PD lists) included; they stay out of ``hash``.
* ``container_files(specs, names, secret)``: the ``directories`` of one tidbops.cluster.config_files
  run that writes the plain (or the secret) files of those instances.
* ``container_listing(listing, backend, cluster)``: {container name: {exists, running, status, image,
  image_id, labels}} from community.docker.docker_host_info or containers.podman.podman_container_info.
* ``image_ids(images, references)``: {reference: image ID} of the references an image listing
  (community.docker.docker_image_info, containers.podman.podman_image_info) holds.
* ``tls_switched(specs, state, names)``: the instances whose container runs with the other TLS
  setting (``tidbops.tls`` label), which cannot be switched one instance at a time.
* ``container_plan(spec, info, files_changed, image_id)``: create, update, restart or none. The image
  counts by its ID: a container is replaced when the ID its reference resolves to now differs from
  the one it runs (a new version, or a tag that was pulled again), never silently by the engine.
* ``container_plans(specs, state, names, files_results, image_ids)``: {instance: {plan, running,
  created}} of the instances among ``names`` that one engine host runs, in one call: what its
  instances need from the engine host's listing, its config_files runs and its image IDs.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tidbops.cluster.plugins.module_utils import _config, _process, _secrets

TLS_LABEL = 'tidbops.tls'
ABSENT = {'exists': False, 'running': False, 'status': 'absent', 'image': '', 'image_id': '', 'labels': {}}
HASH_LABEL = 'tidbops.spec-hash'


def _labels(cluster, instance):
    return {'tidbops.cluster': cluster['cluster_name'], 'tidbops.instance': instance['name'],
            'tidbops.component': instance['kind']}


def container_specs(cluster, settings):
    """{instance name: container spec} for every deployed instance of the cluster model."""
    name = 'container_specs'
    cluster = _config.plain(cluster, name)
    settings = _config.plain(settings, name)
    specs = {}
    for host, process in cluster.get('processes', {}).items():
        instance = cluster['instances'][host]
        bridge = cluster['network_mode'] == 'bridge'
        publish = instance.get('publish_host', '0.0.0.0')
        prefix = '' if publish in ('0.0.0.0', '') else ('[%s]:' % publish if ':' in publish else publish + ':')
        spec = {
            'backend': cluster['backend'],
            'name': '%s-%s' % (cluster['cluster_name'], host),
            'image': process['image'],
            'stop_grace': process['stop_grace'],
            'entrypoint': process['entrypoint'],
            'command': process['command'],
            'env': process['env'],
            'config_dir': '%s/%s/%s' % (settings['config_root'], cluster['cluster_name'], host),
            'files': process['files'],
            'data': {'source': instance['data_source'], 'target': process['data']},
            'network_mode': cluster['network_mode'],
            'network': cluster['cluster_name'],
            'published': ['%s%d:%d' % (prefix, port['port'], port['port']) for port in process['ports']] if bridge else [],
            'ulimits': ['%s=%s:%s' % (name, value, value) for name, value in sorted(settings['ulimits'].items())],
            'labels': _labels(cluster, instance),
        }
        # Rendered files are mounted read-only; a data_dir that is a host path is bind-mounted, a
        # volume name becomes a named volume (created with the container on Docker, labels included).
        spec['file_mounts'] = ['%s/%s:%s:ro' % (spec['config_dir'], f['name'], f['target']) for f in process['files']]
        spec['hash'] = _secrets.keyed_digest(cluster['digest_key'], spec)
        # Whether the instance talks TLS, outside the hash (containers made before this label keep
        # their hash): prepare.yml refuses to switch it on a running cluster (tls_switched).
        spec['labels'][TLS_LABEL] = 'on' if (cluster.get('tls') or {}).get('enabled') else 'off'
        # PD's first-start flags are outside the hash: which of them a member gets depends on the
        # cluster at the time it is created, and it ignores them once it has data (container_command).
        spec['membership'] = process.get('membership')
        specs[host] = spec
    return specs


def container_command(spec, pd_members=None):
    """The command a container is created with: its spec's, plus PD's first-start flags for the
    cluster as PD listed its members (``pd_members``; None or empty: a new cluster)."""
    if not isinstance(spec, dict) or 'command' not in spec:
        raise AnsibleFilterError('container_command: the input must be a spec from tidbops.cluster.container_specs')
    return list(spec['command']) + _process.membership_args(spec.get('membership'), pd_members)


def container_files(specs, names, secret=False):
    """The directories of one config_files run: each instance's plain files, or its secret ones."""
    key = 'secret_files' if secret else 'files'
    return [{'path': specs[host]['config_dir'],
             key: [{'name': f['name'], 'content': f['content']} for f in specs[host]['files'] if bool(f['secret']) == secret]}
            for host in names]


def container_listing(listing, backend, cluster):
    """{container name: state} of one engine host's containers of this cluster."""
    found = {}
    for container in listing or []:
        if backend == 'docker':
            labels = container.get('Labels') or {}
            names = [n.lstrip('/') for n in container.get('Names') or []]
            state = {'running': container.get('State') == 'running', 'status': container.get('State') or 'unknown',
                     'image': container.get('Image') or '', 'image_id': _id(container.get('ImageID'))}
        else:
            labels = (container.get('Config') or {}).get('Labels') or {}
            names = [container.get('Name')]
            status = container.get('State') or {}
            state = {'running': bool(status.get('Running')), 'status': status.get('Status') or 'unknown',
                     'image': container.get('ImageName') or '', 'image_id': _id(container.get('Image'))}
        if labels.get('tidbops.cluster') != cluster:
            continue
        for name in names:
            found[name] = dict(state, exists=True, labels=dict(labels))
    return found


def _id(value):
    """An image ID without its algorithm prefix (Docker writes sha256:..., Podman does not)."""
    return (value or '').split(':', 1)[-1] if value else ''


def _names(reference):
    """The forms an engine may list a reference under (Docker drops docker.io/ and library/; Podman keeps them)."""
    names = set([reference])
    short = reference
    for prefix in ('docker.io/', 'library/'):
        if short.startswith(prefix):
            short = short[len(prefix):]
    names.update([short, 'docker.io/' + short])
    if '/' not in short.split('@')[0].split(':')[0]:
        names.add('docker.io/library/' + short)
    return names


def image_ids(images, references):
    """{reference: image ID} for the references found among ``images`` (by tag, or by digest)."""
    found = {}
    for reference in references or []:
        names = _names(reference)
        for image in images or []:
            listed = set((image.get('RepoTags') or []) + (image.get('RepoDigests') or []) + (image.get('Names') or []))
            if names & listed:
                found[reference] = _id(image.get('Id'))
                break
    return found


def tls_switched(specs, state, names):
    """The instances among ``names`` whose container exists with the other TLS setting than their
    spec's (a container without the label predates it and runs without TLS)."""
    switched = []
    for host in names or []:
        spec = specs.get(host)
        info = (state or {}).get(spec['name']) if spec else None
        if info and info.get('exists') and (info.get('labels') or {}).get(TLS_LABEL, 'off') != spec['labels'][TLS_LABEL]:
            switched.append(host)
    return switched


def container_plan(spec, info, files_changed=False, image_id=None):
    """create (none yet), update (it differs from its spec, runs another image ID, or is not running),
    restart (it matches, but a mounted file had to be rendered again) or none."""
    if not isinstance(spec, dict) or 'hash' not in spec:
        raise AnsibleFilterError('container_plan: the input must be a spec from tidbops.cluster.container_specs')
    info = info or ABSENT
    if not info.get('exists'):
        return 'create'
    if (info.get('labels') or {}).get(HASH_LABEL) != spec['hash'] or not info.get('running'):
        return 'update'
    if image_id and info.get('image_id') and _id(image_id) != info['image_id']:
        return 'update'
    return 'restart' if files_changed else 'none'


def container_plans(specs, state, names, files_results=(), ids=None):
    """Each instance's plan (container_plan), whether its container runs now and whether it was ever
    created. ``files_results`` are the registered config_files runs of the engine host (plain, then
    secret; a skipped run has no ``directories``); their directories are in the order of ``names``,
    and they are matched by position, never by path (a secret path would be masked)."""
    changed = [False] * len(names or [])
    for result in files_results or ():
        for position, directory in enumerate((result or {}).get('directories') or []):
            if position < len(changed):
                changed[position] = changed[position] or bool(directory.get('changed'))
    plans = {}
    for position, host in enumerate(names or []):
        spec = specs[host]
        info = (state or {}).get(spec['name']) or ABSENT
        plans[host] = {'plan': container_plan(spec, info, changed[position], (ids or {}).get(spec['image'], '')),
                       'running': bool(info.get('running')), 'created': bool(info.get('exists'))}
    return plans


class FilterModule:
    """Container backend filters."""

    def filters(self):
        return {'container_specs': container_specs, 'container_command': container_command, 'container_files': container_files,
                'container_listing': container_listing, 'container_plan': container_plan, 'image_ids': image_ids,
                'container_plans': container_plans, 'tls_switched': tls_switched}
