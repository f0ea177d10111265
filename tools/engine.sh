#!/usr/bin/env bash
# Make a container engine usable on this machine: install it when missing and start it
# by hand when no init system does (no systemd on our machines: dockerd and Podman's settings are
# started and passed by hand).
#
#   tools/engine.sh docker   # dockerd on the default socket, started if nothing answers
#   tools/engine.sh podman   # podman with runc, cgroupfs and explicit ulimits
#   tools/engine.sh env podman   # print the environment the podman engine needs
#
# Podman's settings go through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF so that
# nothing under /etc changes. Everything it writes lives under $TIDBOPS_STATE.
set -euo pipefail

STATE=${TIDBOPS_STATE:-/var/lib/tidbops}
PODMAN_DIR=$STATE/podman

need_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "engine.sh: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "engine.sh: installing ${missing[*]}" >&2
  # A fresh machine may hold no package lists yet.
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

podman_env() {
  echo "CONTAINERS_CONF=$PODMAN_DIR/containers.conf"
  echo "CONTAINERS_STORAGE_CONF=$PODMAN_DIR/storage.conf"
}

start_docker() {
  need_apt docker.io
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$STATE"
  echo "engine.sh: starting dockerd (log: $STATE/dockerd.log)" >&2
  # setsid: the daemon outlives this script and the make that called it.
  setsid dockerd --storage-driver overlay2 >"$STATE/dockerd.log" 2>&1 < /dev/null &
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "engine.sh: dockerd did not answer within 60 s; its log ends with:" >&2
      tail -n 20 "$STATE/dockerd.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

start_podman() {
  need_apt podman runc netavark aardvark-dns conmon
  mkdir -p "$PODMAN_DIR"
  # Root here lacks CAP_SYS_RESOURCE, so podman's default ulimits (1048576) fail;
  # crun refuses hybrid cgroups (cgroup v1 with one controller on cgroup2), runc does not.
  cat >"$PODMAN_DIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
  cat >"$PODMAN_DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_DIR/run"
EOF
  CONTAINERS_CONF=$PODMAN_DIR/containers.conf CONTAINERS_STORAGE_CONF=$PODMAN_DIR/storage.conf \
    podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null
}

case "${1:-}" in
  docker) start_docker ;;
  podman) start_podman ;;
  env)
    case "${2:-}" in
      podman) podman_env ;;
      docker) ;;
      *) echo "usage: engine.sh env docker|podman" >&2; exit 2 ;;
    esac ;;
  *) echo "usage: engine.sh docker|podman|env <engine>" >&2; exit 2 ;;
esac
