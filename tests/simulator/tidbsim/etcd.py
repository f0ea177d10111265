"""Client of PD's etcd v3 JSON gateway (base64 keys and values), as TiCDC and TiCI use PD's etcd."""

import base64
import json

from . import common


def _b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def prefix_end(prefix):
    """The range_end that selects every key starting with prefix."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return bytes(raw)


class Etcd:
    def __init__(self, pd_urls):
        self.pd_urls = pd_urls

    def _call(self, path, body):
        _status, data = common.first_answer("POST", self.pd_urls, path, body, accept=lambda status: status == 200)
        return json.loads(data)

    def get_prefix(self, prefix):
        """[(key, value, create_revision)] sorted by key."""
        reply = self._call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        return [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")).decode(),
                 int(kv["create_revision"])) for kv in reply.get("kvs", [])]

    def put(self, key, value, lease=None):
        body = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = lease
        self._call("/v3/kv/put", body)

    def delete(self, key):
        self._call("/v3/kv/deleterange", {"key": _b64(key)})

    def grant(self, ttl):
        return self._call("/v3/lease/grant", {"TTL": ttl})["ID"]

    def keepalive(self, lease):
        """True while the lease lives."""
        return int(self._call("/v3/lease/keepalive", {"ID": lease})["result"].get("TTL", 0)) > 0
