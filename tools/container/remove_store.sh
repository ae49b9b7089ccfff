#!/usr/bin/env bash
# tools/container/remove_store.sh -- delete this clone's container state ($CTR_ROOT):
# its containers, images, layer cache and the stand-in base image. The next build
# starts from an empty store (the stand-in is built again, about a minute).
#
# Why a script and not `rm -rf`: podman's overlay storage keeps mounts under the store
# (its own overlay folder, the layers of running containers) and rm fails on them with
# "Device or resource busy". With docker only the state folder goes; docker's own image
# store is left alone (use `docker image rm` for that).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
if [ "$CTR_ENGINE" = podman ]; then
  ctr rm -a -f -t 0 >/dev/null 2>&1 || true
  buildah rm --all >/dev/null 2>&1 || true
  # Deepest mounts first, so each parent is free when its turn comes.
  # (awk, not grep: no mount at all is the usual case and must not stop the script)
  awk -v root="$CTR_ROOT/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
    umount "$mnt" || umount -l "$mnt"
  done
fi
rm -rf "$CTR_ROOT"
echo "removed $CTR_ROOT" >&2
