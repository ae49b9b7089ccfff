#!/usr/bin/env bash
# tools/container/build.sh -- build the project's image with whichever engine this
# machine has (docker, else buildah), from the unmodified Dockerfile.
#
# usage: tools/container/build.sh [TAG]        (default localhost/hvs-prediction-api:latest)
# env:   CTR_ENGINE, CTR_ROOT (lib.sh); BUILD_ARGS extra words for the build command,
#        e.g. BUILD_ARGS=--no-cache
# Then run it as docs/container.md shows, with `podman` in place of `docker` when the
# engine line says buildah + podman and, so that podman finds this store,
#   source tools/container/lib.sh; ctr run ...
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
TAG=${1:-localhost/hvs-prediction-api:latest}

"$CTR_TOOLS/base_image.sh"
# shellcheck disable=SC2086  # BUILD_ARGS is meant to split into words
ctr_build ${BUILD_ARGS:-} -f "$CTR_REPO/Dockerfile" -t "$TAG" "$CTR_REPO"
echo "built $TAG in $CTR_STORE" >&2
