#!/usr/bin/env bash
# What the test suite needs beyond .venv: the Debian packages it starts for real (a
# redis-server on loopback, nginx before gunicorn, Prometheus and promtool, Java for
# Spark), installed with apt when run as root (otherwise it says what to install); and
# checkov's own virtual environment, .venv/checkov (k8s/policy/checkov-requirements.txt
# says why it is separate).
set -euo pipefail
cd "$(dirname "$0")/.."

# executable -> Debian package
declare -A PACKAGE_OF=(
  [redis-server]=redis-server
  [nginx]=nginx
  [prometheus]=prometheus
  [promtool]=prometheus
  [java]=openjdk-17-jre-headless  # the Spark backtest (tests/test_scoring.py) needs Java 17+
)

missing=()
for executable in "${!PACKAGE_OF[@]}"; do
  # nginx is in /usr/sbin, which a non-root user's PATH often lacks (src/api/front.py
  # looks there too)
  PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v "$executable" >/dev/null \
    || missing+=("${PACKAGE_OF[$executable]}")
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "the tests need: ${missing[*]}; install them (sudo apt-get install -y ${missing[*]}) and rerun" >&2
    exit 2
  fi
  echo "installing ${missing[*]} for the tests (apt, once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # --no-install-recommends: prometheus alone, without its node exporter and alertmanager;
  # the tests start it themselves (the package's own service is not used, and there is no
  # init system to start it here)
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# checkov: (re)made when its pins change; a stamp holds their digest.
venv=${VENV:-.venv}/checkov
pins=k8s/policy/checkov-requirements.txt
digest=$(sha256sum "$pins" | cut -c1-16)
if [ ! -f "$venv/.installed-$digest" ]; then
  echo "installing checkov into $venv for the policy scan (pip, once)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check --quiet -r "$pins" >"$venv/pip.log" 2>&1 \
    || { cat "$venv/pip.log" >&2; exit 1; }
  touch "$venv/.installed-$digest"
fi
