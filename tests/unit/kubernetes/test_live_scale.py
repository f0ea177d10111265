"""Scale-in on the Kubernetes backend (playbooks/scale_in.yml) against the fake API server, which
plays PD (stores going Offline, losing their regions, then Tombstone; members deleted), TiCDC
(owner resign, capture drain) and the StatefulSet controller (see fake_apiserver.py).

Per instance, the PD or TiCDC side comes first (the store buried, the member deleted, the capture
drained), then the backend's retire.yml scales the StatefulSet down to the pod's ordinal (a merge
patch of spec.replicas), waits until the pod is gone, and deletes its PVC only with
tidb_destroy_data; a store's tombstone is forgotten last. A StatefulSet only removes its highest
ordinal: anything else is refused before any change, by the plan and by retire.yml itself. A second
run changes nothing.
"""

import json
import os
import shutil

from fake_apiserver import FakeApiServer
from test_live_orchestration import TOP, run, sts_path

SITE = os.path.join(TOP, "playbooks", "site.yml")
SCALE_IN = os.path.join(TOP, "playbooks", "scale_in.yml")
ROLL = os.path.join(TOP, "tests", "unit", "kubernetes", "playbooks", "backend_roll.yml")
PD_PROXY = "/api/v1/namespaces/tidb/pods/tidb-pd-0:2379/proxy/pd/api/v1"
CDC_PROXY = "/api/v1/namespaces/tidb/pods/tidb-ticdc-0:8300/proxy/api/v1"
CLAIMS = "/api/v1/namespaces/tidb/persistentvolumeclaims/"

# A playbook of the backend's retire entry point alone (no PD step, no plan).
RETIRE = """
- name: Preflight
  ansible.builtin.import_playbook: tidbops.cluster.preflight

- name: Retire one instance through the backend alone
  hosts: pd_servers
  gather_facts: false
  tasks:
    - name: Retire it
      ansible.builtin.include_role:
        name: "{{ __tidbops_cluster.backend_role }}"
        tasks_from: retire.yml
      vars:
        backend_instance: "{{ retire_host }}"
"""


def grown_inventory(tmp_path, **added):
    """inventories/k8s with more hosts in some groups, e.g. tikv=["tikv-3"] (after the group's last host)."""
    inventory = tmp_path / "inventory"
    shutil.copytree(os.path.join(TOP, "inventories", "k8s"), inventory)
    hosts = (inventory / "hosts.yml").read_text()
    last = {"pd": "pd-2", "tikv": "tikv-2", "cdc": "cdc-1"}
    for group, names in added.items():
        anchor = "        %s:\n" % last[group]
        assert anchor in hosts
        hosts = hosts.replace(anchor, anchor + "".join("        %s:\n" % name for name in names), 1)
    (inventory / "hosts.yml").write_text(hosts)
    return str(inventory)


def scale_in(api, tmp_path, inventory, names, *extra):
    return run(SCALE_IN, api.kubeconfig(tmp_path / "kubeconfig"), 20, "tici_enabled=false",
               json.dumps({"tidb_scale_in": names}), *extra, inventory=inventory)


def mutations_since(api, mark):
    return [(method, path) for method, path in api.requests[mark:] if method not in ("GET", "HEAD", "PATCH(dry-run)")]


def claims(api, set_name):
    return sorted(path[len(CLAIMS):] for path in api.objects if path.startswith(CLAIMS + "data-%s-" % set_name))


def recap_changed(output, host="pd-0"):
    line = [line for line in output.splitlines() if line.startswith(host + " ")][-1]
    return int(line.split("changed=")[1].split()[0])


def test_a_store_leaves_pd_before_its_pod_goes_and_its_claim_stays(tmp_path):
    inventory = grown_inventory(tmp_path, tikv=["tikv-3"])
    with FakeApiServer(tikv_stores=4) as api:
        site = run(SITE, api.kubeconfig(tmp_path / "kubeconfig"), 20, "tici_enabled=false", inventory=inventory)
        assert site.returncode == 0, site.stdout[-3000:]
        assert api.statefulset("tidb-tikv")["spec"]["replicas"] == 4
        assert claims(api, "tidb-tikv") == ["data-tidb-tikv-%d" % i for i in range(4)]

        mark = len(api.requests)
        removed = scale_in(api, tmp_path, inventory, ["tikv-3"])
        assert removed.returncode == 0, removed.stdout[-3000:]
        requests = api.requests[mark:]
        offline = requests.index(("DELETE", PD_PROXY + "/store/4"))
        scaled = requests.index(("PATCH", sts_path("tidb-tikv")))
        pruned = requests.index(("DELETE", PD_PROXY + "/stores/remove-tombstone"))
        # PD buried the store (its regions moved away over several reads) before the StatefulSet
        # dropped its pod, and the tombstone was forgotten after that.
        tombstone = [index for index, what, who in api.pd_events if (what, who) == ("tombstone", 4)]
        assert offline < tombstone[0] - mark < scaled < pruned
        assert "tikv-3: Tombstone after" in removed.stdout and "regions left over time: 6 -> 3" in removed.stdout
        assert api.store_state[4]["state"] == "removed"
        # One merge patch of spec.replicas, the only change to a StatefulSet.
        assert [(path, content_type) for path, content_type, _args in api.patches if "/statefulsets/" in path][-1] == \
            (sts_path("tidb-tikv"), "application/merge-patch+json")
        assert [path for _method, path in mutations_since(api, mark) if "/statefulsets/" in path] == [sts_path("tidb-tikv")]
        assert api.statefulset("tidb-tikv")["spec"]["replicas"] == 3
        assert sorted(api.pods("tidb-tikv")) == ["tidb-tikv-0", "tidb-tikv-1", "tidb-tikv-2"]
        # The claim of ordinal 3 stays (tidb_destroy_data is false): nothing deleted it.
        assert claims(api, "tidb-tikv") == ["data-tidb-tikv-%d" % i for i in range(4)]
        assert not any(path.startswith(CLAIMS) for _method, path in mutations_since(api, mark))

        # The same scale-in again: every step sees it done, nothing changes.
        mark = len(api.requests)
        again = scale_in(api, tmp_path, inventory, ["tikv-3"])
        assert again.returncode == 0, again.stdout[-3000:]
        assert mutations_since(api, mark) == [] and recap_changed(again.stdout) == 0
        assert api.statefulset("tidb-tikv")["spec"]["replicas"] == 3

        # A pod that is not the highest ordinal is refused by the plan, before PD or Kubernetes is
        # asked to change anything...
        mark = len(api.requests)
        lower = scale_in(api, tmp_path, inventory, ["tikv-1"])
        assert lower.returncode != 0
        assert "on Kubernetes a StatefulSet removes its highest ordinals first" in lower.stdout
        assert mutations_since(api, mark) == []

        # ... and by the backend's retire.yml itself.
        playbook = tmp_path / "retire.yml"
        playbook.write_text(RETIRE)
        mark = len(api.requests)
        direct = run(str(playbook), api.kubeconfig(tmp_path / "kubeconfig"), 20, "tici_enabled=false", "retire_host=tikv-1",
                     inventory=inventory)
        assert direct.returncode != 0
        assert "tidb-tikv-1 (tikv-1) is ordinal 1 of StatefulSet tidb/tidb-tikv, which has 3 replicas" in " ".join(direct.stdout.split())
        assert "remove tidb-tikv-2 first (nothing was changed)" in " ".join(direct.stdout.split())
        assert mutations_since(api, mark) == []
        assert api.statefulset("tidb-tikv")["spec"]["replicas"] == 3


def test_with_tidb_destroy_data_the_claims_go_and_pd_and_ticdc_leave_first(tmp_path):
    inventory = grown_inventory(tmp_path, pd=["pd-3"], tikv=["tikv-3"], cdc=["cdc-2"])
    with FakeApiServer(pd_members=4, tikv_stores=4, captures=3) as api:
        # Only the StatefulSets that matter here (the backend's start entry point, no gate).
        deployed = run(ROLL, api.kubeconfig(tmp_path / "kubeconfig"), 20, "roll_group=pd_servers:tikv_servers:cdc_servers",
                       inventory=inventory)
        assert deployed.returncode == 0, deployed.stdout[-3000:]
        api.pd_leader = "tidb-pd-3"  # the member that leaves leads, and the capture that leaves owns
        api.ticdc_owner = 2

        mark = len(api.requests)
        removed = scale_in(api, tmp_path, inventory, ["pd-3", "tikv-3", "cdc-2"], "tidb_destroy_data=true")
        assert removed.returncode == 0, removed.stdout[-3000:]
        steps = [request for request in api.requests[mark:] if request[0] not in ("GET", "HEAD", "PATCH(dry-run)")]
        # TiCDC, then TiKV, then PD (scale_in_plan's order); the store goes offline before anything
        # else, as all the stores to remove do together. Each pod goes after its component let it
        # go, and its claim after its pod.
        assert steps == [
            ("DELETE", PD_PROXY + "/store/4"),
            ("POST", CDC_PROXY + "/owner/resign"),
            ("PUT", CDC_PROXY + "/captures/drain"),
            ("PATCH", sts_path("tidb-ticdc")),
            ("DELETE", CLAIMS + "data-tidb-ticdc-2"),
            ("PATCH", sts_path("tidb-tikv")),
            ("DELETE", CLAIMS + "data-tidb-tikv-3"),
            ("DELETE", PD_PROXY + "/stores/remove-tombstone"),
            ("POST", PD_PROXY + "/leader/transfer/tidb-pd-0"),
            ("DELETE", PD_PROXY + "/members/name/tidb-pd-3"),
            ("PATCH", sts_path("tidb-pd")),
            ("DELETE", CLAIMS + "data-tidb-pd-3"),
        ]
        assert [what for _index, what, _who in api.pd_events] == ["offline", "tombstone", "remove-tombstone", "leader", "member-delete"]
        assert api.pd_removed == ["tidb-pd-3"] and api.pd_leader == "tidb-pd-0"
        for set_name, replicas in (("tidb-pd", 3), ("tidb-tikv", 3), ("tidb-ticdc", 2)):
            assert api.statefulset(set_name)["spec"]["replicas"] == replicas
            assert sorted(api.pods(set_name)) == ["%s-%d" % (set_name, i) for i in range(replicas)]
            assert claims(api, set_name) == ["data-%s-%d" % (set_name, i) for i in range(replicas)]

        # Again, with the data gone too: nothing left to do.
        mark = len(api.requests)
        again = scale_in(api, tmp_path, inventory, ["pd-3", "tikv-3", "cdc-2"], "tidb_destroy_data=true")
        assert again.returncode == 0, again.stdout[-3000:]
        assert mutations_since(api, mark) == [] and recap_changed(again.stdout) == 0
