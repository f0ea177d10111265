"""PD's view of regions and their leaders, and the few schedulers a rolling restart meets.

A fixed number of regions (TIDBSIM_REGIONS, default 24), each with up to `max-replicas` peers on
TiKV stores (never on a store with an `engine` label: TiFlash) and one leader among its peers. What
moves them, as the real cluster does (tikv/pd pkg/schedule):

- raft: a region whose leader's store stopped heartbeating for TIDBSIM_RAFT_ELECTION_S seconds
  (or restarted: its peers come back as followers) elects a new leader among the peers that are
  alive, when a majority of its peers is alive; without a majority it keeps the stale leader PD
  last heard of, as PD's view does;
- the replica checker (pkg/schedule/checker/replica_checker.go, rule_checker.go): adds peers on
  Up TiKV stores while a region has fewer than max-replicas, removes extra ones, replaces a peer on
  a Down store when another Up TiKV store is free, and moves the peers off an Offline store (PD's
  "replace offline peer"; a leader there is transferred away first) to Up TiKV stores that do not
  hold the region, at TIDBSIM_REGION_MOVE_PER_S moves per second. Without such a store the peer
  stays, and so does the Offline store, as with real PD;
- evict-leader-scheduler (pkg/schedule/schedulers/evict_leader.go): moves the leaders of its
  stores to another Up peer store that is not evicted itself (an evicted store pauses leader
  transfer *in*), at the shared leader transfer budget;
- balance-leader-scheduler: moves leaders from the store with the most to the one with the least
  (among Up, non-evicted peer stores) while they differ by more than one;
- balance-region-scheduler: moves one non-leader peer per step from the fullest Up TiKV store to
  the emptiest while they differ by more than one.

The model is plain data (JSON in PD's etcd), so a new PD leader continues from exactly where the
last one stopped. Not modelled: region splits and merges, sizes and hot spots, placement rules
other than the count of the default rule (max-replicas), labels and isolation levels, learners
(TiFlash replicas), witness peers.

A store in the model is {"tikv", "up", "alive", "down", "offline"}: "offline" is PD's node state
Removing (metapb NodeState 2): it receives no peer and no leader, and its peers move away. A
Tombstone store is not in the model at all (PD buries a store only once it holds no region).
"""

REGION_SIZE_MB = 1  # an empty region, as in a fresh cluster
REPLICA_OPS_PER_STEP = 64  # PD's replica-schedule-limit


class RegionModel:
    """regions: [{"id": n, "peers": [store ids], "leader": store id or 0}]."""

    def __init__(self, regions=None):
        self.regions = [dict(r, peers=list(r["peers"])) for r in regions or []]
        self.moved = 0  # peers moved off Offline stores by the last step()

    # ------------------------------------------------------------ data

    @classmethod
    def from_json(cls, data):
        return cls((data or {}).get("regions") or [])

    def to_json(self):
        return {"regions": self.regions}

    def counts(self):
        """({store: leaders}, {store: peers})."""
        leaders, peers = {}, {}
        for region in self.regions:
            if region["leader"]:
                leaders[region["leader"]] = leaders.get(region["leader"], 0) + 1
            for store in region["peers"]:
                peers[store] = peers.get(store, 0) + 1
        return leaders, peers

    @classmethod
    def bootstrap(cls, count, stores, max_replicas):
        """`count` regions on the serving TiKV stores (the first ones by id), leaders spread over them."""
        serving = sorted(s for s, info in stores.items() if serving_store(info))
        peers = serving[:max(1, max_replicas)]
        if not peers:
            return cls()
        return cls([{"id": index + 1, "peers": list(peers), "leader": peers[index % len(peers)]} for index in range(count)])

    # ------------------------------------------------------------ one scheduling step

    def step(self, stores, max_replicas, budget, schedulers, evicted, restarted=(), move_budget=None):  # pylint: disable=too-many-arguments
        """Apply raft, the replica checker and the schedulers once.

        stores: {id: {"tikv", "up", "alive", "down", "offline"}}; budget: leader transfers allowed
        now; schedulers: enabled scheduler names; evicted: store ids of evict-leader-scheduler;
        restarted: stores whose process restarted since the last step (their leaders are lost);
        move_budget: peers that may move off Offline stores now (None: no limit). Returns
        (changed, transfers used, notes to log); the peers moved are in self.moved.
        """
        notes = []
        changed = self._elect(stores, evicted, set(restarted), notes)
        changed |= self._check_replicas(stores, max_replicas)
        self.moved = self._move_offline(stores, evicted, None if move_budget is None else int(move_budget), notes)
        changed |= bool(self.moved)
        used = 0
        if evicted:
            moved = self._evict(stores, evicted, int(budget))
            used += moved
            changed |= bool(moved)
        if "balance-leader-scheduler" in schedulers:
            moved = self._balance_leaders(stores, evicted, int(budget) - used)
            used += moved
            changed |= bool(moved)
        if "balance-region-scheduler" in schedulers:
            changed |= self._balance_regions(stores)
        return changed, used, notes

    def _leader_target(self, candidates, evicted, stores=None):
        """The candidate that takes a leader: not evicted, not Offline, fewest leaders."""
        leaders, _peers = self.counts()
        return min(candidates, key=lambda s: (s in evicted, bool((stores or {}).get(s, {}).get("offline")), leaders.get(s, 0), s))

    def _elect(self, stores, evicted, restarted, notes):
        """Raft: leaders on dead (or restarted) stores move to an alive peer when a majority is alive."""
        changed = False
        lost = {}
        for region in self.regions:
            leader = region["leader"]
            info = stores.get(leader)
            if leader and info is not None and info["alive"] and leader not in restarted:
                continue
            alive = [p for p in region["peers"] if (stores.get(p) or {}).get("alive")]
            if len(alive) <= len(region["peers"]) // 2:
                continue  # no quorum: the region has no leader; PD keeps showing the last one
            candidates = [p for p in alive if p != leader] or alive
            region["leader"] = self._leader_target(candidates, evicted, stores)
            lost[leader] = lost.get(leader, 0) + 1
            changed = True
        for store, count in sorted(lost.items()):
            why = "restarted" if store in restarted else "stopped heartbeating"
            notes.append(f"store {store} {why}: {count} region leaders re-elected on other stores")
        return changed

    def _check_replicas(self, stores, max_replicas):
        changed = False
        ops = 0
        for region in self.regions:
            if ops >= REPLICA_OPS_PER_STEP:
                break
            peers = region["peers"]
            _leaders, load = self.counts()
            free = sorted((s for s, info in stores.items() if serving_store(info) and s not in peers),
                          key=lambda s: (load.get(s, 0), s))
            gone = [p for p in peers if p not in stores or stores[p]["down"]]
            for peer in gone:
                if not free or peer == region["leader"]:
                    continue
                peers[peers.index(peer)] = free.pop(0)
                ops += 1
                changed = True
            while len(peers) < max_replicas and free:
                peers.append(free.pop(0))
                ops += 1
                changed = True
            while len(peers) > max(1, max_replicas):
                extra = [p for p in peers if p != region["leader"]]
                if not extra:
                    break
                victim = max(extra, key=lambda s: (not (stores.get(s) or {}).get("alive"), bool((stores.get(s) or {}).get("offline")),
                                                   load.get(s, 0), s))
                peers.remove(victim)
                ops += 1
                changed = True
        return changed

    def _move_offline(self, stores, evicted, budget, notes):
        """The replica checker's "replace offline peer": a peer on an Offline store moves to an Up
        TiKV store that does not hold the region (the least loaded); a leader there is first
        transferred to another Up peer that is not evicted. Without a target store, or without a
        peer to take the leadership, the peer stays (PD keeps the store Offline). At most `budget`
        moves (None: no limit). Returns the moves."""
        moved = 0
        per_store = {}
        for region in self.regions:
            if budget is not None and moved >= budget:
                break
            peers = region["peers"]
            offline = [p for p in peers if (stores.get(p) or {}).get("offline") and not stores[p]["down"]]
            if not offline:
                continue
            _leaders, load = self.counts()
            free = sorted((s for s, info in stores.items() if serving_store(info) and s not in peers),
                          key=lambda s, load=load: (load.get(s, 0), s))
            if not free:
                continue
            source = offline[0]
            if region["leader"] == source:
                # An evicted store takes no leader (evict-leader pauses leader transfer in).
                takers = [p for p in peers if p != source and serving_store(stores.get(p)) and p not in evicted]
                if not takers:
                    continue  # nobody can take the leadership: the peer cannot be removed yet
                region["leader"] = self._leader_target(takers, evicted, stores)
            peers[peers.index(source)] = free[0]
            moved += 1
            per_store[source] = per_store.get(source, 0) + 1
        for store, count in sorted(per_store.items()):
            notes.append(f"store {store} is Offline: {count} region peers moved to other stores")
        return moved

    def _evict(self, stores, evicted, budget):
        moved = 0
        for store in sorted(evicted):
            for region in self.regions:
                if moved >= budget:
                    return moved
                if region["leader"] != store:
                    continue
                targets = [p for p in region["peers"] if p != store and p not in evicted and serving_store(stores.get(p))]
                if targets:
                    region["leader"] = self._leader_target(targets, evicted, stores)
                    moved += 1
        return moved

    def _balance_leaders(self, stores, evicted, budget):
        moved = 0
        while moved < budget:
            leaders, peers = self.counts()
            eligible = [s for s, info in stores.items() if serving_store(info) and s not in evicted and peers.get(s)]
            pairs = sorted(((src, dst) for src in eligible for dst in eligible
                            if leaders.get(src, 0) - leaders.get(dst, 0) > 1),
                           key=lambda p: (leaders.get(p[1], 0) - leaders.get(p[0], 0), p))
            for src, dst in pairs:
                region = next((r for r in self.regions if r["leader"] == src and dst in r["peers"]), None)
                if region is not None:
                    region["leader"] = dst
                    moved += 1
                    break
            else:
                return moved
        return moved

    def _balance_regions(self, stores):
        _leaders, load = self.counts()
        serving = [s for s, info in stores.items() if serving_store(info)]
        if len(serving) < 2:
            return False
        src = max(serving, key=lambda s: (load.get(s, 0), s))
        dst = min(serving, key=lambda s: (load.get(s, 0), s))
        if load.get(src, 0) - load.get(dst, 0) <= 1:
            return False
        for region in self.regions:
            if src in region["peers"] and dst not in region["peers"] and region["leader"] != src:
                region["peers"][region["peers"].index(src)] = dst
                return True
        return False


def serving_store(info):
    """A TiKV store PD may move a leader or a peer to: Up (not Offline), and alive as far as raft can tell."""
    return bool(info) and info["tikv"] and info["up"] and info["alive"] and not info.get("offline")
