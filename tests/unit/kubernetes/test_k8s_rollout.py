"""StatefulSet/Job rollout predicates (partition-aware, per pod), how restart.yml replaces one pod, the waiter
(injected read and clock), and the module with a mocked client."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.tidbops.cluster.plugins.module_utils import _k8s_rollout as rollout
from ansible_collections.tidbops.cluster.plugins.module_utils import _waiter
from ansible_collections.tidbops.cluster.plugins.modules import k8s_rollout as module


def sts(replicas=3, generation=2, observed=2, ready=3, updated=3, current="r2", update="r2", running=None, partition=None):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/component": "pd"}}}
    if partition is not None:
        spec["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
    return {"metadata": {"name": "tidb-pd", "generation": generation}, "spec": spec,
            "status": {"observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": updated,
                       "replicas": replicas if running is None else running,
                       "currentRevision": current, "updateRevision": update}}


def pod(ordinal, revision="r2", ready=True, uid=None, terminating=False):
    meta = {"name": "tidb-pd-%d" % ordinal, "uid": uid or "uid-%d" % ordinal,
            "labels": {"app.kubernetes.io/component": "pd", "controller-revision-hash": revision}}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pods(*revisions, **ready):
    return [pod(i, revision, ready.get("ready%d" % i, True)) for i, revision in enumerate(revisions)]


@pytest.mark.parametrize("obj, state, reason", [
    (sts(), "ready", "3/3 replicas ready"),
    (None, "waiting", "not found"),
    (sts(observed=1), "waiting", "observedGeneration 1 < generation 2"),
    (sts(updated=2), "waiting", "updatedReplicas 2/3"),
    (sts(ready=2), "waiting", "readyReplicas 2/3"),
    (sts(current="r1"), "waiting", "currentRevision r1 != updateRevision r2"),
    (sts(replicas=2, ready=2, updated=2, running=3), "waiting", "3 replicas still running, 2 desired"),
    ({"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {}}, "waiting", "observedGeneration 0 < generation 1"),
])
def test_statefulset_status(obj, state, reason):
    got_state, got_reason = rollout.statefulset_status(obj)
    assert got_state == state and reason in got_reason


@pytest.mark.parametrize("obj, state, reason", [
    # Partition 3 over 3 replicas: nothing needs to be updated, every replica ready.
    (sts(partition=3, updated=0, current="r1"), "ready", "0 at revision r2 (partition 3)"),
    (sts(partition=1, updated=1, current="r1"), "waiting", "updatedReplicas 1/2 (partition 1)"),
    (sts(partition=1, updated=2, current="r1"), "ready", "3/3 replicas ready"),
    (sts(partition=0, updated=3, current="r1"), "waiting", "currentRevision r1 != updateRevision r2"),
])
def test_statefulset_status_with_a_partition(obj, state, reason):
    got_state, got_reason = rollout.statefulset_status(obj)
    assert got_state == state and reason in got_reason


@pytest.mark.parametrize("obj, items, state, reason", [
    (sts(), pods("r2", "r2", "r2"), "ready", "3/3 pods at revision r2 ready"),
    # Held below the partition at the old revision: left as they are, Ready or not.
    (sts(partition=3), pods("r1", "r1", "r1", ready1=False), "ready", "tidb-pd-0, tidb-pd-1, tidb-pd-2 held at an older revision below partition 3"),
    (sts(partition=2), pods("r1", "r1", "r2"), "ready", "1/3 pods at revision r2 ready"),
    # At or above the partition: updated and Ready.
    (sts(partition=2), pods("r1", "r1", "r1"), "waiting", "pod tidb-pd-2 at revision r1, not yet r2"),
    (sts(partition=2), pods("r1", "r1", "r2", ready2=False), "waiting", "pod tidb-pd-2 not Ready"),
    # Below the partition at the update revision: Ready too.
    (sts(partition=3), pods("r2", "r1", "r1", ready0=False), "waiting", "pod tidb-pd-0 not Ready"),
    (sts(), pods("r2", "r2"), "waiting", "pod tidb-pd-2 not created yet"),
    (sts(replicas=2), pods("r2", "r2", "r2"), "waiting", "1 pods beyond the 2 desired"),
    (sts(), [pod(0), pod(1), pod(2, terminating=True)], "waiting", "pod tidb-pd-2 is terminating"),
    (sts(observed=1), pods("r2", "r2", "r2"), "waiting", "observedGeneration 1 < generation 2"),
    (sts(update=None), pods("r2", "r2", "r2"), "waiting", "no updateRevision"),
    # Pods of other names (another StatefulSet's, a Job's) do not count.
    (sts(), pods("r2", "r2", "r2") + [{"metadata": {"name": "tidb-pd-bucket-x", "labels": {}}}], "ready", "3/3"),
])
def test_statefulset_status_per_pod(obj, items, state, reason):
    got_state, got_reason = rollout.statefulset_status(obj, items)
    assert got_state == state and reason in got_reason


def test_pending_pods_are_those_at_another_revision():
    assert rollout.pending_pods(sts(partition=2), pods("r1", "r1", "r2")) == ["tidb-pd-0", "tidb-pd-1"]
    assert rollout.pending_pods(sts(), pods("r2", "r2", "r2")) == []


@pytest.mark.parametrize("item, kwargs, state, reason", [
    (pod(2), {}, "ready", "pod tidb-pd-2 Ready at revision r2"),
    (None, {}, "waiting", "pod not created yet"),
    (pod(2, uid="old"), {"replaced_uid": "old"}, "waiting", "the old pod (uid old) is still there"),
    (pod(2, terminating=True), {}, "waiting", "pod tidb-pd-2 is terminating"),
    (pod(2, revision="r1"), {}, "waiting", "pod tidb-pd-2 at revision r1, not yet r2"),
    # A plain restart below the partition comes back at the current revision: it need not be updated.
    (pod(2, revision="r1"), {"updated": False}, "ready", "Ready at revision r1"),
    (pod(2, ready=False), {}, "waiting", "pod tidb-pd-2 not Ready (phase Running)"),
])
def test_pod_status(item, kwargs, state, reason):
    got_state, got_reason = rollout.pod_status(sts(), item, **kwargs)
    assert got_state == state and reason in got_reason


@pytest.mark.parametrize("held, revisions, name, expected", [
    # A roll from partition 3: 2, then 1, then 0, which also ends the roll.
    (3, ("r1", "r1", "r1"), "tidb-pd-2", {"behind": True, "partition": 3, "next_partition": 2, "blocked_by": []}),
    (2, ("r1", "r1", "r2"), "tidb-pd-1", {"behind": True, "partition": 2, "next_partition": 1, "blocked_by": []}),
    (1, ("r1", "r2", "r2"), "tidb-pd-0", {"behind": True, "partition": 1, "next_partition": 0, "blocked_by": []}),
    # No pod below is behind: straight to 0 (the pods below already run the update revision).
    (3, ("r2", "r2", "r1"), "tidb-pd-2", {"behind": True, "next_partition": 0}),
    # Never above the current partition (the controller already replaces pods at or above it).
    (1, ("r1", "r1", "r2"), "tidb-pd-1", {"behind": True, "partition": 1, "next_partition": 1}),
    # Pods of higher ordinals behind block it.
    (3, ("r1", "r1", "r1"), "tidb-pd-0", {"behind": True, "blocked_by": ["tidb-pd-1", "tidb-pd-2"]}),
    # At the update revision: a plain restart, the partition stays.
    (0, ("r2", "r2", "r2"), "tidb-pd-1", {"behind": False, "partition": 0, "next_partition": 0, "uid": "uid-1"}),
])
def test_pod_replacement(held, revisions, name, expected):
    plan = rollout.pod_replacement(sts(partition=held), pods(*revisions), name)
    assert dict((key, plan[key]) for key in expected) == expected


def test_pod_replacement_of_a_missing_pod_and_of_a_stranger():
    plan = rollout.pod_replacement(sts(partition=0), pods("r2", "r2"), "tidb-pd-2")
    assert plan["exists"] is False and plan["behind"] is False and plan["uid"] == ""
    with pytest.raises(ValueError, match="not a pod of the StatefulSet tidb-pd"):
        rollout.pod_replacement(sts(), [], "tidb-tikv-0")


@pytest.mark.parametrize("conditions, state", [
    ([{"type": "Complete", "status": "True"}], "ready"),
    ([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}], "failed"),
    ([{"type": "Complete", "status": "False"}], "waiting"),
    ([], "waiting"),
])
def test_job_status(conditions, state):
    assert rollout.job_status({"status": {"conditions": conditions, "active": 1}})[0] == state


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def deadline(self, timeout, interval=1.0):
        return _waiter.Deadline(timeout, interval, clock=self.clock, sleep=self.sleep)


def reader(sequence):
    items = iter(sequence)

    def read():
        item = next(items)
        if isinstance(item, Exception):
            raise item
        return item
    return read


def test_waiter_retries_transient_errors_until_ready():
    fake = FakeClock()
    read = reader([None, rollout.TransientError("HTTP 503"), sts(ready=1), sts()])
    outcome = rollout.wait_rollout(read, "StatefulSet", "tidb-pd", fake.deadline(60))
    assert outcome["ready"] and outcome["polls"] == 4
    assert fake.sleeps == [1.0, 1.5, 2.25]  # backoff x1.5


def test_waiter_times_out_with_the_last_observation():
    fake = FakeClock()
    outcome = rollout.wait_rollout(lambda: sts(ready=2), "StatefulSet", "tidb-pd", fake.deadline(10))
    assert not outcome["ready"] and outcome["reason"] == "readyReplicas 2/3"
    assert outcome["elapsed"] == 10.0 and outcome["object"]["status"]["readyReplicas"] == 2
    assert sum(fake.sleeps) == 10.0  # never sleeps past the deadline


def test_waiter_stops_at_once_on_a_failed_job():
    fake = FakeClock()
    outcome = rollout.wait_rollout(lambda: {"status": {"conditions": [{"type": "Failed", "status": "True"}]}},
                                   "Job", "tidb-minio-bucket", fake.deadline(60))
    assert outcome["state"] == "failed" and outcome["polls"] == 1 and fake.sleeps == []


def run_module(monkeypatch, capsys, args, sequence, check_mode=False):
    seen = {}

    def fake_reader(_client, kind, name, namespace, pod_name=None):
        seen.update(kind=kind, name=name, namespace=namespace, pod=pod_name)
        return reader(sequence)
    monkeypatch.setattr(module, "_api_client", lambda kubeconfig, context: object())
    monkeypatch.setattr(module, "make_reader", fake_reader)
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out), seen


def observed(obj, items):
    return {"set": obj, "pods": items}


def test_module_reports_ready_without_change(monkeypatch, capsys):
    code, result, seen = run_module(monkeypatch, capsys, {"name": "tidb-pd", "namespace": "tidb", "interval": 0.01},
                                    [observed(sts(), pods("r2", "r2", "r2", ready1=False)), observed(sts(), pods("r2", "r2", "r2"))])
    assert code == 0 and result["ready"] and not result["changed"] and result["polls"] == 2
    assert seen == {"kind": "StatefulSet", "name": "tidb-pd", "namespace": "tidb", "pod": None}
    assert result["pending"] == [] and result["partition"] == 0 and result["update_revision"] == "r2"


def test_module_returns_the_pods_held_at_an_older_revision(monkeypatch, capsys):
    code, result, _seen = run_module(monkeypatch, capsys, {"name": "tidb-pd", "namespace": "tidb"},
                                     [observed(sts(partition=3, updated=0, current="r1"), pods("r1", "r1", "r1"))])
    assert code == 0 and result["ready"]
    assert result["pending"] == ["tidb-pd-0", "tidb-pd-1", "tidb-pd-2"] and result["partition"] == 3


def test_module_fails_with_the_last_observation(monkeypatch, capsys):
    code, result, _seen = run_module(monkeypatch, capsys, {"name": "tidb-pd", "namespace": "tidb", "timeout": 0},
                                     [observed(sts(current="r1", partition=2), pods("r1", "r1", "r1"))])
    assert code == 1 and result["failed"]
    assert "StatefulSet tidb/tidb-pd not ready" in result["msg"] and "pod tidb-pd-2 at revision r1, not yet r2" in result["msg"]
    assert result["status"]["currentRevision"] == "r1"


def test_module_waits_for_one_pod(monkeypatch, capsys):
    args = {"name": "tidb-pd", "namespace": "tidb", "pod": "tidb-pd-1", "replaced_uid": "old", "interval": 0.01}
    sequence = [{"set": sts(), "pod": pod(1, uid="old", terminating=True)}, {"set": sts(), "pod": None},
                {"set": sts(), "pod": pod(1, ready=False)}, {"set": sts(), "pod": pod(1, uid="new")}]
    code, result, seen = run_module(monkeypatch, capsys, args, sequence)
    assert code == 0 and result["ready"] and result["polls"] == 4 and seen["pod"] == "tidb-pd-1"
    assert result["pod"] == {"name": "tidb-pd-1", "uid": "new", "revision": "r2", "ready": True}


def test_module_fails_on_one_pod_with_the_last_observation(monkeypatch, capsys):
    args = {"name": "tidb-pd", "namespace": "tidb", "pod": "tidb-pd-1", "timeout": 0}
    code, result, _seen = run_module(monkeypatch, capsys, args, [{"set": sts(), "pod": pod(1, ready=False)}])
    assert code == 1
    assert result["msg"].startswith("Pod tidb/tidb-pd-1 of StatefulSet tidb-pd not ready after")
    assert result["msg"].endswith("pod tidb-pd-1 not Ready (phase Running)")


def test_module_check_mode_reads_once_and_never_fails(monkeypatch, capsys):
    code, result, _seen = run_module(monkeypatch, capsys, {"name": "tidb-minio-bucket", "namespace": "tidb", "kind": "Job"},
                                     [None], check_mode=True)
    assert code == 0 and not result["ready"] and result["polls"] == 1
