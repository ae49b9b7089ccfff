# shellcheck shell=bash
# tools/container/lib.sh -- source me. The one place that knows how this project builds
# and runs its image, on a machine with a Docker engine or on one with only buildah and
# podman (the CI machines: `docker` there is a client with no engine behind it).
#
# After `source tools/container/lib.sh`:
#   CTR_ENGINE         docker | podman (printed once, with the reason)
#   CTR_REPO           the clone this file belongs to
#   CTR_ROOT           this clone's container state; for podman the image store itself
#   CTR_STORE          where images live, in words (for messages)
#   ctr ARGS...        the container CLI: run, inspect, logs, stop, exec, rmi and
#                      image inspect take the same arguments with either engine
#   CTR_CMD            the same CLI as an array, for `timeout "${CTR_CMD[@]}" ...`
#   ctr_build ARGS...  build an unmodified Dockerfile: ctr_build -f DOCKERFILE -t TAG CONTEXT
#   ctr_rm NAME...     remove containers now, running or not
#   ctr_healthcheck NAME   run the image's HEALTHCHECK command once, now
#   ctr_has_image REF  true when REF is in the store
#
# Env: CTR_ENGINE=docker|podman forces the engine; CTR_ROOT overrides the state folder
#      (default ${TMPDIR:-/tmp}/hvs-ctr-<12 hex of sha256 of the clone's absolute path>).

CTR_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
CTR_TOOLS=$CTR_REPO/tools/container
# The Dockerfile's FROM, fully qualified as both engines store it.
export CTR_BASE_IMAGE=docker.io/library/python:3.11-slim

ctr_die() {
  printf 'container tooling: %s\n' "$*" >&2
  return 1
}

# ------------------------------------------------------------------ engine choice
# A `docker` command alone proves nothing: on the CI machines it is a client whose
# `docker info` fails at once. Only an engine that answers within a few seconds counts;
# a hung socket must not stall the test, hence the timeout.
if [ -z "${_CTR_CHOSEN:-}" ]; then
  if [ -z "${CTR_ENGINE:-}" ]; then
    if ! command -v docker >/dev/null 2>&1; then
      CTR_ENGINE=podman CTR_WHY="no docker command"
    elif _out=$(timeout 5 docker info --format '{{.ServerVersion}}' 2>&1); then
      CTR_ENGINE=docker CTR_WHY="docker info answered within 5 s (engine ${_out})"
    else
      _out=$(printf '%s' "$_out" | grep -v '^\s*$' | tail -n 1)
      CTR_ENGINE=podman CTR_WHY="docker info failed within 5 s: ${_out:-no answer}"
    fi
    unset _out
  else
    CTR_WHY="CTR_ENGINE=$CTR_ENGINE was set"
  fi
  case "$CTR_ENGINE" in
    docker) printf 'engine: docker (%s)\n' "$CTR_WHY" >&2 ;;
    podman) printf 'engine: buildah + podman (%s)\n' "$CTR_WHY" >&2 ;;
    *) ctr_die "CTR_ENGINE must be docker or podman, not '$CTR_ENGINE'" || return 1 ;;
  esac
  # Scripts started from here (base_image.sh, build.sh) inherit the choice and stay quiet.
  _CTR_CHOSEN=1
  export CTR_ENGINE CTR_WHY _CTR_CHOSEN
fi

# ------------------------------------------------------------------ state folder
# Per clone: two clones must never share layers or a half-built base image, and
# deleting one clone's store must not affect another. Outside the clone, so the build
# context (the clone) stays small and nothing here needs a .gitignore entry.
if [ -z "${CTR_ROOT:-}" ]; then
  CTR_ROOT="${TMPDIR:-/tmp}/hvs-ctr-$(printf '%s' "$CTR_REPO" | sha256sum | cut -c1-12)"
fi
mkdir -p "$CTR_ROOT/tmp"
CTR_ROOT=$(cd "$CTR_ROOT" && pwd -P)
export CTR_ROOT

if [ "$CTR_ENGINE" = docker ]; then
  CTR_STORE="docker's image store"
  CTR_CMD=(docker)
  ctr() { docker "$@"; }
  ctr_has_image() { docker image inspect "$1" >/dev/null 2>&1; }
  ctr_rm() { docker rm -f "$@"; }
  ctr_build() {
    # `docker build` cannot bind-mount anything into RUN steps (that would need
    # RUN --mount in the Dockerfile), so the host's pip configuration is not mirrored:
    # a machine with a real engine is expected to reach PyPI. Proxy variables are
    # predefined build args in docker: pass them on when the host has them.
    local proxy=() var
    for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
      [ -z "${!var:-}" ] || proxy+=(--build-arg "$var")
    done
    docker build "${proxy[@]}" "$@"
  }
  ctr_healthcheck() {
    # docker has no "run the healthcheck now" command; running the image's own
    # HEALTHCHECK command in the container checks the same thing without waiting for
    # the first interval (15 s).
    local test_json cmd=()
    test_json=$(docker inspect -f '{{json .Config.Healthcheck.Test}}' "$1") || return 1
    mapfile -t cmd < <(python3 -c '
import json, sys
t = json.loads(sys.argv[1]) or []
if t[:1] == ["CMD"]: print("\n".join(t[1:]))
elif t[:1] == ["CMD-SHELL"]: print("\n".join(["/bin/sh", "-c", t[1]]))
else: sys.exit("the image has no HEALTHCHECK")' "$test_json") || return 1
    docker exec "$1" "${cmd[@]}"
  }
  return 0
fi

# ------------------------------------------------------------------ buildah + podman
# They come from Debian's packages; installing needs root, which CI has.
_missing=()
for _tool in buildah podman runc curl; do
  command -v "$_tool" >/dev/null 2>&1 || _missing+=("$_tool")
done
if [ ${#_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    ctr_die "missing ${_missing[*]}: install them (sudo apt-get install buildah podman runc curl), or run as root so this script can" || return 1
  fi
  printf 'installing %s (apt, once)\n' "${_missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be missing or stale on a fresh machine: update only then.
  apt-get install -y --no-install-recommends "${_missing[@]}" >"$CTR_ROOT/apt.log" 2>&1 \
    || { apt-get update -qq >>"$CTR_ROOT/apt.log" 2>&1 \
      && apt-get install -y --no-install-recommends "${_missing[@]}" >>"$CTR_ROOT/apt.log" 2>&1; } \
    || ctr_die "apt-get install ${_missing[*]} failed (log: $CTR_ROOT/apt.log); install them by hand and rerun" || return 1
fi
unset _missing _tool

CTR_STORE=$CTR_ROOT/storage
mkdir -p "$CTR_ROOT/storage" "$CTR_ROOT/run" "$CTR_ROOT/networks"

# Storage driver: overlay when the kernel lets us mount one here (fast, shares layers),
# else vfs (a full copy per layer: slow, large, but works anywhere). An existing store
# keeps the driver it was made with; switching would make its images unreadable.
if [ -d "$CTR_STORE/overlay-images" ]; then
  CTR_DRIVER=overlay
elif [ -d "$CTR_STORE/vfs-images" ]; then
  CTR_DRIVER=vfs
else
  _t=$(mktemp -d "$CTR_ROOT/tmp/overlay-probe.XXXXXX")
  mkdir -p "$_t/lower" "$_t/upper" "$_t/work" "$_t/merged"
  if mount -t overlay overlay -o "lowerdir=$_t/lower,upperdir=$_t/upper,workdir=$_t/work" \
    "$_t/merged" 2>/dev/null; then
    umount "$_t/merged"
    CTR_DRIVER=overlay
  else
    CTR_DRIVER=vfs
  fi
  rm -rf "$_t"
  unset _t
fi

# RLIMITs: podman asks for nofile=1048576 and a large nproc by default; without
# CAP_SYS_RESOURCE runc is refused ("error setting rlimit type 7: operation not
# permitted"). Ask for no more than the host's hard limit; nproc above 32768 was refused
# here even below the hard limit.
_nofile=$(ulimit -Hn)
{ [ "$_nofile" = unlimited ] || [ "$_nofile" -gt 1048576 ]; } && _nofile=1048576

# Our own configuration files, so /etc/containers and /var/lib/containers stay untouched.
# runc, not crun: Debian 12's crun refuses these hosts' hybrid cgroup v1/v2 layout.
# cgroupfs and file events: there is no systemd to ask.
cat >"$CTR_ROOT/storage.conf" <<EOF
[storage]
driver = "$CTR_DRIVER"
graphroot = "$CTR_STORE"
runroot = "$CTR_ROOT/run"
EOF
cat >"$CTR_ROOT/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$_nofile:$_nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$CTR_ROOT/run/libpod-tmp"
[network]
network_config_dir = "$CTR_ROOT/networks"
EOF
unset _nofile
export CONTAINERS_STORAGE_CONF=$CTR_ROOT/storage.conf CONTAINERS_CONF=$CTR_ROOT/containers.conf
export BUILDAH_RUNTIME=runc CTR_DRIVER

# buildah and podman put large temporary files in $TMPDIR (/var/tmp by default): keep
# them with the store, without changing TMPDIR for the caller. CTR_CMD is the same as a
# command line, for `timeout`, which cannot run a shell function.
CTR_CMD=(env "TMPDIR=$CTR_ROOT/tmp" podman)
ctr() { "${CTR_CMD[@]}" "$@"; }
ctr_has_image() { TMPDIR=$CTR_ROOT/tmp buildah inspect --type image "$1" >/dev/null 2>&1; }
ctr_rm() { ctr rm -f -t 0 "$@"; }
ctr_healthcheck() { ctr healthcheck run "$1"; }
ctr_build() {
  # The host's pip configuration (index URLs, local wheel folders, CA bundle,
  # constraints) is mounted read-only at /etc/xdg/pip in every RUN step, where pip reads
  # its site-wide configuration, so the Dockerfile's plain `pip install -r
  # requirements.txt` reaches the same index as the host does. Nothing of it stays in
  # the image but the empty mount point.
  local specs spec mounts=()
  specs=$(python3 "$CTR_TOOLS/pip_mounts.py" "$CTR_ROOT/pip") \
    || ctr_die "could not read the host's pip configuration (python3 -m pip config list)" || return 1
  for spec in $specs; do mounts+=(-v "$spec"); done
  # --pull=never: FROM python:3.11-slim must resolve to what base_image.sh stored.
  # --format docker: the OCI format would drop HEALTHCHECK.
  # --isolation chroot: RUN steps need no OCI runtime, nor cgroups.
  # --network host: RUN steps use the host's network, DNS and egress proxy.
  # --layers: cache each step, as docker does; --force-rm: no leftovers on failure.
  TMPDIR=$CTR_ROOT/tmp buildah bud --pull=never --format docker --isolation chroot \
    --network host --layers --force-rm "${mounts[@]}" "$@"
}
