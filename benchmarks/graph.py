# Copyright (c) tidbops.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployment dependency graph and the converge floor it implies.

A step may start only when everything it needs is ready:

    PD -> TiKV -> TiDB -> TiCI meta -> TiCI worker -> TiFlash
                  TiDB -> TiCI's account -> TiCI meta
          TiKV -> TiCDC -> changefeed
    MinIO -> bucket (and TiCI's MinIO user) -> changefeed
             bucket -> TiCI meta

Instances of one component start together, so the topology size does not change the floor.
"""

# node -> the nodes it needs ready first
DEPENDS = {
    "pd": [],
    "tikv": ["pd"],
    "tidb": ["tikv"],
    "minio": [],
    "bucket": ["minio"],
    "ticdc": ["tikv"],
    "changefeed": ["ticdc", "bucket"],
    "account": ["tidb"],
    "tici_meta": ["tidb", "bucket", "account"],
    "tici_worker": ["tici_meta"],
    "tiflash": ["tici_worker"],
}
# Steps that are requests, not containers: they cost no start delay and no container start.
ONE_SHOT = {"bucket", "changefeed", "account"}

# The benchmark's fixed simulator start delays (seconds), per component kind.
START_DELAYS = {"pd": 2, "tikv": 3, "tidb": 2, "minio": 1, "ticdc": 2, "tici_meta": 2, "tici_worker": 1, "tiflash": 3}


def container_env(delays=None):
    """tidb_container_env giving each component kind its simulator start delay.

    The simulated TiCDC also waits TIDBSIM_CDC_INIT_DELAY (default 3 s) after start before its
    coordinator answers; it is zeroed so that the start delay is TiCDC's only delay, as the floor assumes.
    """
    delays = START_DELAYS if delays is None else delays
    env = {kind: {"TIDBSIM_START_DELAY": str(delay)} for kind, delay in delays.items()}
    if "ticdc" in env:
        env["ticdc"]["TIDBSIM_CDC_INIT_DELAY"] = "0"
    return env


def critical_path(container_start_s, delays=None, nodes=None):
    """(floor seconds, path) : the longest chain of start delay + container start through the graph.

    nodes limits the graph (e.g. without TiCI); by default every node counts.
    """
    delays = START_DELAYS if delays is None else delays
    nodes = set(DEPENDS if nodes is None else nodes)
    best = {}

    def finish(node):
        if node not in best:
            cost = 0.0 if node in ONE_SHOT else delays[node] + container_start_s
            before = [finish(need) for need in DEPENDS[node] if need in nodes]
            start, path = max(before, default=(0.0, []))
            best[node] = (start + cost, path + [node])
        return best[node]

    return max(finish(node) for node in nodes)
