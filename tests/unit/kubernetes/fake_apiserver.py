"""A tiny stand-in for the Kubernetes API server, enough for site.yml, destroy.yml and the rolling
restart of the Kubernetes backend without TiCI.

It serves discovery for the kinds the backend applies, stores server-side-applied objects (a dry run
answers without storing), applies JSON merge patches, lists objects by label, deletes objects, and
answers, through the pod and Service proxy paths, what the gates and the roll ask of a healthy
cluster named ``tidb`` in namespace ``tidb`` (PD with a leader that can be transferred, TiKV, TiDB,
TiCDC, TiFlash, placement rules). Every request is recorded so tests can assert order and count.

For a scale-in, PD keeps state: a member can be deleted (``DELETE /pd/api/v1/members/name/{name}``,
the leader re-elected when it leaves) and a store taken offline (``DELETE /pd/api/v1/store/{id}``,
refused when fewer than ``max-replicas`` (3) TiKV stores would stay Up): an Offline store reports
``offline_regions`` regions, ``region_step`` fewer at each read of the stores, and becomes Tombstone
at 0; ``DELETE /pd/api/v1/stores/remove-tombstone`` forgets the tombstones. ``GET
/pd/api/v1/stores`` lists the stores that are not Tombstone, ``?state=0&state=1&state=2`` the
states asked for. ``pd_events`` records ``(index of the request in requests, what, who)``:
``offline``, ``tombstone``, ``remove-tombstone`` for store ids, ``member-delete`` and ``leader`` for
PD member names. TiCDC creates and reads changefeeds; its owner resigns (``POST /api/v1/owner/resign``)
and a capture drains
(``PUT /api/v1/captures/drain``, no table left); a capture whose pod ordinal is at or beyond its
StatefulSet's replicas is gone from ``/api/v2/captures``.

It also plays the StatefulSet controller, before it answers each request (one pass, as a controller
that runs between requests):

* a StatefulSet's ``updateRevision`` is a digest of its pod template, so a template change makes a
  new revision and an unchanged one keeps it (as ControllerRevisions are reused);
* missing pods are created at once (``podManagementPolicy: Parallel``): an ordinal below
  ``spec.updateStrategy.rollingUpdate.partition`` at ``currentRevision``, any other at the update
  revision, each labelled ``controller-revision-hash``; pods beyond ``replicas`` go;
* from the highest ordinal down to the partition, the first pod at an older revision is deleted (it
  comes back at the update revision), one at a time and only after the pods above it are Ready;
* a deleted pod stays terminating ``terminate_after`` seconds, a new pod becomes Ready
  ``ready_after`` seconds after its creation (never with ``rolled_out=False``);
* ``currentRevision`` becomes the update revision once every pod runs it, and the status counts
  replicas, ready, current and updated pods.

Every request is authorized as the API server's RBAC authorizer would, against the Role (and the
Namespace's ClusterRole) that the k8s_rbac filter renders for the playbooks' account: a request that
the rules do not allow is answered 403 Forbidden and recorded in ``forbidden``. So every live test
also proves that the rendered Role suffices. Discovery (``/version``, ``/api``, ``/apis...``) is open,
as the ``system:discovery`` ClusterRole makes it. The verb is RBAC's: GET of an object ``get``, of a
collection ``list``, POST ``create``, PUT ``update``, PATCH ``patch`` (and ``create`` too when a
server-side apply creates the object), DELETE ``delete``; a proxy path is the ``pods/proxy`` or
``services/proxy`` subresource.

For ``tidb_k8s_transport: in_cluster`` it also plays the Job controller and the kubelet for the
Jobs of plugin_utils/_in_cluster.py (created with POST, their Secret after them): it runs the pod's
command here, with this checkout's collection on the Python path, the Secret's files under a
temporary directory, and ``http_proxy`` set to this server, so that the module's requests to the
cluster's DNS names (``http://tidb-pd:2379/...``) reach it as absolute-form proxy requests; it
answers those as the proxy paths are answered (``cluster_requests`` records them, outside RBAC: a
pod's traffic does not pass the API server). The pod's output is its log; the Job succeeds when the
command exits 0. Deleting a Job deletes its pods and the Secrets it owns.

``events`` records what the controller and the clients did to pods, in order: ``("partition", set,
value)`` whenever a write changes a partition, ``("delete", pod)`` for a client's delete,
``("replace", pod)`` when the controller deletes a pod to update it, and ``("create", pod,
revision)``. It is a test double for orchestration, not a validation of Kubernetes semantics.
"""

import copy
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import yaml
from k8s_inventory import load_filters
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

CORE = [("namespaces", "Namespace", False), ("configmaps", "ConfigMap", True), ("secrets", "Secret", True),
        ("services", "Service", True), ("pods", "Pod", True), ("pods/proxy", "PodProxyOptions", True),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("services/proxy", "ServiceProxyOptions", True)]
GROUPS = {"apps/v1": [("statefulsets", "StatefulSet", True)], "batch/v1": [("jobs", "Job", True)]}
KINDS = dict((plural, kind) for plural, kind, _ns in CORE + [item for items in GROUPS.values() for item in items])
OBJECT_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[a-z.]+/v1))(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)/(?P<name>[^/]+)$")
LIST_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[a-z.]+/v1))(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)$")
PROXY_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<kind>pods|services)/(?P<name>[^/:]+):(?P<port>\d+)/proxy(?P<path>/.*)$")
POD_LOG_PATH = re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/log$")
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".collections"))
REVISION_LABEL = "controller-revision-hash"
FILTERS = load_filters()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        """Keep the test output clean; the server records requests itself."""


def _resource_list(group_version, resources):
    return {"kind": "APIResourceList", "groupVersion": group_version, "resources": [
        {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
        for name, kind, namespaced in resources]}


def _merge_patch(target, patch):
    """RFC 7386 JSON merge patch (enough for strategic merge patches of scalar fields too)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _timestamp(seconds_from_now=0.0):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _partition(sts):
    spec = sts.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return spec.get("replicas", 1)
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def _selected(obj, selector):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        key, _sep, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeApiServer:
    def __init__(self, pd_members=3, rolled_out=True, tikv_stores=3, tiflash_stores=2, captures=2,
                 ready_after=0.0, terminate_after=0.0, namespace="tidb", transport="proxy"):
        self.rules = [(rule, namespace) for rule in FILTERS.rbac_rules(transport)] + [
            (dict(rule, resourceNames=[namespace]) if "resourceNames" in rule else rule, None) for rule in FILTERS.NAMESPACE_RULES]
        self.forbidden = []
        self.cluster_requests = []
        self.changefeeds = {}  # TiCDC's changefeeds by id: create and read (GET, POST /api/v2/changefeeds)
        self.job_runs = []  # names of the Jobs whose pod ran
        self.created = []  # bodies of the objects created with POST
        self._job_dir = tempfile.mkdtemp(prefix="fake-kubelet-")
        self.objects = {}
        self.requests = []
        self.patches = []
        self.dry_runs = []
        self.deletions = []
        self.events = []
        self.pd_members = pd_members
        self.pd_leader = "tidb-pd-0"
        self.rolled_out = rolled_out
        self.tikv_stores = tikv_stores
        self.tiflash_stores = tiflash_stores
        self.captures = captures
        self.ticdc_owner = 0
        self.pd_removed = []  # names of the deleted PD members
        self.store_state = {}  # store id -> {"state": "Offline" | "Tombstone" | "removed", "regions": n}
        self.offline_regions = 12
        self.region_step = 3
        self.pd_events = []
        self.ready_after = ready_after
        self.terminate_after = terminate_after
        self.revisions = {}  # revision name -> pod template (the ControllerRevisions)
        self._pod_clock = {}  # pod path -> {"created": t, "gone": t or None}
        self._lock = threading.RLock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler)
        self.url = "http://127.0.0.1:%d" % self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()

    def kubeconfig(self, path):
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                  "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                  "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                  "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}
        path.write_text(yaml.safe_dump(config))
        return str(path)

    def mutations(self):
        """Requests that change something (a dry run is recorded as ``PATCH(dry-run)`` and changes nothing)."""
        return [(method, path) for method, path in self.requests if method not in ("GET", "HEAD", "PATCH(dry-run)")]

    def statefulset(self, name, namespace="tidb"):
        return self.objects["/apis/apps/v1/namespaces/%s/statefulsets/%s" % (namespace, name)]

    def pods(self, set_name, namespace="tidb"):
        """{pod name: pod} of a StatefulSet."""
        prefix = "/api/v1/namespaces/%s/pods/%s-" % (namespace, set_name)
        return dict((path.rsplit("/", 1)[1], pod) for path, pod in self.objects.items()
                    if path.startswith(prefix) and path[len(prefix):].isdigit())

    def _json(self, body, status=200):
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _not_found(self):
        return self._json({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                           "message": "not found", "code": 404}, 404)

    def _app(self, environ, start_response):
        request = Request(environ)
        if request.host != self.url.split("://", 1)[1]:
            # A pod's request to a cluster DNS name, through http_proxy (a Job's module).
            with self._lock:
                self.cluster_requests.append((request.method, request.host + request.path))
                name = request.host.split(":", 1)[0].split(".", 1)[0]
                self._reconcile()
                response = self._proxy(request, name, request.path)
            return response(environ, start_response)
        with self._lock:
            dry = request.method == "PATCH" and "dryRun" in request.args
            self.requests.append(("PATCH(dry-run)" if dry else request.method, request.path))
            denied = self._denied(request)
            if denied:
                self.forbidden.append(denied)
                return self._json({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                                   "message": denied, "code": 403}, 403)(environ, start_response)
            self._reconcile()
            response = self._route(request)
        return response(environ, start_response)

    def _attributes(self, request):
        """RBAC's view of a request: [(api group, resource, namespace, name, verb)], or [] for discovery."""
        path, method = request.path, request.method
        proxy = PROXY_PATH.match(path)
        if proxy:
            verb = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
            return [("", proxy.group("kind") + "/proxy", proxy.group("ns"), proxy.group("name"), verb)]
        if POD_LOG_PATH.match(path):
            parts = path.split("/")
            return [("", "pods/log", parts[4], parts[6], "get")]
        match = OBJECT_PATH.match(path) or LIST_PATH.match(path)
        if not match:
            return []
        group = (match.group("group") or "").split("/")[0]
        name = match.groupdict().get("name")
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        found = [(group, match.group("plural"), match.group("ns"), name, verb)]
        if method == "PATCH" and name and path not in self.objects and "dryRun" not in request.args:
            found.append((group, match.group("plural"), match.group("ns"), name, "create"))  # an apply that creates
        return found

    def _denied(self, request):
        for group, resource, namespace, name, verb in self._attributes(request):
            allowed = any(group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
                          and (scope is None or scope == namespace) and (name in rule.get("resourceNames", [name]))
                          for rule, scope in self.rules)
            if not allowed:
                return 'User "tidbops" cannot %s resource "%s" in API group "%s" in the namespace "%s" (name %s)' % (
                    verb, resource, group, namespace, name)
        return None

    def _route(self, request):
        path = request.path
        if path == "/version":
            return self._json({"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
        if path == "/api":
            return self._json({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            return self._json({"kind": "APIGroupList", "groups": [
                {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": "v1"}],
                 "preferredVersion": {"groupVersion": gv, "version": "v1"}} for gv in GROUPS]})
        if path == "/api/v1":
            return self._json(_resource_list("v1", CORE))
        if path.startswith("/apis/") and path[len("/apis/"):] in GROUPS:
            group_version = path[len("/apis/"):]
            return self._json(_resource_list(group_version, GROUPS[group_version]))
        proxy = PROXY_PATH.match(path)
        if proxy:
            return self._proxy(request, proxy.group("name"), proxy.group("path"))
        if OBJECT_PATH.match(path):
            return self._object(request, path)
        listing = LIST_PATH.match(path)
        if listing and request.method == "GET":
            return self._list(path, listing.group("plural"), request.args.get("labelSelector"))
        if listing and request.method == "POST":
            return self._create(path, json.loads(request.get_data(as_text=True)))
        log = POD_LOG_PATH.match(path)
        if log and request.method == "GET":
            pod = self.objects.get(path[:-len("/log")])
            return Response(pod["log"], content_type="text/plain") if pod else self._not_found()
        return self._json({"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}, 404)

    # ---- objects ------------------------------------------------------------------------------

    def _create(self, collection, body):
        path = "%s/%s" % (collection, body["metadata"]["name"])
        if path in self.objects:
            return self._json({"kind": "Status", "status": "Failure", "reason": "AlreadyExists", "code": 409}, 409)
        self.created.append(copy.deepcopy(body))
        created = self._store(path, None, copy.deepcopy(body), False)
        if created.get("kind") == "Job":
            threading.Thread(target=self._run_job, args=(path,), daemon=True).start()
        return self._json(created, 201)

    def _run_job(self, job_path):
        """The kubelet's part: wait for the pod's Secret, run its command here, keep its output as the log."""
        with self._lock:
            job = copy.deepcopy(self.objects[job_path])
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        spec = job["spec"]["template"]["spec"]
        container = spec["containers"][0]
        secret_name = spec["volumes"][0]["secret"]["secretName"]
        mount = container["volumeMounts"][0]["mountPath"]
        secret_path = "/api/v1/namespaces/%s/secrets/%s" % (namespace, secret_name)
        deadline = time.monotonic() + 10
        while secret_path not in self.objects and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._lock:
            secret = copy.deepcopy(self.objects.get(secret_path))
        root = os.path.join(self._job_dir, name)
        os.makedirs(root)
        for key, text in ((secret or {}).get("stringData") or {}).items():
            with open(os.path.join(root, key), "w", encoding="utf-8") as handle:
                handle.write(text)
        command = [sys.executable] + [arg.replace(mount, root) for arg in container["command"][1:]]
        env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
        env.update(PYTHONPATH=COLLECTIONS, HOME=root, http_proxy=self.url, https_proxy=self.url)
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        with self._lock:
            self.job_runs.append(name)
            pod = {"apiVersion": "v1", "kind": "Pod", "log": run.stdout + run.stderr,
                   "metadata": {"name": "%s-%s" % (name, uuid.uuid4().hex[:5]), "namespace": namespace,
                                "labels": dict(job["spec"]["template"]["metadata"]["labels"], **{"job-name": name})},
                   "status": {"phase": "Succeeded" if run.returncode == 0 else "Failed"}}
            self.objects["/api/v1/namespaces/%s/pods/%s" % (namespace, pod["metadata"]["name"])] = pod
            if job_path in self.objects:
                self.objects[job_path]["status"] = {"succeeded": 1} if run.returncode == 0 else {"failed": 1}

    def _list(self, path, plural, selector):
        items = [obj for key, obj in sorted(self.objects.items())
                 if key.startswith(path + "/") and "/" not in key[len(path) + 1:] and _selected(obj, selector)]
        return self._json({"kind": "%sList" % KINDS.get(plural, "Object"), "apiVersion": "v1",
                           "metadata": {"resourceVersion": "1"}, "items": items})

    def _object(self, request, path):
        if request.method == "GET":
            return self._json(self.objects[path]) if path in self.objects else self._not_found()
        if request.method == "PATCH":
            return self._patch(request, path)
        if request.method == "DELETE":
            self.deletions.append(path)
            if path not in self.objects:
                return self._not_found()
            if "/pods/" in path:
                self.events.append(("delete", path.rsplit("/", 1)[1]))
                return self._json(self._terminate(path))
            obj = self.objects.pop(path)
            if obj.get("kind") == "Job":
                # The garbage collector: its pods, and the Secrets it owns.
                uid = obj["metadata"]["uid"]
                for key, other in list(self.objects.items()):
                    owners = [ref.get("uid") for ref in other.get("metadata", {}).get("ownerReferences") or []]
                    if uid in owners or (other.get("kind") == "Pod" and other["metadata"].get("labels", {}).get("job-name") == obj["metadata"]["name"]):
                        self.objects.pop(key)
            if obj.get("kind") == "StatefulSet":
                # The garbage collector removes its pods (the claims stay).
                for pod in self.pods(obj["metadata"]["name"], obj["metadata"].get("namespace", "default")):
                    self.objects.pop("/api/v1/namespaces/%s/pods/%s" % (obj["metadata"].get("namespace", "default"), pod))
            return self._json(obj)
        return self._json({"kind": "Status", "code": 405}, 405)

    def _patch(self, request, path):
        patch = yaml.safe_load(request.get_data(as_text=True))
        dry = "dryRun" in request.args
        old = self.objects.get(path)
        if request.content_type.startswith("application/apply-patch"):
            # Server-side apply of a whole object by its one manager: the applied fields replace the old ones.
            new = copy.deepcopy(patch)
            if old:
                for key in ("uid", "creationTimestamp", "generation"):
                    if key in old["metadata"]:
                        new["metadata"][key] = old["metadata"][key]
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
        else:
            if old is None:
                return self._not_found()
            new = _merge_patch(old, patch)
        new = self._store(path, old, new, dry)
        if dry:
            self.dry_runs.append((path, request.content_type, dict(request.args)))
        else:
            self.patches.append((path, request.content_type, dict(request.args)))
        return self._json(new)

    def _store(self, path, old, new, dry):
        meta = new.setdefault("metadata", {})
        if old is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _timestamp())
            meta["generation"] = 1
        elif old.get("spec") != new.get("spec"):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        if new.get("kind") == "StatefulSet":
            template = new["spec"]["template"]
            digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode("utf-8")).hexdigest()[:10]
            revision = "%s-%s" % (meta["name"], digest)
            status = new.setdefault("status", {"replicas": 0, "observedGeneration": 0, "currentRevision": revision})
            status["updateRevision"] = revision
            if dry:
                return new
            self.revisions[revision] = copy.deepcopy(template)
            if old is None or _partition(old) != _partition(new):
                self.events.append(("partition", meta["name"], _partition(new)))
        if dry:
            return new
        self.objects[path] = new
        self._claims(new)
        return new

    def _claims(self, body):
        """The PVCs a StatefulSet controller creates from volumeClaimTemplates: <template>-<sts>-<ordinal>."""
        if body.get("kind") != "StatefulSet":
            return
        namespace = body["metadata"].get("namespace", "default")
        for template in body["spec"].get("volumeClaimTemplates") or []:
            for ordinal in range(body["spec"]["replicas"]):
                name = "%s-%s-%d" % (template["metadata"]["name"], body["metadata"]["name"], ordinal)
                self.objects["/api/v1/namespaces/%s/persistentvolumeclaims/%s" % (namespace, name)] = {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": name, "namespace": namespace}, "spec": template["spec"]}

    # ---- the StatefulSet controller -----------------------------------------------------------

    def _terminate(self, path):
        pod = self.objects[path]
        if not pod["metadata"].get("deletionTimestamp"):
            pod["metadata"]["deletionTimestamp"] = _timestamp()
            self._pod_clock[path]["gone"] = time.monotonic() + self.terminate_after
        return pod

    def _create_pod(self, sts, ordinal, revision):
        namespace = sts["metadata"].get("namespace", "default")
        name = "%s-%d" % (sts["metadata"]["name"], ordinal)
        template = self.revisions[revision]
        labels = dict(template["metadata"].get("labels") or {})
        labels.update({REVISION_LABEL: revision, "statefulset.kubernetes.io/pod-name": name})
        path = "/api/v1/namespaces/%s/pods/%s" % (namespace, name)
        self.objects[path] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "labels": labels,
                         "annotations": dict(template["metadata"].get("annotations") or {}),
                         "creationTimestamp": _timestamp(),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts["metadata"]["name"],
                                              "uid": sts["metadata"]["uid"], "controller": True}]},
            "spec": copy.deepcopy(template["spec"]),
            "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]},
        }
        self._pod_clock[path] = {"created": time.monotonic(), "gone": None}
        self.events.append(("create", name, revision))

    def _pod_ready(self, path, now):
        clock = self._pod_clock[path]
        return self.rolled_out and clock["gone"] is None and now >= clock["created"] + self.ready_after

    def _reconcile(self):
        now = time.monotonic()
        for path in sorted(self.objects):
            if self.objects[path].get("kind") == "StatefulSet" and "/statefulsets/" in path:
                self._reconcile_set(self.objects[path], now)

    def _reconcile_set(self, sts, now):
        namespace = sts["metadata"].get("namespace", "default")
        name = sts["metadata"]["name"]
        replicas = sts["spec"]["replicas"]
        held = _partition(sts)
        status = sts["status"]
        update = status["updateRevision"]
        current = status.get("currentRevision") or update

        def pod_path(ordinal):
            return "/api/v1/namespaces/%s/pods/%s-%d" % (namespace, name, ordinal)

        pods = dict((int(pod_name.rsplit("-", 1)[1]), pod) for pod_name, pod in self.pods(name, namespace).items())
        for ordinal in list(pods):
            gone = self._pod_clock[pod_path(ordinal)]["gone"]
            if gone is not None and now >= gone:
                del self.objects[pod_path(ordinal)]
                del pods[ordinal]
        for ordinal in [o for o in pods if o >= replicas]:
            self._terminate(pod_path(ordinal))
        for ordinal in range(replicas):
            if ordinal not in pods:
                self._create_pod(sts, ordinal, current if ordinal < held else update)
                pods[ordinal] = self.objects[pod_path(ordinal)]
        for ordinal in range(replicas - 1, held - 1, -1):
            pod = pods[ordinal]
            if pod["metadata"]["labels"][REVISION_LABEL] != update and not pod["metadata"].get("deletionTimestamp"):
                self._terminate(pod_path(ordinal))
                self.events.append(("replace", pod["metadata"]["name"]))
                break
            if not self._pod_ready(pod_path(ordinal), now):
                break
        ready = 0
        for ordinal, pod in pods.items():
            is_ready = self._pod_ready(pod_path(ordinal), now)
            ready += is_ready
            running = is_ready or bool(pod["metadata"].get("deletionTimestamp"))
            pod["status"] = {"phase": "Running" if running else "Pending",
                             "conditions": [{"type": "Ready", "status": "True" if is_ready else "False"}]}
        revisions = [pods[o]["metadata"]["labels"][REVISION_LABEL] for o in range(replicas) if o in pods]
        if len(revisions) == replicas and all(revision == update for revision in revisions):
            current = update
        status.update({"observedGeneration": sts["metadata"]["generation"], "replicas": len(pods), "readyReplicas": ready,
                       "updatedReplicas": sum(1 for pod in pods.values() if pod["metadata"]["labels"][REVISION_LABEL] == update),
                       "currentReplicas": sum(1 for pod in pods.values() if pod["metadata"]["labels"][REVISION_LABEL] == current),
                       "currentRevision": current, "updateRevision": update})

    # ---- the component APIs through the proxy --------------------------------------------------

    def _proxy(self, request, name, path):
        if name.startswith("tidb-pd"):
            return self._pd(request, path)
        if name.startswith("tidb-tikv") and path in ("/status", "/ready"):
            return Response("", status=200)
        if name.startswith("tidb-tidb") and path == "/status":
            return self._json({"connections": 0, "version": "8.0.11-TiDB-v8.5.0", "git_hash": "fake"})
        if name.startswith("tidb-tiflash") and path == "/tiflash/store-status":
            return Response("Running", status=200)
        if name.startswith("tidb-ticdc"):
            return self._ticdc(request, name, path)
        return self._json({"error": "unknown path %s on %s" % (path, name)}, 404)

    def _capture_ids(self):
        """The captures that run: all of them, less those whose pod its StatefulSet scaled away."""
        ids = list(range(self.captures))
        sts = self.objects.get("/apis/apps/v1/namespaces/tidb/statefulsets/tidb-ticdc")
        if sts is not None:
            ids = [i for i in ids if i < sts["spec"]["replicas"]]
        return ids

    def _ticdc(self, request, name, path):
        running = self._capture_ids()
        owner = self.ticdc_owner if self.ticdc_owner in running else (running or [None])[0]
        if path in ("/status", "/api/v2/status"):
            return self._json({"version": "v8.5.6", "git_hash": "fake", "id": name, "cluster_id": "default", "pid": 1,
                               "is_owner": name == "tidb-ticdc-%s" % owner, "liveness": 0})
        if path == "/api/v2/health":
            return self._json({})
        if path == "/api/v2/changefeeds" and request.method == "POST":
            body = json.loads(request.get_data(as_text=True))
            self.changefeeds[body["changefeed_id"]] = {"id": body["changefeed_id"], "state": "normal", "sink_uri": body["sink_uri"],
                                                       "config": body.get("replica_config") or {}}
            return self._json(self.changefeeds[body["changefeed_id"]])
        if path.startswith("/api/v2/changefeeds/") and request.method == "GET":
            feed = self.changefeeds.get(path.rsplit("/", 1)[1])
            if feed is None:
                return self._json({"error_msg": "changefeed not exists", "error_code": "CDC:ErrChangeFeedNotExists"}, 400)
            return self._json(feed)
        if path == "/api/v2/captures":
            items = [{"id": "tidb-ticdc-%d" % i, "is_owner": i == owner, "cluster_id": "default",
                      "address": "tidb-ticdc-%d.tidb-ticdc-peer.tidb.svc:8300" % i} for i in running]
            return self._json({"total": len(items), "items": items})
        if path == "/api/v1/owner/resign" and request.method == "POST":
            others = [i for i in running if i != owner]
            self.ticdc_owner = others[0] if others else owner
            return self._json({})
        if path == "/api/v1/captures/drain" and request.method == "PUT":
            body = json.loads(request.get_data(as_text=True) or "{}")
            if body.get("capture_id") not in ["tidb-ticdc-%d" % i for i in running]:
                return self._json({"error_msg": "capture not found", "error_code": "CDC:ErrCaptureNotExist"}, 400)
            if body["capture_id"] == "tidb-ticdc-%s" % owner:
                return self._json({"error_msg": "cannot drain the owner", "error_code": "CDC:ErrSchedulerRequestFailed"}, 400)
            return self._json({"current_table_count": 0}, 202)
        return self._json({"error_msg": "unknown path %s" % path, "error_code": "CDC:ErrAPIInvalidParam"}, 400)

    def _pd_event(self, what, who):
        self.pd_events.append((len(self.requests) - 1, what, who))

    def _all_stores(self):
        """Every store PD knows, with its state; Offline ones lose regions as PD moves them away."""
        stores = [{"store": {"id": 1 + i, "address": "tidb-tikv-%d.tidb-tikv-peer.tidb.svc:20160" % i,
                             "status_address": "tidb-tikv-%d.tidb-tikv-peer.tidb.svc:20180" % i,
                             "state_name": "Up"}, "status": {}} for i in range(self.tikv_stores)]
        stores += [{"store": {"id": 100 + i, "address": "tidb-tiflash-%d.tidb-tiflash-peer.tidb.svc:3930" % i,
                              "labels": [{"key": "engine", "value": "tiflash"}], "state_name": "Up"}, "status": {}}
                   for i in range(self.tiflash_stores)]
        found = []
        for entry in stores:
            state = self.store_state.get(entry["store"]["id"])
            if state is None:
                found.append(entry)
            elif state["state"] != "removed":
                entry["store"]["state_name"] = state["state"]
                entry["status"] = {"region_count": state["regions"], "leader_count": 0}
                found.append(entry)
        return found

    def _read_stores(self, states):
        """``GET /pd/api/v1/stores``: every store but the tombstones, or those of ``states`` (0 Up, 1
        Offline, 2 Tombstone); each read moves regions off the Offline stores."""
        for store_id, state in sorted(self.store_state.items()):
            if state["state"] == "Offline":
                state["regions"] = max(state["regions"] - self.region_step, 0)
                if state["regions"] == 0:
                    state["state"] = "Tombstone"
                    self._pd_event("tombstone", store_id)
        codes = {"Up": "0", "Offline": "1", "Tombstone": "2"}
        stores = [entry for entry in self._all_stores()
                  if (codes[entry["store"]["state_name"]] in states if states else entry["store"]["state_name"] != "Tombstone")]
        return {"count": len(stores), "stores": stores}

    def _offline(self, store_id):
        """``DELETE /pd/api/v1/store/{id}``: Up -> Offline, refused below max-replicas Up TiKV stores."""
        store = next((entry["store"] for entry in self._all_stores() if str(entry["store"]["id"]) == store_id), None)
        if store is None:
            return self._json("[PD:core:ErrStoreNotFound]store %s not found" % store_id, 404)
        if store["state_name"] == "Tombstone":
            return self._json("[PD:core:ErrStoreRemoved]store %s has been removed" % store_id, 410)
        if store["state_name"] == "Up":
            tiflash = bool(store.get("labels"))
            up = [entry for entry in self._all_stores()
                  if entry["store"]["state_name"] == "Up" and bool(entry["store"].get("labels")) == tiflash]
            if not tiflash and len(up) - 1 < 3:
                return self._json("[PD:core:ErrStoresNotEnough]can not remove store %s since the number of up stores "
                                  "would be %d while need 3" % (store_id, len(up) - 1), 400)
            self.store_state[store["id"]] = {"state": "Offline", "regions": self.offline_regions}
            self._pd_event("offline", store["id"])
        return self._json("The store is set as Offline.")

    def _pd(self, request, path):
        members = [{"name": "tidb-pd-%d" % i, "member_id": 1000 + i, "health": True,
                    "client_urls": ["http://tidb-pd-%d.tidb-pd-peer.tidb.svc:2379" % i]} for i in range(self.pd_members)]
        members = [member for member in members if member["name"] not in self.pd_removed]
        leader = next((member for member in members if member["name"] == self.pd_leader), members[0])
        if path == "/pd/api/v1/health":
            return self._json(members)
        if path == "/pd/api/v1/members":
            return self._json({"header": {"cluster_id": 7}, "members": members, "leader": leader, "etcd_leader": leader})
        if path == "/pd/api/v1/leader":
            return self._json(leader)
        if path.startswith("/pd/api/v1/leader/transfer/") and request.method == "POST":
            self.pd_leader = path.rsplit("/", 1)[1]
            self._pd_event("leader", self.pd_leader)
            return self._json("The transfer command is submitted.")
        if path == "/pd/api/v1/leader/resign" and request.method == "POST":
            others = [member["name"] for member in members if member["name"] != leader["name"]]
            if not others:
                return self._json("no other member to resign to", 500)
            self.pd_leader = others[0]
            self._pd_event("leader", self.pd_leader)
            return self._json("The resign command is submitted.")
        if path.startswith("/pd/api/v1/members/name/") and request.method == "DELETE":
            name = path.rsplit("/", 1)[1]
            if name not in [member["name"] for member in members]:
                return self._json("[PD:member:ErrMemberNotFound]member %s not found" % name, 404)
            self.pd_removed.append(name)
            self._pd_event("member-delete", name)
            if name == leader["name"]:
                self.pd_leader = next(member["name"] for member in members if member["name"] != name)
                self._pd_event("leader", self.pd_leader)
            return self._json("The PD member %s is removed." % name)
        if path == "/pd/api/v1/stores" and request.method == "GET":
            return self._json(self._read_stores(request.args.getlist("state")))
        if path.startswith("/pd/api/v1/store/") and request.method == "DELETE":
            return self._offline(path.rsplit("/", 1)[1])
        if path == "/pd/api/v1/stores/remove-tombstone" and request.method == "DELETE":
            gone = sorted(store_id for store_id, state in self.store_state.items() if state["state"] == "Tombstone")
            for store_id in gone:
                self.store_state[store_id]["state"] = "removed"
            self._pd_event("remove-tombstone", gone)
            return self._json("Remove tombstone successfully.")
        if path == "/pd/api/v1/config/rules/group/tiflash":
            return self._json([])
        if path == "/pd/api/v1/config/replicate":
            return self._json({"max-replicas": 3, "location-labels": "", "strictly-match-label": "false",
                               "enable-placement-rules": "true", "enable-placement-rules-cache": "false", "isolation-level": ""})
        if path == "/pd/api/v2/readyz":
            return Response("ok\n", status=200)
        if path == "/v3/kv/range" and request.method == "POST":
            # PD's etcd: no marker of a leader eviction (etcd omits kvs when nothing matches).
            return self._json({"header": {"cluster_id": "7", "revision": "1"}})
        return self._json({"error": "unknown path %s" % path}, 404)
