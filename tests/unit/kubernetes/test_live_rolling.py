"""Rolling replacement on the Kubernetes backend against the fake API server, which plays the
StatefulSet controller (revisions, partition, pod re-creation; see fake_apiserver.py).

start.yml applies a changed pod template with the partition at the replica count, so Kubernetes
replaces no running pod by itself and every one of them is left pending; restart.yml then moves the
partition down one ordinal at a time, and each pod is re-created only when its turn comes. A plain
restart deletes exactly its pod. A changed config file is a new revision too (the pod template
carries a digest of the files). The backend's entry points run by themselves
(playbooks/backend_roll.yml); test_live_orchestration.py runs the whole roll of site.yml (drain,
restart, gate) through roles/_common.
"""

import json
import os
import shutil

from fake_apiserver import FakeApiServer
from test_live_orchestration import TOP, run

ROLL = os.path.join(TOP, "tests", "unit", "kubernetes", "playbooks", "backend_roll.yml")
STS = "/apis/apps/v1/namespaces/tidb/statefulsets/tidb-pd"
CHANGED = json.dumps({"tidb_container_env": {"pd": {"TIDBOPS_TEST_CHANGE": "1"}}})


def roll(api, tmp_path, *extra, hosts=(), timeout=20, inventory=None):
    """Run backend_roll.yml; return (result, the pending report)."""
    report = tmp_path / "pending.json"
    if report.exists():
        report.unlink()
    args = list(extra) + ["roll_report=%s" % report, json.dumps({"roll_hosts": list(hosts)})]
    result = run(ROLL, api.kubeconfig(tmp_path / "kubeconfig"), timeout, *args, inventory=inventory)
    return result, (json.loads(report.read_text()) if report.exists() else None)


def revisions(api):
    return dict((name, pod["metadata"]["labels"]["controller-revision-hash"]) for name, pod in sorted(api.pods("tidb-pd").items()))


def partition(api):
    return api.statefulset("tidb-pd")["spec"]["updateStrategy"]["rollingUpdate"]["partition"]


def uids(api):
    return dict((name, pod["metadata"]["uid"]) for name, pod in sorted(api.pods("tidb-pd").items()))


def test_a_changed_template_is_held_then_replaced_from_the_highest_ordinal_down(tmp_path):
    # Pods take a moment to terminate and to become Ready, so every wait has to poll.
    with FakeApiServer(ready_after=0.4, terminate_after=0.3) as api:
        first, pending = roll(api, tmp_path)
        assert first.returncode == 0, first.stdout[-3000:]
        assert pending == {"pd-0": False, "pd-1": False, "pd-2": False}
        assert api.events[0] == ("partition", "tidb-pd", 0)  # a new StatefulSet starts every pod at once
        old = api.statefulset("tidb-pd")["status"]["updateRevision"]
        grace = api.statefulset("tidb-pd")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace == 90  # the process spec's stop_grace, not Kubernetes' 30

        api.events.clear()
        rolled, pending = roll(api, tmp_path, CHANGED, hosts=["pd-2", "pd-1", "pd-0"])
        assert rolled.returncode == 0, rolled.stdout[-3000:]
        new = api.statefulset("tidb-pd")["status"]["updateRevision"]
        assert new != old
        # start.yml applied the new template under partition 3 and touched no pod: all three were
        # left pending (the report is written between start.yml and the restarts)...
        assert pending == {"pd-0": True, "pd-1": True, "pd-2": True}
        # ... then each pod is replaced only when the partition reaches it, the highest ordinal first,
        # and the roll leaves the StatefulSet at partition 0.
        assert api.events == [
            ("partition", "tidb-pd", 3),
            ("partition", "tidb-pd", 2), ("replace", "tidb-pd-2"), ("create", "tidb-pd-2", new),
            ("partition", "tidb-pd", 1), ("replace", "tidb-pd-1"), ("create", "tidb-pd-1", new),
            ("partition", "tidb-pd", 0), ("replace", "tidb-pd-0"), ("create", "tidb-pd-0", new),
        ]
        assert partition(api) == 0
        status = api.statefulset("tidb-pd")["status"]
        assert status["currentRevision"] == status["updateRevision"] == new
        assert revisions(api) == {"tidb-pd-0": new, "tidb-pd-1": new, "tidb-pd-2": new}
        # The apply was decided on a dry run of the StatefulSet; the partition moved by merge patches
        # of that one field.
        assert [path for path, _type, args in api.dry_runs if args.get("dryRun") == "All"] == [STS]
        moves = [path for path, content_type, _args in api.patches if content_type == "application/merge-patch+json"]
        assert moves == [STS] * 3

        # Nothing changed since: a plain restart of pd-1 deletes exactly its pod, which comes back.
        before = uids(api)
        api.events.clear()
        api.deletions.clear()
        restarted, pending = roll(api, tmp_path, CHANGED, hosts=["pd-1"])
        assert restarted.returncode == 0, restarted.stdout[-3000:]
        assert pending == {"pd-0": False, "pd-1": False, "pd-2": False}
        assert api.deletions == ["/api/v1/namespaces/tidb/pods/tidb-pd-1"]
        assert api.events == [("delete", "tidb-pd-1"), ("create", "tidb-pd-1", new)]
        after = uids(api)
        assert after["tidb-pd-1"] != before["tidb-pd-1"]
        assert [after["tidb-pd-0"], after["tidb-pd-2"]] == [before["tidb-pd-0"], before["tidb-pd-2"]]
        assert partition(api) == 0


def test_a_pod_cannot_be_replaced_before_the_higher_ordinals(tmp_path):
    with FakeApiServer() as api:
        assert roll(api, tmp_path)[0].returncode == 0
        api.events.clear()
        # Only a rendered file changes (pods mount it with subPath, which never sees an update): the
        # digest annotation makes it a new revision, so every pod is pending too.
        skipped, pending = roll(api, tmp_path, json.dumps({"server_configs": {"pd": {"log.level": "debug"}}}), hosts=["pd-0"])
        assert pending == {"pd-0": True, "pd-1": True, "pd-2": True}
        assert skipped.returncode != 0
        assert "tidb-pd-0 (pd-0) cannot be replaced before tidb-pd-1, tidb-pd-2" in skipped.stdout
        # Nothing moved: lowering the partition to 0 would have let Kubernetes replace all three.
        assert api.events == [("partition", "tidb-pd", 3)] and partition(api) == 3


def test_a_replacement_that_never_gets_ready_fails_with_the_last_observation(tmp_path):
    with FakeApiServer() as api:
        assert roll(api, tmp_path)[0].returncode == 0
        api.rolled_out = False  # no pod is Ready any more, new ones never become so
        stuck, pending = roll(api, tmp_path, CHANGED, hosts=["pd-2", "pd-1"], timeout=2)
        # start.yml does not wait for pods it keeps at their old revision, Ready or not.
        assert pending == {"pd-0": True, "pd-1": True, "pd-2": True}
        assert stuck.returncode != 0
        assert "Pod tidb/tidb-pd-2 of StatefulSet tidb-pd not ready after" in stuck.stdout
        assert "pod tidb-pd-2 not Ready" in stuck.stdout
        # It stopped there: pod 1 keeps its old revision.
        assert partition(api) == 2
        assert not any(event[:2] == ("replace", "tidb-pd-1") for event in api.events)


def scaled_inventory(tmp_path, pd_hosts):
    """inventories/k8s with pd_hosts PD hosts."""
    inventory = tmp_path / "inventory"
    shutil.copytree(os.path.join(TOP, "inventories", "k8s"), inventory)
    hosts = (inventory / "hosts.yml").read_text()
    extra = "".join("        pd-%d:\n" % index for index in range(3, pd_hosts))
    (inventory / "hosts.yml").write_text(hosts.replace("        pd-2:\n", "        pd-2:\n" + extra, 1))
    return str(inventory)


def test_new_ordinals_of_a_changed_statefulset_start_at_once(tmp_path):
    with FakeApiServer() as api:
        assert roll(api, tmp_path)[0].returncode == 0
        old = api.statefulset("tidb-pd")["status"]["updateRevision"]
        api.events.clear()
        # Four PD hosts: the template changes (--initial-cluster) and pod 3 is new.
        grown, pending = roll(api, tmp_path, inventory=scaled_inventory(tmp_path, 4))
        assert grown.returncode == 0, grown.stdout[-3000:]
        new = api.statefulset("tidb-pd")["status"]["updateRevision"]
        assert api.events == [("partition", "tidb-pd", 3), ("create", "tidb-pd-3", new)]
        assert revisions(api) == {"tidb-pd-0": old, "tidb-pd-1": old, "tidb-pd-2": old, "tidb-pd-3": new}
        assert pending == {"pd-0": True, "pd-1": True, "pd-2": True, "pd-3": False}
