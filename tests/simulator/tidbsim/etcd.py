"""Client of etcd's v3 JSON gateway (base64 keys and values).

TiCDC and TiCI reach PD's etcd through PD's client URLs (PD forwards `/v3/*` to its etcd, as the
real PD serves its embedded etcd on the same port); PD itself talks to its own etcd over the
unix socket of etcd's client listener.
"""

import base64
import http.client
import json
import os
import socket

from . import common


def _b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _text(b64):
    return base64.b64decode(b64 or "").decode()


def prefix_end(prefix):
    """The range_end that selects every key starting with prefix."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return bytes(raw)


class EtcdError(OSError):
    """etcd answered with an error (status, gRPC code and message kept)."""

    def __init__(self, status, body):
        try:
            reply = json.loads(body)
        except ValueError:
            reply = {}
        self.status = status
        self.code = reply.get("code")
        self.message = reply.get("message") or reply.get("error") or body[:200].decode(errors="replace")
        super().__init__(f"etcd answered {status}: {self.message}")


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (etcd's `unix://localhost:<n>` client listener)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def unix_call(path, method, url_path, body=None, headers=None, timeout=3.0):
    """One HTTP request over a unix socket. Returns (status, content type, bytes); raises OSError."""
    connection = UnixHTTPConnection(path, timeout)
    try:
        connection.request(method, url_path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", "application/json"), response.read()
    except http.client.HTTPException as exc:
        raise OSError(f"etcd at {path}: {exc!r}") from None
    finally:
        connection.close()


class Etcd:
    """The v3 API through PD client URLs (`pd_urls`) or through etcd's unix socket (`socket_path`)."""

    def __init__(self, pd_urls=None, socket_path=None, timeout=3.0):
        self.pd_urls = pd_urls or []
        self.socket_path = socket_path
        self.timeout = timeout

    def call(self, path, body, timeout=None):
        """POST one gateway request; the parsed reply, or EtcdError / OSError."""
        timeout = timeout or self.timeout
        if self.socket_path:
            status, _type, data = unix_call(self.socket_path, "POST", path, json.dumps(body).encode(),
                                            {"Content-Type": "application/json"}, timeout)
        else:
            status, data = common.first_answer("POST", self.pd_urls, path, body, timeout=timeout,
                                               accept=lambda status: status < 500)
        if status != 200:
            raise EtcdError(status, data)
        # Streaming endpoints (lease keepalive) answer one JSON object per line.
        return json.loads(data.splitlines()[0] if data.strip() else b"{}")

    # ------------------------------------------------------------ keys

    def get_prefix(self, prefix):
        """[(key, value, create_revision)] sorted by key."""
        reply = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        return [(_text(kv["key"]), _text(kv.get("value")), int(kv["create_revision"])) for kv in reply.get("kvs", [])]

    def get(self, key, serializable=False, raw=False):
        """The value of one key (str, or bytes with raw=True), or None."""
        body = {"key": _b64(key)}
        if serializable:
            body["serializable"] = True
        kvs = self.call("/v3/kv/range", body).get("kvs") or []
        if not kvs:
            return None
        value = base64.b64decode(kvs[0].get("value") or "")
        return value if raw else value.decode()

    def put(self, key, value, lease=None):
        body = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = lease
        self.call("/v3/kv/put", body)

    def delete(self, key):
        self.call("/v3/kv/deleterange", {"key": _b64(key)})

    def put_if_absent(self, key, value, lease=None):
        """Txn If(CreateRevision(key) == 0) Then Put: True when this call created the key."""
        put = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = lease
        reply = self.call("/v3/kv/txn", {"compare": [{"key": _b64(key), "target": "CREATE", "create_revision": "0"}],
                                         "success": [{"request_put": put}]})
        return bool(reply.get("succeeded"))

    def compare_and_put(self, key, old, value):
        """Txn If(Value(key) == old) Then Put (old None: the key must be absent). True on success."""
        if old is None:
            compare = {"key": _b64(key), "target": "CREATE", "create_revision": "0"}
        else:
            compare = {"key": _b64(key), "target": "VALUE", "value": _b64(old)}
        reply = self.call("/v3/kv/txn", {"compare": [compare], "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}]})
        return bool(reply.get("succeeded"))

    def put_if_value(self, cond_key, cond_value, puts=(), deletes=()):
        """Txn If(Value(cond_key) == cond_value) Then puts and deletes: PD's LeaderTxn, so a member
        that no longer leads cannot write. True on success."""
        success = [{"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in puts]
        success += [{"request_delete_range": {"key": _b64(k)}} for k in deletes]
        reply = self.call("/v3/kv/txn", {"compare": [{"key": _b64(cond_key), "target": "VALUE", "value": _b64(cond_value)}],
                                         "success": success})
        return bool(reply.get("succeeded"))

    # ------------------------------------------------------------ leases

    def grant(self, ttl):
        return self.call("/v3/lease/grant", {"TTL": ttl})["ID"]

    def keepalive(self, lease):
        """True while the lease lives."""
        return int(self.call("/v3/lease/keepalive", {"ID": lease}).get("result", {}).get("TTL", 0)) > 0

    def revoke(self, lease):
        self.call("/v3/lease/revoke", {"ID": lease})

    # ------------------------------------------------------------ cluster and maintenance

    def members(self, timeout=None):
        """[{ID, name, peerURLs, clientURLs}] (the member's local view, no quorum needed)."""
        return self.call("/v3/cluster/member/list", {}, timeout).get("members") or []

    def member_add(self, peer_urls):
        return self.call("/v3/cluster/member/add", {"peerURLs": list(peer_urls)})

    def status(self, timeout=None):
        """Maintenance status: header.member_id, leader (0 or absent without one), version..."""
        return self.call("/v3/maintenance/status", {}, timeout)

    def move_leader(self, target_id, timeout=None):
        """Transfer raft leadership; only the etcd leader accepts it."""
        return self.call("/v3/maintenance/transfer-leadership", {"targetID": str(target_id)}, timeout)


def socket_path_for(data_dir, name):
    """A path to etcd's socket `data_dir/name` that fits sun_path (108 bytes) however deep data_dir is."""
    path = os.path.join(os.path.abspath(data_dir), name)
    if len(path.encode()) < 100:
        return path
    dir_fd = os.open(os.path.abspath(data_dir), os.O_RDONLY | os.O_DIRECTORY)  # kept open for the process's life
    return f"/proc/self/fd/{dir_fd}/{name}"
