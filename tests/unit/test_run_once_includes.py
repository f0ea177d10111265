"""An include with run_once runs its file on the play's first host only. That is right for work done
once for the cluster (a gate, the changefeed, the objects of a Kubernetes step, a roll that delegates
to each instance), and wrong for a fact each host needs: a set_fact there would reach the first host
alone, unless it runs once itself (Ansible then gives the fact to every host of the play) or delegates
its facts. This test names such a task in any file the playbooks or roles include with run_once."""

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.include_tasks")


def _tasks(tasks, inherited=False):
    """(task, whether it runs once) for every task of a list, through blocks."""
    for task in tasks or []:
        once = bool(task.get("run_once", inherited))
        if "block" in task:
            for section in ("block", "rescue", "always"):
                yield from _tasks(task.get(section), once)
        else:
            yield task, once


def _target(including_file, task):
    """The file a run_once include names (None when its name is templated)."""
    if "ansible.builtin.include_role" in task:
        args = task["ansible.builtin.include_role"]
        role, tasks_from = args["name"], args.get("tasks_from", "main.yml")
        if "{{" in role or "{{" in tasks_from:
            return None
        return ROOT / "roles" / role.split(".")[-1] / "tasks" / (tasks_from if tasks_from.endswith(".yml") else tasks_from + ".yml")
    args = task["ansible.builtin.include_tasks"]
    name = args["file"] if isinstance(args, dict) else args
    return None if "{{" in name else including_file.parent / name


def _run_once_includes():
    files = sorted(ROOT.glob("playbooks/*.yml")) + sorted(ROOT.glob("roles/*/tasks/*.yml"))
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        plays = data if path.parent.name == "playbooks" else [{"tasks": data}]
        for play in plays:
            for section in ("pre_tasks", "tasks", "post_tasks"):
                for task, once in _tasks(play.get(section)):
                    action = next((name for name in INCLUDES if name in task), None)
                    if action and once and not (isinstance(task[action], dict) and (task[action].get("apply") or {}).get("run_once")):
                        yield path, task, _target(path, task)


PER_HOST_FACTS = ("ansible.builtin.set_fact", "ansible.builtin.group_by")


def test_no_file_included_with_run_once_sets_a_fact_for_one_host_only():
    checked = []
    for path, task, target in _run_once_includes():
        if target is None:
            continue  # a templated name
        assert target.is_file(), "%s: %s names %s" % (path, task["name"], target)
        lonely = [inner.get("name") for inner, once in _tasks(yaml.safe_load(target.read_text(encoding="utf-8")))
                  if any(key in inner for key in PER_HOST_FACTS) and not once and not inner.get("delegate_facts")]
        assert lonely == [], "%s includes %s with run_once, so these facts would reach its first host alone: %s" % (
            path.relative_to(ROOT), target.relative_to(ROOT), lonely)
        checked.append(target.relative_to(ROOT).as_posix())
    # site.yml's gates and changefeed, the rolls, and the objects of a Kubernetes step.
    assert {"roles/tikv/tasks/gate.yml", "roles/ticdc/tasks/changefeed.yml", "roles/_common/tasks/roll.yml",
            "roles/_kubernetes/tasks/objects.yml"} <= set(checked)


def test_the_check_finds_a_fact_set_for_one_host(tmp_path):
    tasks = [{"name": "Once", "ansible.builtin.set_fact": {"a": 1}, "run_once": True},
             {"name": "Delegated", "ansible.builtin.set_fact": {"b": 1}, "delegate_to": "x", "delegate_facts": True},
             {"name": "In a block", "block": [{"name": "Lonely", "ansible.builtin.set_fact": {"c": 1}}]},
             {"name": "Block once", "run_once": True, "block": [{"name": "Inherits", "ansible.builtin.set_fact": {"d": 1}}]}]
    assert [(task["name"], once) for task, once in _tasks(tasks)] == [
        ("Once", True), ("Delegated", False), ("Lonely", False), ("Inherits", True)]
