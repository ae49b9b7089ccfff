#!/usr/bin/env bash
# The Debian packages the test suite starts for real (a redis-server on loopback, nginx
# before gunicorn, ...): installs the missing ones with apt when run as root, otherwise
# says what to install.
set -euo pipefail

# executable -> Debian package
declare -A PACKAGE_OF=(
  [redis-server]=redis-server
  [nginx]=nginx
)

missing=()
for executable in "${!PACKAGE_OF[@]}"; do
  # nginx is in /usr/sbin, which a non-root user's PATH often lacks (src/api/front.py
  # looks there too)
  PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v "$executable" >/dev/null \
    || missing+=("${PACKAGE_OF[$executable]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "the tests need: ${missing[*]}; install them (sudo apt-get install -y ${missing[*]}) and rerun" >&2
  exit 2
fi
echo "installing ${missing[*]} for the tests (apt, once)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || { apt-get update -qq && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
