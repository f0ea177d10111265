# -*- coding: utf-8 -*-
# Copyright: tidbops.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the Kubernetes backend (roles/_kubernetes): from the cluster model to Kubernetes objects.

* ``k8s_manifests(cluster, settings, kind)`` gives the objects of one kind, in apply order: its
  ConfigMap and Secret (the rendered files), a headless peer Service, a client Service and a
  StatefulSet; MinIO adds the Job that creates the TiCI bucket, TiDB the Job that creates TiCI's
  TiDB account.
* ``k8s_namespace(cluster, settings)`` gives the Namespace.
* ``k8s_rbac(cluster, settings)`` gives the Role (and ClusterRole) the playbooks' account needs.
* ``k8s_inventory(cluster, settings, destroy_data)`` lists every object site.yml creates, in
  delete order ({apiVersion, kind, namespace, name}), with the PersistentVolumeClaims and the
  Namespace only when data goes too: what destroy.yml removes.
* ``k8s_pod_replacement(statefulset, pods, pod)`` says how restart.yml replaces one pod: by moving
  the StatefulSet's partition down (its pod runs an older revision) or by deleting it.

Each pod runs the process spec the cluster model gives its instance (module_utils/_process.py):
the same command line and config files as a container, addresses aside. Pods of one StatefulSet
share one template, so the model's pod template command (``pod_templates``) spells the pod's own
name ``$(POD_NAME)``, which the kubelet expands from the downward API; each pod's files are keys
``<pod>.<file>`` of a ConfigMap (a Secret when they hold credentials), mounted at the same path as
on a container with ``subPathExpr: $(POD_NAME).<file>``. Since subPath mounts never see an update,
the pod template carries a digest of the kind's files (``tidbops/files-sha256``): a changed file is a
new revision, which the backend rolls like any other template change. Error messages name
variables, never values.
"""

from __future__ import annotations

import json
import posixpath
import re
from urllib.parse import quote

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tidbops.cluster.plugins.module_utils import _config
from ansible_collections.tidbops.cluster.plugins.module_utils import _k8s_rollout
from ansible_collections.tidbops.cluster.plugins.module_utils import _minio
from ansible_collections.tidbops.cluster.plugins.module_utils import _model
from ansible_collections.tidbops.cluster.plugins.module_utils import _secrets
from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo

MANAGED_BY = "tidbops"
DATA_VOLUME = "data"
# Pod template annotation: a digest of the kind's rendered files. Pods mount them with subPath, which
# never sees a ConfigMap or Secret update, so a changed file must change the template (a new revision)
# for its pods to be replaced; as the container backend's spec-hash label, it covers secret files too,
# so it is keyed with the cluster's digest key: whoever reads the StatefulSet learns nothing of them.
FILES_HASH = "tidbops/files-sha256"


def _check(cluster, settings, name):
    if not isinstance(cluster, dict) or "processes" not in cluster or cluster.get("backend") != "kubernetes":
        raise AnsibleFilterError("%s: the input must be the cluster model of a tidb_backend=kubernetes inventory" % name)
    if not isinstance(settings, dict) or "namespace" not in settings:
        raise AnsibleFilterError("%s: settings must be the Kubernetes backend's settings (__tidbops_backend_settings)" % name)
    return _config.plain(cluster, name), _config.plain(settings, name)


def _labels(cluster, kind):
    return {
        "app.kubernetes.io/name": "tidb-cluster",
        "app.kubernetes.io/instance": cluster["cluster_name"],
        "app.kubernetes.io/component": kind.replace("_", "-"),
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def _selector(cluster, kind):
    labels = _labels(cluster, kind)
    labels.pop("app.kubernetes.io/managed-by")
    return labels


def _meta(cluster, settings, kind, name):
    return {"name": name, "namespace": settings["namespace"], "labels": _labels(cluster, kind)}


def _files(cluster, settings, kind, pods, secret):
    """A ConfigMap (or a Secret) with every pod's plain (or secret) files, or None when there is none."""
    files = {}
    for host in pods:
        for item in cluster["processes"][host]["files"]:
            if bool(item["secret"]) == secret:
                files["%s.%s" % (cluster["instances"][host]["pod"], item["name"])] = item["content"]
    if not files:
        return None
    suffix = "-secret" if secret else "-config"
    obj = {"apiVersion": "v1", "kind": "Secret" if secret else "ConfigMap",
           "metadata": _meta(cluster, settings, kind, _model.object_name(cluster, kind) + suffix)}
    if secret:
        obj.update(type="Opaque", stringData=dict(sorted(files.items())))
    else:
        obj["data"] = dict(sorted(files.items()))
    return obj


def _services(cluster, settings, kind, ports):
    """A headless peer Service (stable pod DNS names, published before readiness) and a client Service."""
    service_ports = [{"name": port["label"], "port": port["port"], "targetPort": port["port"], "protocol": "TCP"} for port in ports]
    peer = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(cluster, settings, kind, _model.peer_service(cluster, kind)),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": _selector(cluster, kind),
                     "ports": service_ports}}
    client = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(cluster, settings, kind, _model.object_name(cluster, kind)),
              "spec": {"type": "ClusterIP", "selector": _selector(cluster, kind), "ports": [dict(port) for port in service_ports]}}
    return [peer, client]


def _probe(settings, kind, ports, tls):
    """The registry's probe: an HTTP GET where it names a path, a TCP check otherwise. With TLS, a TCP
    check: PD requires a client certificate, the others do once allowed common names are set, and the
    kubelet's HTTPS probe presents none."""
    if kind == "tiflash" and settings.get("tiflash_probe"):
        handler = dict(settings["tiflash_probe"])
    else:
        port_name, path = topo.kind(kind).probe
        port = dict((item["name"], item["port"]) for item in ports)[port_name]
        handler = {"httpGet": {"path": path, "port": port, "scheme": "HTTP"}} if path and not tls else {"tcpSocket": {"port": port}}
    handler.update({"initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3})
    return handler


def _resources(settings, kind):
    value = (settings.get("resources") or {}).get(kind) or {}
    return dict((part, dict((k, str(v)) for k, v in (value.get(part) or {}).items())) for part in ("requests", "limits") if value.get(part))


def _files_hash(cluster, config_objects):
    data = [[obj["kind"], obj.get("data") or obj.get("stringData") or {}] for obj in config_objects]
    return _secrets.keyed_digest(cluster["digest_key"], data)


def _secured(settings, pod_spec):
    """The pod spec with tidb_k8s_pod_security_context (fsGroup, runAsUser...), for every pod the backend makes."""
    if settings.get("pod_security_context"):
        pod_spec["securityContext"] = dict(settings["pod_security_context"])
    return pod_spec


def _log_tailers(settings, log_files, mounts):
    """One sidecar per file the process logs to, printing it to its own stdout, so that ``kubectl logs
    <pod> -c <sidecar>`` shows it (as tidb-operator's TiFlash pods do). ``tail -F`` waits for a file
    that is not there yet and follows it across TiFlash's own rotation; ``-n +1`` prints it from the
    start, so lines written before the sidecar started are not lost."""
    tailers, names = [], set()
    for path in log_files:
        stem = re.sub(r"[^a-z0-9]+", "-", posixpath.basename(path).rsplit(".", 1)[0].lower()).strip("-")[:50] or "file"
        name = "log-" + stem
        while name in names:
            name += "-x"
        names.add(name)
        tailers.append({
            "name": name,
            "image": settings["log_tailer_image"],
            "imagePullPolicy": settings["image_pull_policy"],
            "command": ["tail"],
            "args": ["-n", "+1", "-F", path],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            "volumeMounts": [dict(mount, readOnly=True) for mount in mounts],
        })
    return tailers


def _statefulset(cluster, settings, kind, pods, config_objects):
    process = cluster["processes"][pods[0]]
    # The longest stop grace of its pods (each process spec's stop_grace: TiDB's includes its graceful wait).
    grace = max(int(cluster["processes"][host]["stop_grace"]) for host in pods)
    template = cluster["pod_templates"][kind]
    mounts, volumes = [], []
    for obj in config_objects:
        volume = "secret" if obj["kind"] == "Secret" else "config"
        for item in process["files"]:
            if (volume == "secret") == bool(item["secret"]):
                mounts.append({"name": volume, "mountPath": item["target"], "subPathExpr": "$(POD_NAME).%s" % item["name"],
                               "readOnly": True})
        # 0440: with the pod's fsGroup the kubelet gives the files that group, so a non-root user of it reads them.
        source = ({"secret": {"secretName": obj["metadata"]["name"], "defaultMode": 0o440}} if volume == "secret"
                  else {"configMap": {"name": obj["metadata"]["name"]}})
        volumes.append(dict(source, name=volume))
    if topo.kind(kind).stateful:
        mounts.append({"name": DATA_VOLUME, "mountPath": process["data"]})
    # Log files go to emptyDir volumes mounted over their directories (on the data volume's path, so
    # the config files stay those of a container): off the data volume, and streamed by sidecars.
    log_dirs = sorted(set(posixpath.dirname(path) for path in process["logs"]))
    log_mounts = [{"name": "logs-%d" % index, "mountPath": path} for index, path in enumerate(log_dirs)]
    mounts += log_mounts
    volumes += [{"name": mount["name"], "emptyDir": {}} for mount in log_mounts]
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]
    env += [{"name": key, "value": value} for key, value in sorted(process["env"].items())]
    container = {
        "name": kind.replace("_", "-"),
        "image": process["image"],
        "imagePullPolicy": settings["image_pull_policy"],
        "command": [process["entrypoint"]],
        "args": template["command"],
        "env": env,
        "ports": [{"name": port["label"], "containerPort": port["port"], "protocol": "TCP"} for port in process["ports"]],
        "readinessProbe": _probe(settings, kind, process["ports"], (cluster.get("tls") or {}).get("enabled") and kind in _model.TLS_KINDS),
        "resources": _resources(settings, kind),
        "volumeMounts": mounts,
    }
    containers = [container] + _log_tailers(settings, process["logs"], log_mounts)
    pod_spec = _secured(settings, {"containers": containers, "volumes": volumes, "terminationGracePeriodSeconds": grace})
    template_meta = {"labels": _labels(cluster, kind)}
    if config_objects:
        template_meta["annotations"] = {FILES_HASH: _files_hash(cluster, config_objects)}
    spec = {
        "replicas": len(pods),
        "serviceName": _model.peer_service(cluster, kind),
        "podManagementPolicy": "Parallel",
        # The live backend adds rollingUpdate.partition (roles/_kubernetes/tasks/statefulset.yml);
        # rendered manifests leave rolling to Kubernetes.
        "updateStrategy": {"type": "RollingUpdate"},
        "selector": {"matchLabels": _selector(cluster, kind)},
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    if topo.kind(kind).stateful:
        storage = settings.get("storage") or {}
        claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage[kind]}}}
        if storage.get("class_name"):
            claim["storageClassName"] = storage["class_name"]
        spec["volumeClaimTemplates"] = [{"metadata": {"name": DATA_VOLUME, "labels": _labels(cluster, kind)}, "spec": claim}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": _meta(cluster, settings, kind, _model.object_name(cluster, kind)), "spec": spec}


# Run by the bucket Job when the MinIO role makes TiCI's user (the cluster model's minio_user). It
# names no secret: mc reads the root alias from MC_HOST_tici and, given no secret key argument and a
# stdin that is not a terminal, reads the user's secret key from stdin (minio/mc cmd/admin-user-add.go
# fetchUserKeys). `user add` sets the secret of an existing user again; a second `policy attach` fails
# (minio/mc#4863), so it runs only when the user does not have the policy. The image's ubi-micro base
# has a POSIX shell (minio/mc Dockerfile.release runs `chmod` in it) but no grep: case does the match.
_USER_SCRIPT = """set -eu
mc mb --ignore-existing "tici/$TICI_BUCKET"
mc admin policy create tici "$TICI_POLICY" /etc/tidbops/policy.json
mc admin user add tici "$TICI_ACCESS_KEY" < /etc/tidbops/secret-key
info=$(mc admin user info tici "$TICI_ACCESS_KEY" --json)
case "$info" in
  *"$TICI_POLICY"*) ;;
  *) mc admin policy attach tici "$TICI_POLICY" --user "$TICI_ACCESS_KEY" ;;
esac
"""


def _bucket_job(cluster, settings):
    """The Job that creates the TiCI bucket in the cluster (the controller cannot talk S3 to it) and,
    when the MinIO role makes TiCI's user, the user and its bucket policy (_USER_SCRIPT).

    `mc` reads its alias from MC_HOST_<alias> = scheme://key:secret@host:port, and the user's secret
    key from a file, both from a Secret, so the Job's spec holds no key. A Job runs once, so when it
    makes the user its name carries a keyed digest of what it sets: new keys are a new Job.
    """
    name = _model.object_name(cluster, "minio")
    s3 = cluster["s3"]
    scheme, _sep, address = s3["endpoint"].partition("://")
    keys = cluster["bucket_credentials"]
    mc_host = "%s://%s:%s@%s" % (scheme, quote(keys["access_key"], safe=""), quote(keys["secret_key"], safe=""), address.rstrip("/"))
    data = {"mc-host": mc_host}
    user = cluster.get("minio_user")
    job_name = name + "-bucket"
    if user:
        data.update({"secret-key": user["secret_key"] + "\n",
                     "policy.json": json.dumps(_minio.bucket_policy(user["bucket"]), sort_keys=True)})
        job_name += "-" + _secrets.keyed_digest(cluster["digest_key"], [data, user["access_key"], user["policy_name"], _USER_SCRIPT])[:10]
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(cluster, settings, "minio", name + "-credentials"),
              "stringData": data}
    labels = dict(_labels(cluster, "minio"))
    # The Job's pods must not match the StatefulSet's selector.
    labels["app.kubernetes.io/component"] = "minio-bucket"
    env = [{"name": "MC_HOST_tici", "valueFrom": {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "mc-host"}}}]
    container = {
        "name": "create-bucket",
        "image": settings["s3_client_image"],
        "imagePullPolicy": settings["image_pull_policy"],
        "command": ["mc"],
        "args": ["mb", "--ignore-existing", "tici/%s" % s3["bucket"]],
        "env": env,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }
    pod = {"restartPolicy": "OnFailure", "containers": [container]}
    if user:
        container.update(name="bucket-and-user", command=["/bin/sh", "-c", _USER_SCRIPT], args=[])
        env += [{"name": "TICI_BUCKET", "value": user["bucket"]}, {"name": "TICI_POLICY", "value": user["policy_name"]},
                {"name": "TICI_ACCESS_KEY", "value": user["access_key"]}]
        container["volumeMounts"] = [{"name": "credentials", "mountPath": "/etc/tidbops", "readOnly": True}]
        pod["volumes"] = [{"name": "credentials", "secret": {"secretName": secret["metadata"]["name"], "defaultMode": 0o440,
                                                             "items": [{"key": "secret-key", "path": "secret-key"},
                                                                       {"key": "policy.json", "path": "policy.json"}]}}]
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(cluster, settings, "minio", job_name),
        "spec": {"backoffLimit": 6, "template": {"metadata": {"labels": labels}, "spec": _secured(settings, pod)}},
    }
    return [secret, job]


def _sql_string(text):
    """A MySQL single-quoted string literal (backslash and quote escaped, as the server reads them)."""
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "\\'")


def _account_job(cluster, settings):
    """The Job that creates TiCI's TiDB account in the cluster (the tici role does it from the
    controller elsewhere): the same account, password and privileges as community.mysql.mysql_user
    gives it, by TiDB's root account, through the TiDB Service.

    The client reads its login and the statements from a Secret, so the Job's spec holds no password;
    the statements are idempotent. A Job runs once, so its name carries a keyed digest of what it
    does: a new password or account is a new Job (the finished one stays, as Kubernetes keeps Jobs).
    """
    account = cluster["tici_account"]
    name = _model.object_name(cluster, "tidb")
    target = "%s@%s" % (_sql_string(account["user"]), _sql_string(account["host"]))
    statements = "\n".join([
        "CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s;" % (target, _sql_string(account["password"])),
        "ALTER USER %s IDENTIFIED BY %s;" % (target, _sql_string(account["password"])),
        "GRANT ALL PRIVILEGES ON `tici`.* TO %s;" % target,
    ]) + "\n"
    tidb_port = cluster["instances"][cluster["members"]["tidb"][0]]["ports"]["port"]
    client = "[client]\nhost=%s\nport=%d\nuser=root\npassword=%s\n" % (name, tidb_port, account["login_password"])
    digest = _secrets.keyed_digest(cluster["digest_key"], [client, statements])[:10]
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(cluster, settings, "tidb", name + "-tici-account"),
              "stringData": {"client.cnf": client, "account.sql": statements}}
    labels = dict(_labels(cluster, "tidb"))
    labels["app.kubernetes.io/component"] = "tidb-tici-account"  # not the StatefulSet's selector
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(cluster, settings, "tidb", "%s-tici-account-%s" % (name, digest)),
        "spec": {"backoffLimit": 6, "template": {"metadata": {"labels": labels}, "spec": _secured(settings, {
            "restartPolicy": "OnFailure",
            "containers": [{
                "name": "tici-account",
                "image": settings["sql_client_image"],
                "imagePullPolicy": settings["image_pull_policy"],
                "command": ["mysql"],
                "args": ["--defaults-extra-file=/etc/tidbops/client.cnf", "--execute=source /etc/tidbops/account.sql"],
                "volumeMounts": [{"name": "account", "mountPath": "/etc/tidbops", "readOnly": True}],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            }],
            "volumes": [{"name": "account", "secret": {"secretName": secret["metadata"]["name"], "defaultMode": 0o440}}]})}},
    }
    return [secret, job]


# Where the changefeed Job finds its files; the unit test that runs the Job maps them to a directory.
RUNNER_DIR = "/etc/tidbops"


def _changefeed_job(cluster, settings):
    """The Job that converges TiCI's changefeed from inside the cluster, for render mode (GitOps): the
    collection's own ``ticdc_changefeed`` module, run by ``ansible-playbook`` in
    ``tidb_k8s_runner_image`` (an execution environment with the collection), so it creates the
    changefeed when missing, updates it in place when it differs and never makes a second one, as
    site.yml's task does from the controller.

    The playbook (a ConfigMap) names no secret: the sink URI, which holds the S3 keys, is read from a
    Secret's file. A Job runs once, so its name carries a keyed digest of what it converges: a new key,
    sink or playbook is a new Job. No TLS options: the model refuses TLS with TiCI, so a cluster with a
    changefeed has none.
    """
    feed = cluster["changefeed"]
    name = _model.object_name(cluster, "ticdc") + "-changefeed"
    secret_dir, play_dir = RUNNER_DIR + "/changefeed-secret", RUNNER_DIR + "/changefeed"
    options = {
        "server": feed["server"],
        "changefeed_id": feed["id"],
        "state": "present",
        "sink_uri": "{{ lookup('ansible.builtin.file', '%s/sink-uri') }}" % secret_dir,
        "replica_config": feed["replica_config"],
        "timeout": int(settings.get("job_timeout") or 300),
    }
    mounts = [{"name": "playbook", "mountPath": play_dir, "readOnly": True},
              {"name": "sink", "mountPath": secret_dir, "readOnly": True}]
    volumes = [{"name": "playbook", "configMap": {"name": name}},
               {"name": "sink", "secret": {"secretName": name, "defaultMode": 0o440}}]
    playbook = [{
        "name": "Converge the TiCI changefeed from inside the cluster (tidbops.cluster, render mode)",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [{"name": "Ensure the TiCI changefeed exists with its S3 sink", "tidbops.cluster.ticdc_changefeed": options}],
    }]
    playbook_text = "# Generated by tidbops.cluster; run by the Job %s-<digest>.\n" % name + yaml.safe_dump(
        playbook, sort_keys=False, default_flow_style=False, width=1000)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(cluster, settings, "ticdc", name),
              "stringData": {"sink-uri": feed["sink_uri"]}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(cluster, settings, "ticdc", name),
              "data": {"changefeed.yml": playbook_text}}
    digest = _secrets.keyed_digest(cluster["digest_key"], [playbook_text, feed["sink_uri"], settings.get("runner_image")])[:10]
    labels = dict(_labels(cluster, "ticdc"))
    labels["app.kubernetes.io/component"] = "ticdc-changefeed"  # not the StatefulSet's selector
    container = {
        "name": "changefeed",
        "image": settings.get("runner_image"),
        "imagePullPolicy": settings["image_pull_policy"],
        "command": ["ansible-playbook"],
        "args": [play_dir + "/changefeed.yml"],
        # A writable home and temp directory for any user; no color, no warning about the implicit localhost.
        "env": [{"name": "HOME", "value": "/tmp"}, {"name": "ANSIBLE_LOCAL_TEMP", "value": "/tmp/.ansible-local"},
                {"name": "ANSIBLE_NOCOLOR", "value": "1"}, {"name": "ANSIBLE_LOCALHOST_WARNING", "value": "false"},
                {"name": "ANSIBLE_INVENTORY_UNPARSED_WARNING", "value": "false"}],
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        # kubectl describe shows why a run failed: the module's message, with the S3 keys masked.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(cluster, settings, "ticdc", "%s-%s" % (name, digest)),
        "spec": {"backoffLimit": 6, "template": {"metadata": {"labels": labels}, "spec": _secured(settings, {
            "restartPolicy": "OnFailure", "containers": [container], "volumes": volumes})}},
    }
    return [config, secret, job]


def k8s_manifests(cluster, settings, kind, with_changefeed=False):
    """The objects of one kind, in apply order; an empty list when the kind has no deployed instance.
    TiCDC's include the changefeed Job in render mode, or with ``with_changefeed``."""
    cluster, settings = _check(cluster, settings, "k8s_manifests")
    if kind not in topo.BY_NAME:
        raise AnsibleFilterError("k8s_manifests: kind must be one of %s, got %r" % (", ".join(topo.NAMES), kind))
    pods = [host for host in cluster["members"][kind] if host in cluster["processes"]]
    if not pods:
        return []
    configs = [obj for obj in (_files(cluster, settings, kind, pods, False), _files(cluster, settings, kind, pods, True)) if obj]
    objects = configs + _services(cluster, settings, kind, cluster["processes"][pods[0]]["ports"])
    objects.append(_statefulset(cluster, settings, kind, pods, configs))
    if kind == "minio" and cluster.get("s3"):
        objects += _bucket_job(cluster, settings)
    if kind == "tidb" and cluster.get("tici_account"):
        objects += _account_job(cluster, settings)
    # Live, the ticdc role converges the changefeed from the controller, once MinIO's bucket exists; a
    # rendered cluster has no controller, so it gets the Job (after the bucket Job, by file order).
    if kind == "ticdc" and cluster.get("changefeed") and (settings.get("render_dir") or with_changefeed):
        objects += _changefeed_job(cluster, settings)
    return objects


def k8s_namespace(cluster, settings):
    """The Namespace object, applied before anything else."""
    _cluster, settings = _check(cluster, settings, "k8s_namespace")
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": settings["namespace"], "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}}}


def k8s_inventory(cluster, settings, destroy_data=False, kinds=None):
    """Every object site.yml creates (of ``kinds``, or of all), in delete order (the reverse of apply
    order), as {apiVersion, kind, namespace, name}; PVCs (``data-<statefulset>-<ordinal>``) and the
    Namespace (when the backend creates it, and all kinds go) only with ``destroy_data``."""
    _cluster, plain_settings = _check(cluster, settings, "k8s_inventory")
    namespace = plain_settings["namespace"]
    found, claims = [], []
    for kind in topo.start_order(kinds or topo.NAMES):
        # A cluster applied from rendered files has the changefeed Job too: delete it if it is there.
        for obj in k8s_manifests(cluster, settings, kind, with_changefeed=True):
            found.append({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "namespace": namespace, "name": obj["metadata"]["name"]})
            if obj["kind"] == "StatefulSet" and obj["spec"].get("volumeClaimTemplates"):
                claims += [{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace,
                            "name": "%s-%s-%d" % (DATA_VOLUME, obj["metadata"]["name"], ordinal)}
                           for ordinal in range(obj["spec"]["replicas"])]
    found.reverse()
    if destroy_data:
        # Claims go after the workloads that use them (a claim in use waits for its pod anyway).
        found += claims
        if plain_settings.get("create_namespace") and not kinds:
            found.append({"apiVersion": "v1", "kind": "Namespace", "namespace": "", "name": namespace})
    return found


# What the playbooks' account does in the cluster's namespace, and nothing more: apply, read and
# delete the objects of k8s_manifests; read pods and delete one to restart it; read and (destroy
# with data, scale-in) delete claims. A server-side apply that creates an object needs create
# besides patch. Then, by tidb_k8s_transport: reach the components through the API server's proxy
# (GET, POST, PUT and DELETE map to get, create, update, delete), or run the modules as Jobs
# (plugin_utils/_in_cluster.py: a Job and a Secret created, the pod's log read, the Job deleted).
# tests/unit/kubernetes's fake API server enforces these rules, so every live test proves they suffice.
RBAC_RULES = [
    {"apiGroups": [""], "resources": ["configmaps", "secrets", "services"], "verbs": ["get", "create", "patch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "create", "patch", "delete"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "create", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "delete"]},
]
TRANSPORT_RULES = {
    "proxy": [{"apiGroups": [""], "resources": ["pods/proxy", "services/proxy"], "verbs": ["get", "create", "update", "delete"]}],
    "in_cluster": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}],
}


def rbac_rules(transport):
    """The namespace's rules for a transport (proxy or in_cluster)."""
    return [dict(rule) for rule in RBAC_RULES + TRANSPORT_RULES[transport]]


# Only with tidb_k8s_create_namespace: namespaces are cluster-scoped (a ClusterRole), and a create
# cannot be limited to one name.
NAMESPACE_RULES = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "patch", "delete"], "resourceNames": ["{namespace}"]},
]


def k8s_rbac(cluster, settings):
    """The Role the playbooks' account needs in the namespace (bind it to that account), and the
    ClusterRole for the Namespace when the backend creates it."""
    cluster, settings = _check(cluster, settings, "k8s_rbac")
    name = "%s-tidbops-playbooks" % cluster["cluster_name"]
    labels = {"app.kubernetes.io/name": "tidb-cluster", "app.kubernetes.io/instance": cluster["cluster_name"],
              "app.kubernetes.io/managed-by": MANAGED_BY}
    objects = [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": name, "namespace": settings["namespace"], "labels": labels},
                "rules": rbac_rules(settings.get("transport") or "proxy")}]
    if settings.get("create_namespace"):
        rules = [dict(rule, resourceNames=[settings["namespace"]]) if "resourceNames" in rule else dict(rule) for rule in NAMESPACE_RULES]
        objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                        "metadata": {"name": "%s-%s-namespace" % (settings["namespace"], name), "labels": labels}, "rules": rules})
    return objects


def k8s_object_line(obj):
    """``Kind namespace/name`` (an empty namespace for cluster-scoped objects): a line of destroy.txt."""
    return "%s %s/%s" % (obj["kind"], obj.get("namespace") or "", obj["name"])


# Deleted objects of these kinds are waited for until they are gone (delete.yml): a StatefulSet's pods
# leave before its config goes, and the Namespace goes last.
WAIT_FOR_DELETION = ("StatefulSet", "Namespace")


def k8s_delete_batches(doomed):
    """``doomed`` (entries of k8s_inventory, in delete order) as runs of kubernetes.core.k8s state=absent:
    [{wait, definitions}], consecutive objects waited for alike in one run, each as the {apiVersion, kind,
    metadata} a definition needs, in the same order. One module process per run instead of per object."""
    if not isinstance(doomed, list):
        raise AnsibleFilterError("k8s_delete_batches: the input must be a list of k8s_inventory entries")
    batches = []
    for obj in doomed:
        wait = obj["kind"] in WAIT_FOR_DELETION
        metadata = {"name": obj["name"]}
        if obj.get("namespace"):
            metadata["namespace"] = obj["namespace"]
        definition = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": metadata}
        if batches and batches[-1]["wait"] == wait:
            batches[-1]["definitions"].append(definition)
        else:
            batches.append({"wait": wait, "definitions": [definition]})
    return batches


def k8s_pod_replacement(statefulset, pods, pod):
    """How to replace or restart one pod of a StatefulSet, from the StatefulSet and its pods as the API
    server returns them (module_utils/_k8s_rollout.pod_replacement)."""
    if not isinstance(statefulset, dict) or statefulset.get("kind", "StatefulSet") != "StatefulSet" or not isinstance(pods, list):
        raise AnsibleFilterError("k8s_pod_replacement: the input must be a StatefulSet and pods a list of its pods")
    try:
        return _k8s_rollout.pod_replacement(_config.plain(statefulset, "k8s_pod_replacement"),
                                            _config.plain(pods, "k8s_pod_replacement"), str(pod))
    except ValueError as error:
        raise AnsibleFilterError("k8s_pod_replacement: %s" % error) from error


class FilterModule:
    """Kubernetes backend filters."""

    def filters(self):
        return {"k8s_manifests": k8s_manifests, "k8s_namespace": k8s_namespace, "k8s_inventory": k8s_inventory, "k8s_rbac": k8s_rbac,
                "k8s_object_line": k8s_object_line, "k8s_pod_replacement": k8s_pod_replacement, "k8s_delete_batches": k8s_delete_batches}
