"""A tiny stand-in for the Kubernetes API server, enough for site.yml and destroy.yml on the
Kubernetes backend without TiCI.

It serves discovery for the kinds the backend applies, stores server-side-applied objects (and
reports StatefulSets as rolled out once they exist, with the PersistentVolumeClaims a StatefulSet
controller would create), deletes objects, and answers, through the pod and Service proxy paths,
what the gates ask of a healthy cluster named ``tidb`` in namespace ``tidb`` (PD, TiKV, TiDB,
TiCDC, TiFlash, placement rules). Every request is recorded so tests can assert order and count.
It is a test double for orchestration, not a validation of Kubernetes semantics.
"""

import json
import re
import threading

import yaml
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

CORE = [("namespaces", "Namespace", False), ("configmaps", "ConfigMap", True), ("secrets", "Secret", True),
        ("services", "Service", True), ("pods", "Pod", True), ("pods/proxy", "PodProxyOptions", True),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("services/proxy", "ServiceProxyOptions", True)]
GROUPS = {"apps/v1": [("statefulsets", "StatefulSet", True)], "batch/v1": [("jobs", "Job", True)]}
OBJECT_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[a-z.]+/v1))(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)/(?P<name>[^/]+)$")
PROXY_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<kind>pods|services)/(?P<name>[^/:]+):(?P<port>\d+)/proxy(?P<path>/.*)$")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        """Keep the test output clean; the server records requests itself."""


def _resource_list(group_version, resources):
    return {"kind": "APIResourceList", "groupVersion": group_version, "resources": [
        {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
        for name, kind, namespaced in resources]}


class FakeApiServer:
    def __init__(self, pd_members=3, rolled_out=True, tikv_stores=3, tiflash_stores=2, captures=2):
        self.objects = {}
        self.requests = []
        self.patches = []
        self.deletions = []
        self.pd_members = pd_members
        self.rolled_out = rolled_out
        self.tikv_stores = tikv_stores
        self.tiflash_stores = tiflash_stores
        self.captures = captures
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
        return [(method, path) for method, path in self.requests if method not in ("GET", "HEAD")]

    def _json(self, body, status=200):
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _app(self, environ, start_response):
        request = Request(environ)
        self.requests.append((request.method, request.path))
        return self._route(request)(environ, start_response)

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
            return self._proxy(proxy.group("name"), proxy.group("path"))
        match = OBJECT_PATH.match(path)
        if match:
            return self._object(request, path)
        return self._json({"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}, 404)

    def _object(self, request, path):
        if request.method == "GET":
            if path in self.objects:
                return self._json(self.objects[path])
            return self._json({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                               "message": "not found", "code": 404}, 404)
        if request.method == "PATCH":
            body = yaml.safe_load(request.get_data(as_text=True))
            self.patches.append((path, request.content_type, dict(request.args)))
            body.setdefault("metadata", {})["generation"] = 1
            if body.get("kind") == "StatefulSet" and self.rolled_out:
                replicas = body["spec"]["replicas"]
                body["status"] = {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
                                  "updatedReplicas": replicas, "currentRevision": "r1", "updateRevision": "r1"}
            self.objects[path] = body
            self._claims(path, body)
            return self._json(body)
        if request.method == "DELETE":
            self.deletions.append(path)
            if path not in self.objects:
                return self._json({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                   "message": "not found", "code": 404}, 404)
            return self._json(self.objects.pop(path))
        return self._json({"kind": "Status", "code": 405}, 405)

    def _claims(self, path, body):
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

    def _proxy(self, name, path):
        if name.startswith("tidb-pd"):
            return self._pd(path)
        if name.startswith("tidb-tikv") and path in ("/status", "/ready"):
            return Response("", status=200)
        if name.startswith("tidb-tidb") and path == "/status":
            return self._json({"connections": 0, "version": "8.0.11-TiDB-v8.5.0", "git_hash": "fake"})
        if name.startswith("tidb-tiflash") and path == "/tiflash/store-status":
            return Response("Running", status=200)
        if name.startswith("tidb-ticdc"):
            return self._ticdc(name, path)
        return self._json({"error": "unknown path %s on %s" % (path, name)}, 404)

    def _ticdc(self, name, path):
        if path in ("/status", "/api/v2/status"):
            return self._json({"version": "v8.5.6", "git_hash": "fake", "id": name, "cluster_id": "default", "pid": 1,
                               "is_owner": name.endswith("-0"), "liveness": 0})
        if path == "/api/v2/health":
            return self._json({})
        if path == "/api/v2/captures":
            items = [{"id": "tidb-ticdc-%d" % i, "is_owner": i == 0, "cluster_id": "default",
                      "address": "tidb-ticdc-%d.tidb-ticdc-peer.tidb.svc:8300" % i} for i in range(self.captures)]
            return self._json({"total": len(items), "items": items})
        return self._json({"error_msg": "unknown path %s" % path, "error_code": "CDC:ErrAPIInvalidParam"}, 400)

    def _stores(self):
        stores = [{"store": {"id": 1 + i, "address": "tidb-tikv-%d.tidb-tikv-peer.tidb.svc:20160" % i,
                             "status_address": "tidb-tikv-%d.tidb-tikv-peer.tidb.svc:20180" % i,
                             "state_name": "Up"}, "status": {}} for i in range(self.tikv_stores)]
        stores += [{"store": {"id": 100 + i, "address": "tidb-tiflash-%d.tidb-tiflash-peer.tidb.svc:3930" % i,
                              "labels": [{"key": "engine", "value": "tiflash"}], "state_name": "Up"}, "status": {}}
                   for i in range(self.tiflash_stores)]
        return {"count": len(stores), "stores": stores}

    def _pd(self, path):
        members = [{"name": "tidb-pd-%d" % i, "member_id": 1000 + i, "health": True,
                    "client_urls": ["http://tidb-pd-%d.tidb-pd-peer.tidb.svc:2379" % i]} for i in range(self.pd_members)]
        if path == "/pd/api/v1/health":
            return self._json(members)
        if path == "/pd/api/v1/members":
            return self._json({"header": {"cluster_id": 7}, "members": members, "leader": members[0],
                               "etcd_leader": members[0]})
        if path == "/pd/api/v1/stores":
            return self._json(self._stores())
        if path == "/pd/api/v1/config/replicate":
            return self._json({"max-replicas": 3, "location-labels": "", "strictly-match-label": "false",
                               "enable-placement-rules": "true", "enable-placement-rules-cache": "false", "isolation-level": ""})
        if path == "/pd/api/v2/readyz":
            return Response("ok\n", status=200)
        return self._json({"error": "unknown path %s" % path}, 404)
