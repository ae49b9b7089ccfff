#!/usr/bin/env bash
# Build a model bundle image from an MLflow store, tagged with the run it serves:
#
#   k8s/model-bundle/build.sh MLRUNS_DIR RUN_ID [IMAGE]     (IMAGE: hvs-model-bundle)
#
# Checks that the run is in the store, copies the store (with its .trash folder, which
# MLflow needs to open a read-only store) into a build context of its own, and builds
# IMAGE:RUN_ID with the project's container tooling (tools/container/lib.sh: docker when an
# engine answers, else buildah, into this clone's store). Then prints what the overlay needs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mlruns=${1:?usage: build.sh MLRUNS_DIR RUN_ID [IMAGE]}
run_id=${2:?usage: build.sh MLRUNS_DIR RUN_ID [IMAGE]}
image=${3:-hvs-model-bundle}
[[ $run_id =~ ^[0-9a-f]{32}$ ]] || { echo "not an MLflow run id: $run_id" >&2; exit 2; }
compgen -G "$mlruns/*/$run_id/meta.yaml" >/dev/null \
  || { echo "run $run_id is not in the store $mlruns" >&2; exit 2; }
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$here/Dockerfile" "$context/"
mkdir "$context/mlruns"
cp -a "$mlruns/." "$context/mlruns/"
mkdir -p "$context/mlruns/.trash"
# shellcheck source=../../tools/container/lib.sh
source "$here/../../tools/container/lib.sh"
"$CTR_TOOLS/base_image.sh"
ctr_build -f "$context/Dockerfile" -t "$image:$run_id" "$context"
echo "built $image:$run_id; push it, then in the overlay (k8s/overlays/production):"
echo "  kustomization.yaml, images, hvs-model-bundle: newName: $image, newTag: $run_id"
echo "  model.env: BEST_MLFLOW_RUN_ID=$run_id"
