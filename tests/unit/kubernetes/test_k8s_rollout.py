"""StatefulSet/Job rollout predicates, the waiter (injected read and clock), and the module with a mocked client."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.tidbops.cluster.plugins.module_utils import _k8s_rollout as rollout
from ansible_collections.tidbops.cluster.plugins.module_utils import _waiter
from ansible_collections.tidbops.cluster.plugins.modules import k8s_rollout as module


def sts(replicas=3, generation=2, observed=2, ready=3, updated=3, current="r2", update="r2", running=None):
    return {"metadata": {"name": "tidb-pd", "generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": updated,
                       "replicas": replicas if running is None else running,
                       "currentRevision": current, "updateRevision": update}}


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

    def fake_reader(_client, kind, name, namespace):
        seen.update(kind=kind, name=name, namespace=namespace)
        return reader(sequence)
    monkeypatch.setattr(module, "_api_client", lambda kubeconfig, context: object())
    monkeypatch.setattr(module, "make_reader", fake_reader)
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out), seen


def test_module_reports_ready_without_change(monkeypatch, capsys):
    code, result, seen = run_module(monkeypatch, capsys, {"name": "tidb-pd", "namespace": "tidb", "interval": 0.01},
                                    [sts(ready=2), sts()])
    assert code == 0 and result["ready"] and not result["changed"] and result["polls"] == 2
    assert seen == {"kind": "StatefulSet", "name": "tidb-pd", "namespace": "tidb"}


def test_module_fails_with_the_last_observation(monkeypatch, capsys):
    code, result, _seen = run_module(monkeypatch, capsys, {"name": "tidb-pd", "namespace": "tidb", "timeout": 0},
                                     [sts(current="r1")])
    assert code == 1 and result["failed"]
    assert "StatefulSet tidb/tidb-pd not ready" in result["msg"] and "currentRevision r1" in result["msg"]
    assert result["status"]["currentRevision"] == "r1"


def test_module_check_mode_reads_once_and_never_fails(monkeypatch, capsys):
    code, result, _seen = run_module(monkeypatch, capsys, {"name": "tidb-minio-bucket", "namespace": "tidb", "kind": "Job"},
                                     [None], check_mode=True)
    assert code == 0 and not result["ready"] and result["polls"] == 1
