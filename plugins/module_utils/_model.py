# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""The cluster model: what the cluster is, built once per run from the inventory.

``build(settings, inventory)`` turns the cluster-wide settings and the inventory hosts into one
plain dict that every play, backend and plugin reads:

* ``instances``: every instance with its kind, ports and three addresses: where its processes
  listen (``listen_host``), what other instances dial (``advertise_host``) and what the controller
  dials (``access_host``, through ``transport``);
* the values components hand each other: PD endpoints, the initial PD cluster, TiDB addresses, the
  S3 settings with their defaults, the changefeed TiCI reads;
* ``gates``: the arguments of each kind's readiness gate (tidbops.cluster.component_ready);
* ``processes``: each instance's process spec (_process), which both backends run;
* ``tls``: TLS between components (``enabled``; when on, the controller's files and the certificate
  ``plan`` that roles/_common tasks/tls.yml makes or checks, and whether their PEM ``material`` was
  given, which the process specs need);
* ``digest_key``: the key of the digests a spec is compared by (_secrets.keyed_digest), which the
  engine's metadata and the Kubernetes API show;
* ``minio_user``: the MinIO user TiCI's S3 clients get, when the cluster's MinIO makes one (from the
  controller with tidbops.cluster.minio_user at ``endpoint``; in the bucket Job where that is None);
* ``tici_account``: the TiDB account TiCI meta uses, which the tici role creates (least privilege),
  and ``tidb_sql``: where the controller speaks SQL to TiDB;
* ``problems``: every rule the inventory breaks, all at once, and ``warnings``.

Addresses depend on where instances run (``Addressing``): on the engine host's network (host
mode, as TiUP runs several instances on one host), on a user bridge network of one engine host
(container names), or as pods of StatefulSets (stable pod DNS names). Everything else is the same
for every backend.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.tidbops.cluster.plugins.module_utils import _config
from ansible_collections.tidbops.cluster.plugins.module_utils import _images
from ansible_collections.tidbops.cluster.plugins.module_utils import _process
from ansible_collections.tidbops.cluster.plugins.module_utils import _secrets
from ansible_collections.tidbops.cluster.plugins.module_utils import _tls
from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo

DEFAULT_S3 = {'bucket': 'ticidefaultbucket', 'prefix': 'tici_default_prefix', 'region': 'us-east-1', 'use_path_style': True}
# TiCI reads canal-json files under <prefix>/cdc; date_separator must be "none" in the changefeed
# config itself: the URI parameter alone left "day" (kolafish/jsm-query-testing, TiCDC v8.5.6-release.3).
CHANGEFEED_REPLICA_CONFIG = {'sink': {'protocol': 'canal-json', 'date_separator': 'none'}}
# TiCDC changefeed ids (pingcap/ticdc pkg/common/types.go): letters and digits in hyphen-joined groups.
_CHANGEFEED_ID = re.compile(r'^[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*$')
_PD_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
# A TiDB user name as this collection creates it: MySQL allows 32 characters (pingcap/tidb
# pkg/parser/mysql/const.go UserNameMaxLength); quotes and '@' are kept out of the SQL it runs.
_TIDB_USER = re.compile(r'^[A-Za-z0-9_.-]{1,32}$')
_DNS1123_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
_VOLUME_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
UNSPECIFIED = ('0.0.0.0', '::', '')
_QUANTITY = re.compile(r'^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eEinumkKMGTP]*[-+]?[0-9]*)$')
_QUANTITY_SUFFIX = re.compile(r'^(|[numkMGTPE]|[KMGTPE]i|[eE][-+]?[0-9]+)$')


class Addressing(object):
    """Where instances listen, what they advertise and how the controller reaches them."""

    transport = {}
    # Whether a kind's instances may use different ports (not when pods share one template).
    uniform_ports = False
    # Whether the controller can talk S3 to the cluster's MinIO (the bucket is made from there), and
    # the MySQL protocol to TiDB (TiCI's account is made from there).
    controller_reaches_s3 = True
    controller_reaches_sql = True

    def __init__(self, settings):
        self.settings = settings

    def engine_host(self, host, host_vars):
        return host_vars.get('ansible_host') or host

    def instance(self, kind, host, host_vars, index):
        """{listen_host, advertise_host, access_host, engine_host} of one instance."""
        raise NotImplementedError

    def peers(self, kind, instances, port):
        """The addresses (host:port) other instances use to reach a kind: every instance's."""
        return [_host_port(instance['advertise_host'], instance['ports'][port]) for instance in instances]


class HostNetwork(Addressing):
    """Every instance in its engine host's network, on its own ports (TiUP on one or many hosts)."""

    def instance(self, kind, host, host_vars, index):
        engine = self.engine_host(host, host_vars)
        advertise = host_vars.get('advertise_host') or engine
        listen = host_vars.get('listen_host') or _default_listen_host(advertise)
        return {'engine_host': engine, 'listen_host': listen, 'advertise_host': advertise, 'access_host': advertise,
                'listen_defaulted': not host_vars.get('listen_host')}


def _default_listen_host(advertise):
    """Where an instance listens unless listen_host says: the address it advertises, so that it is
    reachable where it must be and nowhere else (TiUP binds 0.0.0.0 unless listen_host is set).
    Only an IP address (or localhost) is taken: PD's embedded etcd and TiFlash bind IP addresses only
    (see _pd_problems), and a name may resolve otherwise on the engine host. A name leaves all
    addresses, with a warning (_listen_warnings)."""
    return advertise if advertise == 'localhost' or _is_ip(advertise) else '0.0.0.0'


class BridgeNetwork(Addressing):
    """Every container on one user network of its engine host: it listens on its own interfaces,
    other containers dial its name, and the controller dials the ports published on the engine host
    (at ``listen_host``, or the engine host's address when that is unspecified)."""

    def instance(self, kind, host, host_vars, index):
        engine = self.engine_host(host, host_vars)
        publish = host_vars.get('listen_host') or '0.0.0.0'
        return {'engine_host': engine, 'listen_host': '0.0.0.0', 'publish_host': publish,
                'advertise_host': container_name(self.settings, host),
                'access_host': engine if publish in UNSPECIFIED else publish}


class Kubernetes(Addressing):
    """Pods of one StatefulSet per kind. A pod advertises its stable DNS name behind the headless
    peer Service; the controller reaches pods and Services through the API server's proxy, where
    ``<pod>.<service>`` targets a pod and ``<service>`` a Service."""

    uniform_ports = True
    controller_reaches_s3 = False
    controller_reaches_sql = False

    def __init__(self, settings):
        Addressing.__init__(self, settings)
        backend = settings.get('backend_settings') or {}
        self.namespace = backend.get('namespace')
        proxy = {'namespace': self.namespace}
        for key in ('kubeconfig', 'context'):
            if backend.get(key):
                proxy[key] = backend[key]
        if backend.get('transport') == 'in_cluster':
            # The modules then run in the cluster as Jobs (plugin_utils/_in_cluster.py), from the
            # execution environment of tidb_k8s_runner_image.
            proxy['in_cluster'] = {
                'image': backend.get('runner_image'), 'python': backend.get('runner_python'),
                'collections_path': backend.get('runner_collections_path'), 'image_pull_policy': backend.get('image_pull_policy'),
                'job_prefix': '%s-run' % settings.get('cluster_name'), 'pod_security_context': backend.get('pod_security_context') or {},
                'labels': {'app.kubernetes.io/name': 'tidb-cluster', 'app.kubernetes.io/instance': settings.get('cluster_name'),
                           'app.kubernetes.io/managed-by': 'tidbops'},
            }
        self.transport = {'kube_proxy': proxy}

    def engine_host(self, host, host_vars):
        return None

    def instance(self, kind, host, host_vars, index):
        pod = pod_name(self.settings, kind, index)
        return {'engine_host': None, 'listen_host': '0.0.0.0', 'pod': pod, 'ordinal': index,
                'advertise_host': '%s.%s.%s.svc' % (pod, peer_service(self.settings, kind), self.namespace),
                'access_host': '%s.%s' % (pod, peer_service(self.settings, kind))}

    def peers(self, kind, instances, port):
        # Components reach a group through its client Service, as tidb-operator's pods do.
        return ['%s:%d' % (object_name(self.settings, kind), instances[0]['ports'][port])] if instances else []


def container_name(settings, host):
    return '%s-%s' % (settings['cluster_name'], host)


def object_name(settings, kind):
    """The Kubernetes object name of a kind's StatefulSet and client Service: <cluster>-<kind>."""
    return '%s-%s' % (settings['cluster_name'], kind.replace('_', '-'))


def peer_service(settings, kind):
    return object_name(settings, kind) + '-peer'


def pod_name(settings, kind, index):
    return '%s-%d' % (object_name(settings, kind), index)


def addressing(settings):
    if settings.get('backend') == 'kubernetes':
        return Kubernetes(settings)
    if settings.get('network_mode') == 'bridge':
        return BridgeNetwork(settings)
    return HostNetwork(settings)


_host_port = _process.host_port


def _url(host, port, scheme='http'):
    return '%s://%s' % (scheme, _host_port(host, port))


# Kinds that speak TLS when tidb_tls_enabled is on (operations.md section 6: TiUP configures these).
TLS_KINDS = tuple(_tls.ROLES)


def _scheme(settings, kind):
    return 'https' if (settings.get('tls') or {}).get('enabled') and kind in TLS_KINDS else 'http'


def _is_port(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _type_name(value):
    return 'null' if value is None else type(value).__name__


# ---------------------------------------------------------------------------------------------
# Instances

def _hosts_of(inventory, kind):
    return list((inventory.get('groups') or {}).get(kind.group) or [])


def _instance(settings, address, kind, host, host_vars, index, problems):
    ports, used = {}, {}
    for port in kind.ports:
        if port.name in topo.TICI_PORTS and not settings['tici_enabled']:
            continue
        variable = port.alias if port.alias and port.alias in host_vars else port.name
        value = host_vars.get(variable, port.default)
        ports[port.name], used[port.name] = value, variable
    bad = ['%s: %s=%s' % (host, used[name], value) for name, value in ports.items() if not _is_port(value)]
    if bad:
        problems.append('invalid ports (expected integers 1-65535): ' + '; '.join(bad))
    record = {'name': host, 'kind': kind.name, 'index': index, 'ports': ports, 'port_vars': used,
              'deployed': settings['tici_enabled'] or not kind.tici}
    record.update(address.instance(kind.name, host, host_vars, index))
    for key in ('config', 'learner_config'):
        value = host_vars.get(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            problems.append('%s must be a mapping of settings (host %s in %s), got %s' % (key, host, kind.group, _type_name(value)))
            value = {}
        record[key] = value
    if kind.name == 'pd':
        record['pd_name'] = record.get('pod') or host_vars.get('pd_name') or host_vars.get('name') or host
    data_dir = host_vars.get('data_dir') or ''
    if not isinstance(data_dir, str) or (data_dir and not data_dir.startswith('/') and not _VOLUME_NAME.match(data_dir)):
        problems.append('data_dir (host %s) must be an absolute host path or a volume name, got %r' % (host, data_dir))
        data_dir = ''
    record['data_source'] = data_dir or '%s-data' % container_name(settings, host)
    if _is_port(ports[kind.http_port]):
        record['url'] = _url(record['access_host'], ports[kind.http_port], _scheme(settings, kind.name))
    if _is_port(ports[kind.ports[0].name]):
        record['addr'] = _host_port(record['advertise_host'], ports[kind.ports[0].name])
    return record


def _collect(settings, address, inventory, problems):
    instances, members = {}, {}
    for kind in topo.KINDS:
        members[kind.name] = []
        for host in _hosts_of(inventory, kind):
            if host in instances:  # in two groups: the shape rule reports it
                continue
            host_vars = (inventory['hosts'].get(host) or {}).get('vars') or {}
            instances[host] = _instance(settings, address, kind, host, host_vars, len(members[kind.name]), problems)
            members[kind.name].append(host)
    return instances, members


# ---------------------------------------------------------------------------------------------
# Rules (every message names the variable or group and what was expected)

def _shape_problems(settings, inventory):
    problems = []
    for host in inventory.get('play_hosts') or []:
        mine = [group for group in (inventory['hosts'].get(host) or {}).get('group_names') or [] if group in topo.GROUPS]
        if len(mine) != 1:
            problems.append('inventory host %s is in %s: every instance is one inventory host in exactly one of %s '
                            '(TiUP vocabulary)' % (host, ', '.join(mine) or 'none of them', ', '.join(topo.GROUPS)))
    missing = sorted(set(host for kind in topo.KINDS for host in _hosts_of(inventory, kind))
                     - set(inventory.get('play_hosts') or []))
    if missing:
        problems.append("every instance must be in the play, because each one's addresses are derived from the whole "
                        "inventory; --limit left out %s. Run without --limit (unchanged instances are left alone)."
                        % ', '.join(missing))
    if settings.get('backend') not in topo.BACKENDS:
        problems.append('tidb_backend must be one of %s (got %s)' % (', '.join(topo.BACKENDS), settings.get('backend')))
    if settings.get('network_mode') not in topo.NETWORK_MODES:
        problems.append('tidb_network_mode must be one of %s (got %s)' % (', '.join(topo.NETWORK_MODES), settings.get('network_mode')))
    return problems


def _group_problems(settings, members):
    problems = []
    if not members['pd'] or not members['tikv']:
        problems.append('pd_servers and tikv_servers must each hold at least one instance (got %d PD, %d TiKV)'
                        % (len(members['pd']), len(members['tikv'])))
    if settings['tici_enabled']:
        if not (members['ticdc'] and members['tici_meta'] and members['tici_worker']):
            problems.append('tici_enabled is true, so cdc_servers (TiCI needs TiCDC, as in TiUP), tici_meta_servers and '
                            'tici_worker_servers must each hold at least one instance (got %d, %d, %d); set '
                            'tici_enabled: false for a plain TiDB cluster'
                            % (len(members['ticdc']), len(members['tici_meta']), len(members['tici_worker'])))
        if len(members['minio']) > 1:
            problems.append('minio_servers holds %d instances; this collection runs MinIO as one single-drive server '
                            '(for more, point tici_s3.endpoint at an S3 service you run yourself)' % len(members['minio']))
    return problems


def _image_problems(settings, deployed_kinds):
    images = settings.get('images')
    needed = []
    for name in deployed_kinds:
        key = topo.kind(name).image
        if key not in needed:
            needed.append(key)
    problems = _images.version_problems(settings)
    if not isinstance(images, dict):
        return problems + ['tidb_images must map each component to an image reference string; missing or not a string: '
                           + ', '.join(needed)]
    bad = [key for key in needed if not isinstance(images.get(key), str) or not images.get(key)]
    if bad:
        problems.append('tidb_images must map each component to an image reference string; missing or not a string: '
                        + ', '.join(bad))
    return problems


def _restart_kinds(settings, deployed_kinds, problems):
    """tidb_restart_components (kind names, or TiUP's server_configs keys such as cdc) as kind names."""
    wanted = settings.get('restart_components')
    if wanted in (None, '', []):
        return list(deployed_kinds)
    aliases = dict((kind.config_key, kind.name) for kind in topo.KINDS if kind.config_key)
    if not isinstance(wanted, list) or not all(isinstance(item, str) for item in wanted):
        problems.append('tidb_restart_components must be a list of components (%s)' % ', '.join(topo.NAMES))
        return []
    kinds = []
    for item in wanted:
        name = aliases.get(item, item)
        if name not in topo.BY_NAME:
            problems.append('tidb_restart_components: unknown component %r; expected some of %s' % (item, ', '.join(topo.NAMES)))
        elif name not in deployed_kinds:
            problems.append('tidb_restart_components: %s is not deployed in this cluster' % item)
        elif name not in kinds:
            kinds.append(name)
    return [name for name in topo.UPDATE_ORDER if name in kinds]


def _address_problems(settings, address, instances):
    problems = []
    deployed = [record for record in instances.values() if record['deployed']]
    unroutable = [record['name'] for record in deployed if record['advertise_host'] in UNSPECIFIED]
    if unroutable:
        problems.append('advertise_host must be an address other instances can dial, not 0.0.0.0 or :: (instances: %s)'
                        % ', '.join(unroutable))
    # Ports must not collide where they share a network: an engine host (host mode, or the ports
    # bridge mode publishes there), or one instance's own ports (a pod).
    owner, clashes = {}, []
    for record in deployed:
        scope = record['engine_host'] if record['engine_host'] is not None else record['name']
        for name, port in record['ports'].items():
            if not _is_port(port):
                continue
            key = '%s:%s' % (scope, port)
            here = '%s.%s' % (record['name'], record['port_vars'][name])
            if key in owner:
                clashes.append('%s is %s and %s' % (key, owner[key], here))
            else:
                owner[key] = here
    if clashes:
        problems.append('port collision on an engine host: ' + '; '.join(clashes))
    if isinstance(address, BridgeNetwork):
        engines = sorted(set(record['engine_host'] for record in deployed))
        if len(engines) > 1:
            problems.append('tidb_network_mode bridge joins every container to one user network, which lives on one engine '
                            'host; the instances are on %s: use host networking across several engine hosts' % ', '.join(engines))
    stores = {}
    for record in deployed:
        if topo.kind(record['kind']).store and record.get('addr'):
            stores.setdefault(record['addr'], []).append(record['name'])
    duplicated = ['%s (%s)' % (addr, ', '.join(names)) for addr, names in stores.items() if len(names) > 1]
    if duplicated:
        problems.append('advertise_host:port must differ between tikv_servers and tiflash_servers instances (PD keys stores '
                        'by address): ' + '; '.join(duplicated))
    return problems


def _explicit_advertise_problems(address, inventory, members):
    if not isinstance(address, BridgeNetwork):
        return []
    hosts = [host for names in members.values() for host in names
             if 'advertise_host' in ((inventory['hosts'].get(host) or {}).get('vars') or {})]
    if hosts:
        return ['advertise_host is set for %s, but with tidb_network_mode bridge every instance advertises its container '
                'name on the cluster network; remove it' % ', '.join(hosts)]
    return []


def _uniform_port_problems(address, instances, members):
    if not address.uniform_ports:
        return []
    problems = []
    for kind, names in members.items():
        first = instances[names[0]] if names else None
        for name in names[1:]:
            for port, value in instances[name]['ports'].items():
                if value != first['ports'][port]:
                    problems.append('%s must be the same on every host of %s with tidb_backend=kubernetes (pods share one '
                                    'template): %s has %s, %s has %s' % (instances[name]['port_vars'][port],
                                                                         topo.kind(kind).group, first['name'],
                                                                         first['ports'][port], name, value))
    return problems


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _listen_warnings(instances):
    wide = sorted(record['name'] for record in instances.values()
                  if record['deployed'] and record.get('listen_defaulted') and record['listen_host'] in UNSPECIFIED)
    if not wide:
        return []
    return ['%s listen on all addresses: their advertise_host is a name, not an IP address, so it cannot be bound as it is; '
            'set listen_host to the address they should bind (or 0.0.0.0 to keep all and silence this)' % ', '.join(wide)]


def _pd_problems(instances, members):
    names = [instances[host]['pd_name'] for host in members['pd']]
    problems = []
    # PD's embedded etcd binds its client and peer URLs only at IP addresses or "localhost"
    # (etcd server/embed/config.go checkBindURLs: "expected IP in URL for binding").
    named = ['%s (%s)' % (host, instances[host]['listen_host']) for host in members['pd']
             if instances[host]['listen_host'] != 'localhost' and not _is_ip(instances[host]['listen_host'])]
    if named:
        problems.append('listen_host must be an IP address (or localhost) on pd_servers, because PD binds its client and '
                        'peer URLs there and its embedded etcd accepts only IP addresses: %s' % ', '.join(named))
    bad = [name for name in names if not isinstance(name, str) or not _PD_NAME.match(name)]
    duplicated = sorted(set(name for name in names if names.count(name) > 1))
    if bad or duplicated:
        problems.append("pd_name (TiUP: name) must be a unique PD member name of letters, digits, '.', '_' or '-' (got %s)"
                        % ', '.join(str(name) for name in bad + duplicated))
    if len(names) % 2 == 0 and names:
        return problems, ['pd_servers holds %d members; an even count tolerates no more failures than one fewer member. '
                          'Prefer an odd count (1, 3, 5).' % len(names)]
    return problems, []


def _server_config_problems(settings, instances, members):
    problems = []
    server_configs = settings.get('server_configs')
    if not isinstance(server_configs, dict):
        return ['server_configs must be a mapping of component name to settings, got %s' % _type_name(server_configs)]
    known = [kind.config_key for kind in topo.KINDS if kind.config_key] + list(topo.EXTRA_CONFIG_KEYS)
    for key in known:
        if server_configs.get(key) is not None and not isinstance(server_configs[key], dict):
            problems.append('server_configs.%s must be a mapping of settings, got %s' % (key, _type_name(server_configs[key])))
    tidb_stores = [(server_configs.get('tidb') or {}) if isinstance(server_configs.get('tidb'), dict) else {}]
    tidb_stores += [instances[host]['config'] for host in members['tidb']]
    if any(_config.merge_server_config(config).get('store', 'tikv') != 'tikv' for config in tidb_stores if isinstance(config, dict)):
        problems.append("server_configs.tidb.store / config.store must stay 'tikv': TiDB would otherwise run on a private mock store")
    return problems


def _tici_setting_problems(settings, members):
    problems = []
    if not settings['tici_enabled']:
        return problems
    user = settings.get('tici_tidb_user')
    if not isinstance(user, str) or not _TIDB_USER.match(user):
        problems.append("tici_tidb_user must be a TiDB user name of 1 to 32 letters, digits, '_', '.' or '-': the account TiCI "
                        "meta uses (got %r)" % (user,))
    password = settings.get('tici_tidb_password')
    if not isinstance(password, str):
        problems.append('tici_tidb_password must be a string (leave it unset to have one generated)')
    elif not password and settings.get('tici_tidb_allow_empty_password') is not True:
        problems.append("tici_tidb_password is empty: TiCI's TiDB account would take no password. Leave it unset to have "
                        "one generated (kept in tidb_state_dir), give one (vault it), or set "
                        "tici_tidb_allow_empty_password: true to accept an account anyone who reaches TiDB can use")
    if members['minio']:
        root_user, root_password = settings.get('minio_root_user'), settings.get('minio_root_password')
        if not (isinstance(root_user, str) and len(root_user) >= 3 and isinstance(root_password, str) and len(root_password) >= 8):
            problems.append('minio_root_user (at least 3 characters) and minio_root_password (at least 8 characters) must be '
                            'set when minio_servers is not empty; keep the password in a vault')
    changefeed_id = settings.get('changefeed_id')
    if not (isinstance(changefeed_id, str) and _CHANGEFEED_ID.match(changefeed_id) and len(changefeed_id) <= 128):
        problems.append('tici_changefeed_id must be letters and digits in groups joined by single hyphens, at most 128 '
                        'characters (TiCDC rejects underscores); got %s' % (changefeed_id,))
    interval = settings.get('cdc_flush_interval')
    if interval and not (isinstance(interval, str) and _config.GO_DURATION.match(interval)):
        problems.append("tici_cdc_flush_interval must be a duration such as '5s' or '500ms', or empty for TiCDC's default")
    return problems


def _tls_problems(settings):
    tls = settings.get('tls') or {}
    if not tls.get('enabled'):
        return []
    problems = []
    directory = tls.get('dir')
    if not isinstance(directory, str) or not directory.startswith('/'):
        problems.append('tidb_tls_dir must be an absolute path on the controller (~ is expanded), got %r' % (directory,))
    if settings['tici_enabled']:
        # tici.md sections 4 and 13, operations.md section 6: neither TiUP (feature/fts tici_*.go) nor
        # tidb-operator (tici_member_manager.go passes --pd-addr only) gives TiCI any TLS setting, and
        # its TiCI source is not public. TiCI dials PD in clear text, which a PD with
        # security.cacert-path refuses, so such a cluster cannot work.
        problems.append('tidb_tls_enabled cannot be combined with tici_enabled: TiCI has no TLS settings that TiUP, '
                        'tidb-operator or any public source shows, and it dials PD in clear text, which PD refuses once '
                        'TLS is on. Set tici_enabled: false for a TLS cluster, or keep TLS off')
    if settings.get('backend') == 'kubernetes' and not (settings.get('backend_settings') or {}).get('render_dir'):
        # Rendering (tidb_k8s_render_dir) gates nothing, so it works: the certificates are Secrets.
        problems.append('tidb_tls_enabled works with tidb_backend kubernetes only to render manifests (tidb_k8s_render_dir) '
                        "for now: the gates reach pods through the API server's proxy, which presents no client "
                        'certificate, which PD requires once TLS is on')
    return problems


def _tls_names(settings, address, record):
    """Every name an instance is dialled by, for its certificate's SANs."""
    names = [record['advertise_host'], record['access_host']]
    if record.get('publish_host') not in (None,) + UNSPECIFIED:
        names.append(record['publish_host'])
    if isinstance(address, Kubernetes):
        service = object_name(settings, record['kind'])
        names += [service, '%s.%s' % (service, address.namespace), '%s.%s.svc' % (service, address.namespace)]
    return [name for name in names if name not in UNSPECIFIED]


def _tls_model(settings, address, instances, problems):
    """The model's ``tls``: {enabled: false}, or the controller's files and the certificate plan."""
    tls = settings.get('tls') or {}
    if not tls.get('enabled'):
        return {'enabled': False}
    needed = dict((name, {'kind': record['kind'], 'names': _tls_names(settings, address, record)})
                  for name, record in instances.items() if record['deployed'] and record['kind'] in TLS_KINDS)
    certificates = _tls.plan(tls['dir'], settings['cluster_name'], needed)
    material = tls.get('material')
    if material is not None:
        missing = [item['name'] for item in certificates
                   if not (material.get('certificates') or {}).get(item['name'], {}).get('cert')
                   or not material['certificates'][item['name']].get('key')]
        if missing or not material.get('ca'):
            problems.append('TLS files missing from tidb_tls_dir %s: %s'
                            % (tls['dir'], ', '.join((['ca.crt'] if not material.get('ca') else []) + missing)))
    return dict(_tls.paths(tls['dir']), enabled=True, certificates=certificates, ready=material is not None)


def _digest_key_problems(settings):
    key = settings.get('digest_key')
    if isinstance(key, str) and len(key) >= _secrets.DIGEST_KEY_MIN_LENGTH:
        return []
    return ['tidb_digest_key must be a string of at least %d characters (by default it is generated once and kept in '
            'tidb_state_dir/digest.key, mode 0600)' % _secrets.DIGEST_KEY_MIN_LENGTH]


def _backend_problems(settings, members):
    """The backend's own settings: those the model depends on, and (Kubernetes) those its objects need."""
    backend = settings.get('backend_settings') or {}
    problems = []
    if settings.get('backend') == 'kubernetes':
        namespace = backend.get('namespace')
        if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
            problems.append("tidb_k8s_namespace must be a DNS-1123 label (lower-case letters, digits and '-', starting and "
                            "ending with a letter or digit, at most 63 characters)")
        name = settings.get('cluster_name')
        if not isinstance(name, str) or len(name) > 40 or not _DNS1123_LABEL.match(name):
            problems.append('tidb_cluster_name must be a DNS-1123 label of at most 40 characters with tidb_backend=kubernetes '
                            '(it prefixes every object name)')
        problems += _kubernetes_problems(settings, backend, members)
    elif settings.get('backend') in topo.BACKENDS:
        ulimits = backend.get('ulimits')
        if not isinstance(ulimits, dict) or not all(_is_port_like(value) for value in ulimits.values()):
            problems.append('tidb_container_ulimits must map limit names to positive integers, e.g. {nofile: 1000000}')
    return problems


def _is_quantity(value):
    """A Kubernetes resource.Quantity (k8s.io/apimachinery pkg/api/resource/quantity.go): 100Gi, 500m, 1.5, 1e3."""
    match = _QUANTITY.match(str(value)) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    return bool(match) and _QUANTITY_SUFFIX.match(match.group(3)) is not None


def _kubernetes_problems(settings, backend, members):
    problems = []
    if backend.get('image_pull_policy') not in ('Always', 'IfNotPresent', 'Never'):
        problems.append('tidb_k8s_image_pull_policy must be one of Always, IfNotPresent, Never')
    storage = backend.get('storage') if isinstance(backend.get('storage'), dict) else {}
    resources = backend.get('resources') if isinstance(backend.get('resources'), dict) else {}
    if not isinstance(backend.get('storage'), dict):
        problems.append('tidb_k8s_storage must be a mapping of component to a PVC size')
    if storage.get('class_name') is not None and not isinstance(storage.get('class_name'), str):
        problems.append('tidb_k8s_storage.class_name must be a string or null')
    tici = settings['tici_enabled']
    for kind in topo.KINDS:
        if not members[kind.name] or (kind.tici and not tici):
            continue
        if kind.stateful and not _is_quantity(storage.get(kind.name)):
            problems.append('tidb_k8s_storage.%s must be a Kubernetes quantity such as 10Gi or 500M' % kind.name)
        value = resources.get(kind.name) or {}
        if not isinstance(value, dict):
            problems.append('tidb_k8s_resources.%s must be a mapping with requests and limits' % kind.name)
            continue
        for part in ('requests', 'limits'):
            amounts = value.get(part) or {}
            if not isinstance(amounts, dict):
                problems.append('tidb_k8s_resources.%s.%s must be a mapping' % (kind.name, part))
                continue
            problems += ['tidb_k8s_resources.%s.%s.%s must be a Kubernetes quantity such as 500m or 2Gi' % (kind.name, part, key)
                         for key, amount in amounts.items() if not _is_quantity(amount)]
    if tici and members['minio'] and not (isinstance(backend.get('s3_client_image'), str) and backend['s3_client_image']):
        problems.append('tidb_k8s_s3_client_image must be a non-empty image reference (the bucket Job runs it)')
    if members['tiflash'] and not _non_empty(backend.get('log_tailer_image')):
        problems.append("tidb_k8s_log_tailer_image must be a non-empty image reference (the sidecars that print TiFlash's "
                        "log files run it)")
    if not isinstance(backend.get('pod_security_context', {}), dict):
        problems.append('tidb_k8s_pod_security_context must be a mapping (a pod securityContext such as {fsGroup: 1000})')
    transport = backend.get('transport', 'proxy')
    if transport not in ('proxy', 'in_cluster'):
        problems.append('tidb_k8s_transport must be proxy or in_cluster')
    if transport == 'in_cluster' and not backend.get('render_dir') and not (
            _non_empty(backend.get('runner_image')) and _non_empty(backend.get('runner_python'))
            and _non_empty(backend.get('runner_collections_path'))):
        problems.append('tidb_k8s_transport=in_cluster runs the gates and the changefeed as Jobs: tidb_k8s_runner_image must '
                        'name an execution environment with this collection, and tidb_k8s_runner_python and '
                        'tidb_k8s_runner_collections_path must be non-empty')
    if tici and members['ticdc'] and backend.get('render_dir') and not _non_empty(backend.get('runner_image')):
        problems.append('tidb_k8s_runner_image must be a non-empty image reference to render a cluster with TiCI: the Job '
                        'that converges the TiCI changefeed runs ansible-playbook and this collection in it (build '
                        'execution-environment.yml)')
    sql_client_image = backend.get('sql_client_image')
    if tici and settings.get('tici_tidb_user') != 'root' and not (isinstance(sql_client_image, str) and sql_client_image):
        problems.append("tidb_k8s_sql_client_image must be a non-empty image reference (the Job that creates TiCI's TiDB "
                        "account runs it)")
    return problems


def _non_empty(value):
    return isinstance(value, str) and bool(value.strip())


def _is_port_like(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# ---------------------------------------------------------------------------------------------
# What components hand each other

def _s3(settings, address, instances, members, problems):
    """tici_s3 over its defaults; the endpoint defaults to the cluster's MinIO."""
    user = settings.get('tici_s3')
    if not isinstance(user, dict):
        problems.append('tici_s3 must be a mapping with keys %s, got %s' % (', '.join(_config.S3_KEYS), _type_name(user)))
        user = {}
    minio = [instances[host] for host in members['minio']]
    # The cluster's own MinIO gives TiCI a user of its own (minio_user): the controller makes it, or,
    # where it cannot reach MinIO (Kubernetes), the bucket Job does. Keys given in tici_s3 are used as
    # they are.
    keys_given = bool(user.get('access_key') or user.get('secret_key'))
    own_user = bool(minio) and not keys_given
    if own_user:
        defaults = dict(DEFAULT_S3, access_key=settings.get('minio_tici_user'), secret_key=settings.get('minio_tici_password'))
    else:
        defaults = dict(DEFAULT_S3, access_key=settings.get('minio_root_user'), secret_key=settings.get('minio_root_password'))
    controller_endpoint = None
    if minio and 'addr' in minio[0]:
        defaults['endpoint'] = 'http://' + address.peers('minio', minio, 'port')[0]
        if address.controller_reaches_s3:
            controller_endpoint = _url(minio[0]['access_host'], minio[0]['ports']['port'])
    s3 = dict(defaults)
    s3.update(dict((key, value) for key, value in user.items() if value is not None))
    if 'endpoint' in user and user['endpoint']:
        controller_endpoint = user['endpoint'] if address.controller_reaches_s3 else None
    hints = {'endpoint': 'it defaults to the first of minio_servers, and there is none',
             'access_key': 'it defaults to minio_tici_user, the user the MinIO role makes for TiCI' if own_user
             else 'it defaults to minio_root_user',
             'secret_key': 'it defaults to minio_tici_password' if own_user else 'it defaults to minio_root_password'}
    found = _config.s3_problems(s3, 'tici_s3', require=('endpoint', 'bucket', 'prefix', 'access_key', 'secret_key'), hints=hints)
    if own_user and not found:
        found += _minio_user_problems(settings, s3)
    if found:
        problems.extend(found)
        return None, None, None
    s3 = _config.s3_settings(s3, 'tici_s3')
    if own_user:
        s3_user = {'endpoint': controller_endpoint, 'root_user': settings.get('minio_root_user'),
                   'root_password': settings.get('minio_root_password'), 'access_key': s3['access_key'],
                   'secret_key': s3['secret_key'], 'bucket': s3['bucket'], 'policy_name': 'tidbops-tici-%s' % s3['bucket']}
        return s3, controller_endpoint, s3_user
    return s3, controller_endpoint, None


def _minio_user_problems(settings, s3):
    problems = []
    if len(str(s3['access_key'])) < 3 or s3['access_key'] == settings.get('minio_root_user'):
        problems.append('minio_tici_user must have 3 characters or more and differ from minio_root_user: it is the MinIO '
                        'user TiCI gets instead of the root credentials')
    if len(str(s3['secret_key'])) < 8:
        problems.append('minio_tici_password must have 8 characters or more (MinIO refuses shorter secret keys); leave it '
                        'unset to have one generated into tidb_state_dir')
    return problems


def _gates(settings, address, instances, members, pd_endpoint):
    """component_ready's arguments per kind, for the controller (access URLs, store addresses as advertised)."""
    gates = {}
    for kind in topo.KINDS:
        records = [instances[host] for host in members[kind.name]]
        if not records or not records[0]['deployed'] or not all('url' in r and 'addr' in r for r in records):
            continue
        gate = {'component': kind.name, 'endpoints': [record['url'] for record in records]}
        if kind.store:
            gate['store_addresses'] = [record['addr'] for record in records]
        if kind.store or kind.name == 'tici_meta':
            gate['pd_endpoint'] = pd_endpoint
        gates[kind.name] = gate
    return gates


def _cluster_service(address, settings, kind, instances, members):
    """URL of one instance of a kind for cluster-wide calls (the first one; its Service on Kubernetes)."""
    records = [instances[host] for host in members[kind]]
    if not records or 'url' not in records[0]:
        return None
    if isinstance(address, Kubernetes):
        return _url(object_name(settings, kind), records[0]['ports'][topo.kind(kind).http_port], _scheme(settings, kind))
    return records[0]['url']


def build(settings, inventory):
    """The cluster model (see the module docstring) from the settings and the inventory.

    ``settings``: backend, cluster_name, network_mode, images, version, component_versions,
    restart_components, server_configs, tici_enabled, tici_s3,
    minio_root_user, minio_root_password, minio_tici_user, minio_tici_password, tici_tidb_user, tici_tidb_password, changefeed_id,
    cdc_flush_interval, container_env, digest_key, tidb_root_password, tici_tidb_allow_empty_password,
    backend_settings (the backend role's own settings).
    ``inventory``: groups {group: [host]}, hosts {host: {group_names, vars}}, play_hosts.
    """
    settings = dict(settings)
    settings['tici_enabled'] = settings.get('tici_enabled', True) is not False
    problems = _shape_problems(settings, inventory)
    address = addressing(settings)
    instances, members = _collect(settings, address, inventory, problems)
    problems += _backend_problems(settings, members)
    deployed_kinds = [name for name in topo.NAMES if members[name] and (settings['tici_enabled'] or not topo.kind(name).tici)]
    problems += _group_problems(settings, members)
    problems += _image_problems(settings, deployed_kinds)
    problems += _address_problems(settings, address, instances)
    problems += _explicit_advertise_problems(address, inventory, members)
    problems += _uniform_port_problems(address, instances, members)
    pd_problems, warnings = _pd_problems(instances, members)
    warnings += _listen_warnings(instances)
    if settings['tici_enabled'] and settings.get('tici_tidb_user') == 'root':
        warnings.append('tici_tidb_user is root: TiCI meta logs in to TiDB with every privilege. Leave it at its default '
                        '(tici), an account this collection creates with privileges on database tici only')
    problems += pd_problems
    problems += _server_config_problems(settings, instances, members)
    problems += _tici_setting_problems(settings, members)
    problems += _digest_key_problems(settings)
    problems += _tls_problems(settings)
    restart_kinds = _restart_kinds(settings, deployed_kinds, problems)

    model = {
        'backend': settings.get('backend'),
        'backend_role': topo.BACKENDS.get(settings.get('backend')),
        'cluster_name': settings.get('cluster_name'),
        'network_mode': settings.get('network_mode'),
        'tici_enabled': settings['tici_enabled'],
        'kinds': dict((kind.name, _kind_info(kind)) for kind in topo.KINDS),
        'deployed_kinds': deployed_kinds,
        'update_order': [name for name in topo.UPDATE_ORDER if name in deployed_kinds],
        # A whole-cluster stop (playbooks/tls.yml) takes dependents first, as TiUP's StopCluster does.
        'stop_order': list(reversed(topo.start_order(deployed_kinds))),
        'restart_kinds': restart_kinds,
        'instances': instances,
        'members': members,
        'transport': dict(address.transport),
        # Render mode (tidb_k8s_render_dir) writes manifests and talks to no cluster: nothing to gate.
        'live': not (settings.get('backend') == 'kubernetes' and (settings.get('backend_settings') or {}).get('render_dir')),
        'digest_key': settings.get('digest_key'),
        'problems': problems,
        'warnings': warnings,
    }
    model['tls'] = _tls_model(settings, address, instances, problems) if not problems else {'enabled': False}
    if model['tls']['enabled']:
        # Every module that talks to the components (doc fragment connection) gets the client certificate.
        model['transport'].update(ca_cert=model['tls']['ca_cert'], client_cert=model['tls']['client_cert'],
                                  client_key=model['tls']['client_key'])
    s3, s3_controller, s3_user = _s3(settings, address, instances, members, problems) if settings['tici_enabled'] else (None, None, None)
    if problems:
        return model
    pd = [instances[host] for host in members['pd']]
    pd_addrs = address.peers('pd', pd, 'client_port')
    pd_endpoint = _cluster_service(address, settings, 'pd', instances, members)
    model.update({
        'pd_addrs': pd_addrs,
        'pd_urls': ['%s://%s' % (_scheme(settings, 'pd'), addr) for addr in pd_addrs],
        'pd_endpoint': pd_endpoint,
        'initial_cluster': ','.join('%s=%s' % (record['pd_name'], _url(record['advertise_host'], record['ports']['peer_port'],
                                                                       _scheme(settings, 'pd')))
                                    for record in pd),
        'tidb_addrs': address.peers('tidb', [instances[h] for h in members['tidb']], 'port'),
        'tidb_status_addrs': address.peers('tidb', [instances[h] for h in members['tidb']], 'status_port'),
        's3': s3,
        's3_controller_endpoint': s3_controller,
        'minio_user': s3_user,
        # The bucket is made with MinIO's root credentials when MinIO is the cluster's own (the MinIO
        # role keeps them), else with the keys TiCI uses.
        'bucket_credentials': ({'access_key': settings.get('minio_root_user'), 'secret_key': settings.get('minio_root_password')}
                               if members['minio'] else
                               {'access_key': s3['access_key'], 'secret_key': s3['secret_key']} if s3 else None),
        'gates': _gates(settings, address, instances, members, pd_endpoint),
    })
    if settings['tici_enabled']:
        model['tici_account'] = _tici_account(settings)
    tidb = [instances[host] for host in members['tidb']]
    # Where the controller speaks SQL to TiDB (None where it cannot: the backend does it in the cluster).
    model['tidb_sql'] = ({'host': tidb[0]['access_host'], 'port': tidb[0]['ports']['port']}
                         if tidb and address.controller_reaches_sql else None)
    if s3 is not None:
        model['changefeed'] = {
            'id': settings['changefeed_id'],
            'server': _cluster_service(address, settings, 'ticdc', instances, members),
            'sink_uri': _config.tici_sink_uri(s3, settings.get('cdc_flush_interval') or None),
            'replica_config': CHANGEFEED_REPLICA_CONFIG,
        }
    model['images'] = dict((kind, _images.reference(settings, kind)) for kind in deployed_kinds)
    model['image_sources'] = dict((kind, _images.source(settings, kind)) for kind in deployed_kinds)
    model['processes'] = {}
    for name, record in instances.items():
        # With TLS, the specs need the certificates, which the controller makes from this model's
        # plan first (roles/_common tasks/tls.yml builds the model again with them).
        if not record['deployed'] or problems or (model['tls']['enabled'] and not model['tls']['ready']):
            continue
        try:
            model['processes'][name] = _process.spec(model, settings, record)
        except _process.ProcessError as error:
            problems.append('%s: %s' % (name, error))
        except _config.ConfigError as error:
            problems.append('%s (%s): %s' % (name, record['kind'], error))
    if isinstance(address, Kubernetes) and not problems:
        model['pod_templates'] = _pod_templates(model, settings, address, problems)
    return model


def _tici_account(settings):
    """The TiDB account TiCI meta logs in with, which the collection creates and keeps: privileges on
    TiCI's own metadata database only (tici.md: meta keeps its metadata in database ``tici``). None
    when TiCI is told to use root, which TiDB makes at bootstrap."""
    user = settings['tici_tidb_user']
    if user == 'root':
        return None
    return {'user': user, 'host': '%', 'password': settings['tici_tidb_password'], 'privileges': 'tici.*:ALL',
            'login_password': settings.get('tidb_root_password') or ''}


def _pod_templates(model, settings, address, problems):
    """Per kind, the command line pods of its StatefulSet share: the pod's own name is $(POD_NAME).

    Built from a stand-in instance named $(POD_NAME), then checked against every pod's own process
    spec, so a pod never runs other flags than the ones the model computed for it.
    """
    templates = {}
    for kind, hosts in model['members'].items():
        hosts = [host for host in hosts if host in model['processes']]
        if not hosts:
            continue
        stand_in = dict(model['instances'][hosts[0]], **address.instance(kind, '$(POD_NAME)', {}, 0))
        stand_in.update(pod='$(POD_NAME)', advertise_host='$(POD_NAME).%s.%s.svc' % (peer_service(settings, kind), address.namespace))
        if kind == 'pd':
            stand_in['pd_name'] = '$(POD_NAME)'
        process = _process.spec(model, settings, stand_in)
        command = process['command']
        for host in hosts:
            pod = model['instances'][host]['pod']
            if [arg.replace('$(POD_NAME)', pod) for arg in command] != model['processes'][host]['command']:
                problems.append('%s (pod %s): its flags differ from the other pods of %s beyond its own name, which one '
                                'pod template cannot express' % (host, pod, topo.kind(kind).group))
        # PD pods share one template, so they all carry the bootstrap list (docs/kubernetes.md).
        templates[kind] = {'command': command + _process.membership_args(process['membership'], None)}
    return templates


def _kind_info(kind):
    return {'title': kind.title, 'group': kind.group, 'role': kind.role, 'stop_grace': kind.stop_grace, 'stateful': kind.stateful,
            'depends': list(kind.depends), 'store': kind.store, 'tici': kind.tici, 'http_port': kind.http_port,
            'probe': list(kind.probe), 'ports': [dict(name=p.name, default=p.default, label=p.label) for p in kind.ports]}
