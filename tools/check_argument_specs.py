"""Check that every role's defaults/main.yml and meta/argument_specs.yml agree.

For each role under roles/: the keys of defaults/main.yml must equal the options of the `main`
entry point that are not required (a required option has no default). Exit 1 listing every
mismatch, 0 when all roles agree.

    python tools/check_argument_specs.py [roles_dir]
"""

import pathlib
import sys

import yaml


def load_yaml(path):
    """Parsed YAML of path, or an empty dict when the file is absent or empty."""
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def check_role(role_dir):
    """Return the mismatches of one role as readable lines."""
    defaults = load_yaml(role_dir / "defaults" / "main.yml")
    specs = load_yaml(role_dir / "meta" / "argument_specs.yml").get("argument_specs", {})
    name = role_dir.name
    if not (role_dir / "meta" / "argument_specs.yml").is_file():
        return ["%s: meta/argument_specs.yml is missing" % name]
    if "main" not in specs:
        return ["%s: meta/argument_specs.yml has no 'main' entry point" % name]
    options = specs["main"].get("options") or {}
    optional = {key for key, option in options.items() if not (option or {}).get("required")}
    problems = []
    for key in sorted(set(defaults) - set(options)):
        problems.append("%s: defaults/main.yml sets '%s', which argument_specs main does not document" % (name, key))
    for key in sorted(set(defaults) & (set(options) - optional)):
        problems.append("%s: '%s' is required in argument_specs main but has a default" % (name, key))
    for key in sorted(optional - set(defaults)):
        problems.append("%s: argument_specs main documents optional '%s', which defaults/main.yml does not set" % (name, key))
    return problems


def main(argv):
    roles_dir = pathlib.Path(argv[1] if len(argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "roles")
    roles = sorted(path for path in roles_dir.iterdir() if path.is_dir())
    problems = [line for role in roles for line in check_role(role)]
    for line in problems:
        print(line)
    print("checked %d roles: %s" % (len(roles), "%d mismatches" % len(problems) if problems else "defaults match argument_specs"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
