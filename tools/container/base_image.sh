#!/usr/bin/env bash
# tools/container/base_image.sh -- make sure the store has python:3.11-slim, the
# Dockerfile's FROM, before a build.
#
#   1. already in the store (the real one or our stand-in): nothing to do;
#   2. else pull the real docker.io/library/python:3.11-slim, with a short time bound:
#      on a machine without registry access a pull must fail in seconds, not minutes;
#   3. else build a LOCAL STAND-IN from Debian bookworm packages with mmdebstrap and store
#      it under that exact name, so the unmodified `FROM python:3.11-slim` resolves to it.
#      It says so: nobody should mistake the stand-in for the real image.
#
# How the stand-in differs from the real image: Debian's Python 3.11.2 (the real one:
# the newest 3.11, built into /usr/local, on a newer Debian), reached through a virtual
# environment whose prefix is /usr/local, so `python`, `pip` and site-packages are where
# the real image has them; pip 23.0.1; no Python C headers (everything this project
# installs is a wheel); only the tag exists, a digest pin cannot match.
#
# usage: tools/container/base_image.sh
# env:   PULL_TIMEOUT   seconds for the pull (default 20)
#        DEBIAN_MIRROR  where mmdebstrap fetches from (default: the bookworm mirror the
#                       host's apt uses)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

BASE=$CTR_BASE_IMAGE
STANDIN_LABEL=org.opencontainers.image.description

if ctr_has_image "$BASE"; then
  what=$(ctr image inspect -f "{{index .Config.Labels \"$STANDIN_LABEL\"}}" "$BASE" 2>/dev/null || true)
  case "$what" in
    *"LOCAL STAND-IN"*) echo "base: python:3.11-slim in $CTR_STORE is the local stand-in built earlier ($what)" >&2 ;;
    *) echo "base: python:3.11-slim is in $CTR_STORE" >&2 ;;
  esac
  exit 0
fi

# ------------------------------------------------------------------ 1. the real image
PULL_TIMEOUT=${PULL_TIMEOUT:-20}
status=0
timeout "$PULL_TIMEOUT" "${CTR_CMD[@]}" pull -q "$BASE" >"$CTR_ROOT/pull.log" 2>&1 || status=$?
if [ "$status" = 0 ]; then
  echo "base: pulled the real $BASE into $CTR_STORE" >&2
  exit 0
elif [ "$status" = 124 ]; then
  reason="no answer within $PULL_TIMEOUT s"
else
  # podman's last line is the useful one ("... dial tcp: lookup registry-1.docker.io ...")
  reason=$(grep -v '^\s*$' "$CTR_ROOT/pull.log" | tail -n 1 \
    | sed -e 's/^Error: //' -e 's/^initializing source [^ ]*: //' | cut -c1-240)
fi

# ------------------------------------------------------------------ 2. the stand-in
# Debian's version, from the host's apt when the host is bookworm too (the CI machines
# are), so the notice can name it before the build.
pyver=3.11
if grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
  candidate=$(apt-cache policy python3.11 2>/dev/null | awk '/Candidate:/ { print $2 }')
  candidate=${candidate%%-*}
  [[ "$candidate" =~ ^3\.11\.[0-9]+$ ]] && pyver=$candidate
fi
echo "python:3.11-slim could not be pulled ($reason): building a local stand-in from" \
  "Debian bookworm packages (Python $pyver), stored as python:3.11-slim in $CTR_STORE" >&2

if ! command -v mmdebstrap >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || ctr_die "mmdebstrap is missing: sudo apt-get install mmdebstrap, then rerun" || exit 1
  echo "installing mmdebstrap (apt, once)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap \
    >>"$CTR_ROOT/apt.log" 2>&1 \
    || ctr_die "apt-get install mmdebstrap failed (log: $CTR_ROOT/apt.log)" || exit 1
fi

# The host's own bookworm mirror: the machine may reach no other.
mirror=${DEBIAN_MIRROR:-$(apt-cache policy 2>/dev/null | awk '$3 == "bookworm/main" { print $2; exit }')}
mirror=${mirror:-http://deb.debian.org/debian}

started=$SECONDS
rootfs=$CTR_ROOT/tmp/standin-rootfs
rm -rf "$rootfs"
# minbase + what the real slim image has (CA certificates, /etc/services, time zones) +
# python3-venv for ensurepip's pip. The dpkg excludes drop documentation, man pages and
# translations as the real slim image does; merged /usr as in current Debian.
mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates,netbase,tzdata \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --aptopt='Acquire::Retries "3"' \
  bookworm "$rootfs" "$mirror" >"$CTR_ROOT/mmdebstrap.log" 2>&1 \
  || { tail -n 20 "$CTR_ROOT/mmdebstrap.log" >&2; ctr_die "mmdebstrap failed from $mirror (log: $CTR_ROOT/mmdebstrap.log); set DEBIAN_MIRROR to a reachable bookworm mirror" || exit 1; }

# The real image's python, python3, pip and site-packages live under /usr/local. A venv
# with prefix /usr/local gives the same paths, pip from Debian's bundled wheel and no
# "externally managed" refusal; --system-site-packages keeps `pip install --user` working.
chroot "$rootfs" /usr/bin/python3 -m venv --system-site-packages /usr/local
rm -f "$rootfs"/usr/local/bin/[Aa]ctivate* "$rootfs"/usr/lib/python3.11/EXTERNALLY-MANAGED
find "$rootfs/usr/local" -name __pycache__ -prune -exec rm -rf {} +
pyver=$(chroot "$rootfs" python -c 'import platform; print(platform.python_version())')
# Nothing of the host: no resolver or hostname (the engine provides them), no apt lists.
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/apt/* \
  "$rootfs"/var/log/*.log "$rootfs"/tmp/* "$rootfs"/root/.cache

# Import as one layer. /dev stays empty: the runtime mounts its own.
tar --numeric-owner --xattrs -C "$rootfs" --exclude='./dev/*' -cf "$rootfs.tar" .
rm -rf "$rootfs"
ctr import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PYTHON_VERSION=$pyver" \
  --change "LABEL $STANDIN_LABEL=\"LOCAL STAND-IN for python:3.11-slim: Debian bookworm packages, Python $pyver\"" \
  --change 'CMD ["python3"]' \
  "$rootfs.tar" "$BASE" >"$CTR_ROOT/import.log" 2>&1 \
  || { cat "$CTR_ROOT/import.log" >&2; ctr_die "$CTR_ENGINE import of the stand-in failed (above)" || exit 1; }
rm -f "$rootfs.tar"
size=$(ctr image inspect -f '{{.Size}}' "$BASE")
echo "base: stand-in python:3.11-slim (Python $pyver, $((size / 1000000)) MB) stored in" \
  "$CTR_STORE after $((SECONDS - started)) s" >&2
