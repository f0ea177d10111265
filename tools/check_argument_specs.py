"""Check that every role's documented variables agree with where their values come from.

* A role with defaults/main.yml (the cluster-wide settings of _common, each backend role's own
  settings): the keys of defaults/main.yml equal the options of its settings entry point (`load`
  for a backend role, `main` otherwise) that are not required, and each documented default equals
  the value in defaults/main.yml.
* A component role (a role the topology registry names): the options of `main` are exactly the
  per-instance variables the registry says its kinds read (module_utils/_topology.py), each port
  under the name the cluster model reads first (the Ansible-safe alias where there is one), with
  the registry's default when every kind of the role has the same.

Exit 1 listing every mismatch, 0 when all roles agree.

    python tools/check_argument_specs.py [roles_dir]
"""

import pathlib
import sys

import yaml

TOP = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / ".collections"))
from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo  # noqa: E402  pylint: disable=wrong-import-position


def load_yaml(path):
    """Parsed YAML of path, or an empty dict when the file is absent or empty."""
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _settings_role(name, defaults, specs):
    entry = "load" if "load" in specs else "main"
    options = specs[entry].get("options") or {}
    optional = {key for key, option in options.items() if not (option or {}).get("required")}
    problems = []
    for key in sorted(set(defaults) - set(options)):
        problems.append("%s: defaults/main.yml sets '%s', which argument_specs %s does not document" % (name, key, entry))
    for key in sorted(set(defaults) & (set(options) - optional)):
        problems.append("%s: '%s' is required in argument_specs %s but has a default" % (name, key, entry))
    for key in sorted(optional - set(defaults)):
        problems.append("%s: argument_specs %s documents optional '%s', which defaults/main.yml does not set" % (name, entry, key))
    for key in sorted(set(defaults) & optional):
        if "default" in options[key] and options[key]["default"] != defaults[key]:
            problems.append("%s: argument_specs %s documents %s=%r, defaults/main.yml sets %r"
                            % (name, entry, key, options[key]["default"], defaults[key]))
    return problems


def _component_role(name, specs):
    kinds = [kind for kind in topo.KINDS if kind.role == name]
    options = (specs.get("main") or {}).get("options") or {}
    expected = {}
    for kind in kinds:
        for variable in topo.COMMON_VARS:
            expected.setdefault(variable, set())
        for port in kind.ports:
            expected.setdefault(port.alias or port.name, set()).add(port.default)
        for variable, alias in kind.extra_vars.items():
            expected.setdefault(alias or variable, set())
    problems = []
    for key in sorted(set(options) - set(expected)):
        problems.append("%s: argument_specs main documents '%s', which the registry does not give %s" % (name, key, "/".join(k.name for k in kinds)))
    for key in sorted(set(expected) - set(options)):
        problems.append("%s: argument_specs main does not document '%s', which the registry's %s read" % (name, key, "/".join(k.name for k in kinds)))
    for key, defaults in sorted(expected.items()):
        documented = (options.get(key) or {}).get("default")
        if len(defaults) == 1 and key in options and documented != next(iter(defaults)):
            problems.append("%s: argument_specs main documents %s=%r, the registry's default is %r" % (name, key, documented, next(iter(defaults))))
        if len(defaults) > 1 and documented is not None:
            problems.append("%s: %s has no single default (%s differ), so argument_specs main must not give one" % (name, key, sorted(defaults)))
    return problems


def check_role(role_dir):
    """Return the mismatches of one role as readable lines."""
    name = role_dir.name
    if not (role_dir / "meta" / "argument_specs.yml").is_file():
        return ["%s: meta/argument_specs.yml is missing" % name]
    specs = load_yaml(role_dir / "meta" / "argument_specs.yml").get("argument_specs", {})
    if "main" not in specs:
        return ["%s: meta/argument_specs.yml has no 'main' entry point" % name]
    if any(kind.role == name for kind in topo.KINDS):
        return _component_role(name, specs)
    return _settings_role(name, load_yaml(role_dir / "defaults" / "main.yml"), specs)


def main(argv):
    roles_dir = pathlib.Path(argv[1] if len(argv) > 1 else TOP / "roles")
    roles = sorted(path for path in roles_dir.iterdir() if path.is_dir())
    problems = [line for role in roles for line in check_role(role)]
    for line in problems:
        print(line)
    print("checked %d roles: %s" % (len(roles), "%d mismatches" % len(problems) if problems else "documented variables match"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
