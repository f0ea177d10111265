# Copyright: tidbops.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Reviewer's structural checks over rendered Kubernetes manifests (schemas are kubernetes-validate's job).

Usage: k8s_check.py DIR_OR_FILE...   Prints one line per problem; exit status 1 if there is any.

Checks: the app.kubernetes.io labels on every object; every Service selects the pods of a workload;
every StatefulSet names an existing headless Service and selects its own pods; every workload
component container has a readiness probe (Jobs and sidecars excepted), every container resource
requests; stateful components have
PVC templates; referenced ConfigMaps, Secrets and Secret keys exist; and no secret value (taken
from the rendered Secrets) appears anywhere outside a Secret.
"""

import glob
import os
import sys
import tomllib
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

# The collection's registry says which kinds keep data (this checkout, linked as tidbops.cluster).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".collections"))
from ansible_collections.tidbops.cluster.plugins.module_utils import _topology  # noqa: E402  pylint: disable=wrong-import-position

LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
          "app.kubernetes.io/managed-by")
# Components that keep data and so need a PersistentVolumeClaim template (their component label).
STATEFUL_COMPONENTS = tuple(kind.name.replace("_", "-") for kind in _topology.KINDS if kind.stateful)
# Access keys are not among them: an access key names a user (AWS calls it the access key ID); the
# secret key is what must stay in a Secret.
SECRET_KEY_HINTS = ("secret", "password")


def load(paths):
    """Every document of the given files (directories: their *.yaml files, sorted)."""
    files = []
    for path in paths:
        files += sorted(glob.glob(os.path.join(path, "*.yaml"))) if os.path.isdir(path) else [path]
    objects = []
    for name in files:
        with open(name, encoding="utf-8") as handle:
            objects += [doc for doc in yaml.safe_load_all(handle) if doc]
    return objects


def _walk_strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_strings(item)
    elif isinstance(value, str):
        yield value


def _toml_secrets(document, hinted=False):
    for key, value in document.items():
        is_secret = hinted or any(hint in key.lower() for hint in SECRET_KEY_HINTS)
        if isinstance(value, dict):
            yield from _toml_secrets(value, is_secret)
        elif isinstance(value, str) and is_secret and value:
            yield value
        elif isinstance(value, str) and value.startswith("mysql://"):
            password = urlsplit(value).password
            if password:
                yield unquote(password)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str) and item.startswith("mysql://") and urlsplit(item).password:
                    yield unquote(urlsplit(item).password)


def secret_values(objects):
    """Secret strings found in rendered Secrets: plain values, secret-looking TOML keys, DSN and URL passwords."""
    found = set()
    for obj in objects:
        if obj.get("kind") != "Secret":
            continue
        for key, value in (obj.get("stringData") or {}).items():
            if key.endswith(".toml"):
                found.update(_toml_secrets(tomllib.loads(value)))
                continue
            found.add(value)
            parts = urlsplit(value)
            if parts.password:
                found.update((unquote(parts.username), unquote(parts.password)))
            found.update(v for k, v in parse_qsl(parts.query) if "secret" in k or "password" in k)
    return {value for value in found if len(value) >= 4}


def _where(obj):
    return "%s/%s" % (obj.get("kind"), (obj.get("metadata") or {}).get("name"))


def _pod_templates(objects):
    for obj in objects:
        if obj.get("kind") in ("StatefulSet", "Job", "Deployment"):
            yield obj, obj["spec"]["template"]


def _subset(selector, labels):
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def check(objects, secrets=()):
    """Return a list of problems (strings); empty means the manifests pass."""
    problems = []
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind"), {})[(obj.get("metadata") or {}).get("name")] = obj
    templates = list(_pod_templates(objects))

    for obj in objects:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        wanted = ("app.kubernetes.io/managed-by",) if obj.get("kind") == "Namespace" else LABELS
        missing = [label for label in wanted if not labels.get(label)]
        if missing:
            problems.append("%s lacks labels %s" % (_where(obj), ", ".join(missing)))

    for name, service in (by_kind.get("Service") or {}).items():
        selector = service["spec"].get("selector") or {}
        if not any(_subset(selector, tpl["metadata"].get("labels") or {}) for _obj, tpl in templates):
            problems.append("Service/%s selects no pod template (selector %s)" % (name, selector))

    for obj, template in templates:
        spec = template["spec"]
        if obj["kind"] == "StatefulSet":
            match = obj["spec"]["selector"].get("matchLabels") or {}
            if not _subset(match, template["metadata"].get("labels") or {}):
                problems.append("%s: selector does not match its pod template labels" % _where(obj))
            service = (by_kind.get("Service") or {}).get(obj["spec"].get("serviceName"))
            if not service or service["spec"].get("clusterIP") != "None":
                problems.append("%s: serviceName %r is not a headless Service" % (_where(obj), obj["spec"].get("serviceName")))
            component = (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
            if component in STATEFUL_COMPONENTS and not obj["spec"].get("volumeClaimTemplates"):
                problems.append("%s: stateful component %s has no volumeClaimTemplates" % (_where(obj), component))
        for index, container in enumerate(spec.get("containers") or []):
            where = "%s container %s" % (_where(obj), container.get("name"))
            # The component runs in the first container; the others are sidecars (log tailers).
            if obj["kind"] != "Job" and index == 0 and not container.get("readinessProbe"):
                problems.append("%s has no readinessProbe" % where)
            if not (container.get("resources") or {}).get("requests"):
                problems.append("%s has no resource requests" % where)
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    secret = (by_kind.get("Secret") or {}).get(ref["name"])
                    if not secret or ref["key"] not in (secret.get("stringData") or secret.get("data") or {}):
                        problems.append("%s: env %s refers to missing Secret key %s/%s" % (where, env["name"], ref["name"], ref["key"]))
        for volume in spec.get("volumes") or []:
            for kind, field, key in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
                if field in volume and volume[field][key] not in (by_kind.get(kind) or {}):
                    problems.append("%s: volume %s refers to missing %s %s" % (_where(obj), volume["name"], kind, volume[field][key]))

    all_secrets = set(secrets) | secret_values(objects)
    for obj in objects:
        if obj.get("kind") == "Secret":
            continue
        for text in _walk_strings(obj):
            for secret in all_secrets:
                if secret and secret in text:
                    problems.append("%s carries a secret value outside a Secret" % _where(obj))
                    break
    return problems


def main(argv):
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    objects = load(argv)
    if not objects:
        print("no manifests found in %s" % " ".join(argv), file=sys.stderr)
        return 1
    problems = check(objects)
    for problem in problems:
        print("PROBLEM %s" % problem)
    print("%d objects checked, %d problems" % (len(objects), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
