#!/usr/bin/env bash
# Render inventories/k8s in render mode (no cluster is touched) and validate every manifest:
#  1. kubernetes-validate --strict against each Kubernetes version in K8S_VERSIONS;
#  2. tools/k8s_check.py: labels, Service selectors, probes, requests, PVCs, no secret outside Secrets.
# Any error, warning (e.g. an unknown kind) or count mismatch fails the run.
#
# Environment: K8S_VERSIONS (default "1.30.0 1.34.0"), K8S_INVENTORY (default inventories/k8s),
# K8S_PLAYBOOK (default playbooks/site.yml), K8S_RENDER_DIR (default: a temporary directory,
# removed afterwards).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${VENV:-$top/.venv}/bin
versions=${K8S_VERSIONS:-1.30.0 1.34.0}
inventory=${K8S_INVENTORY:-$top/inventories/k8s}
K8S_PLAYBOOK=${K8S_PLAYBOOK:-$top/playbooks/site.yml}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
out=${K8S_RENDER_DIR:-$scratch/manifests}

cd "$top"
export ANSIBLE_CONFIG=$top/ansible.cfg
export ANSIBLE_PYTHON_INTERPRETER=$bin/python
SECONDS=0
echo "== render: $K8S_PLAYBOOK with $inventory into $out"
if ! "$bin/ansible-playbook" -i "$inventory" "$K8S_PLAYBOOK" -e "tidb_k8s_render_dir=$out" >"$scratch/render.log" 2>&1; then
  cat "$scratch/render.log"
  echo "FAIL: rendering failed" >&2
  exit 1
fi
shopt -s nullglob
files=("$out"/*.yaml)
if [ "${#files[@]}" -eq 0 ]; then
  echo "FAIL: no manifest was rendered into $out" >&2
  exit 1
fi
documents=$("$bin/python" -c 'import sys, yaml
print(sum(1 for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d))' "${files[@]}")
echo "== rendered ${#files[@]} files, $documents manifests"

for version in $versions; do
  log=$scratch/validate-$version.log
  rc=0
  "$bin/kubernetes-validate" -k "$version" --strict "${files[@]}" >"$log" 2>&1 || rc=$?
  passed=$(grep -c '^INFO .* passed for resource' "$log" || true)
  others=$(grep -v '^INFO .* passed for resource' "$log" || true)
  if [ "$rc" -ne 0 ] || [ -n "$others" ] || [ "$passed" -ne "$documents" ]; then
    cat "$log"
    echo "FAIL: Kubernetes $version: rc=$rc, $passed of $documents manifests passed" >&2
    exit 1
  fi
  echo "== Kubernetes $version (strict): $passed of $documents manifests valid"
done

echo "== structural checks"
"$bin/python" "$top/tools/k8s_check.py" "$out"
echo "== OK in ${SECONDS} s"
