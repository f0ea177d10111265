#!/usr/bin/env bash
# Run `ansible-test sanity` without the hosts it cannot reach here (ci-files.testing.ansible.com).
#
# ansible-test wants the collection at .../ansible_collections/<ns>/<name>/ inside a git
# repository, and bootstraps pip from a host this machine cannot reach. So this script:
#  1. places a stand-in get-pip script where ansible-test looks first (its cache);
#  2. builds the collection tarball (what `make dist` ships) and unpacks it into a scratch tree laid
#     out as ansible_collections/tidbops/cluster, so sanity checks the built collection;
#  3. adds the files git knows (tracked and untracked-but-not-ignored) that the build leaves out
#     (tests, tools, benchmarks, molecule...), so they stay checked too; commits and runs sanity.
# Extra arguments go to ansible-test (for example: --test pep8).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$top/.venv}
scratch=${SANITY_ROOT:-$top/.cache/sanity}
dest=$scratch/ansible_collections/tidbops/cluster
# The pip version ansible-test pins for its per-test venvs names the cache file it looks for.
pip_version=$("$venv/bin/python" -c 'import ansible_test._internal.python_requirements as r, inspect, re
print(re.search(r"pip=.([0-9.]+)", inspect.getsource(r.get_venv_packages)).group(1))')
cache=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$cache")"
# The stand-in: ensurepip in a subprocess (in-process ensurepip would hide /etc/pip.conf and
# its CA line from the following install), then pip install what ansible-test asked for.
cat >"$cache" <<'EOF'
"""Offline stand-in for get-pip.py, written by tidbops.cluster tools/sanity.sh."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + args)
EOF

rm -rf "$dest" "$scratch/dist"
mkdir -p "$dest"
cd "$top"
"$venv/bin/ansible-galaxy" collection build --output-path "$scratch/dist" "$top" >/dev/null
tar -xzf "$scratch"/dist/tidbops-cluster-*.tar.gz -C "$dest"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue  # deleted in the work tree but still in the index
  [ -e "$dest/$f" ] && continue  # shipped: sanity checks the built copy
  mkdir -p "$dest/$(dirname "$f")"
  cp -p "$f" "$dest/$f"
done
cd "$dest"
git init -q
git add -A
git -c user.name=sanity -c user.email=sanity@localhost commit -q -m sanity
export PATH=$venv/bin:$PATH
exec ansible-test sanity --python 3.11 --color no "$@"
