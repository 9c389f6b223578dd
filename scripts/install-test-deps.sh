#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: the Python packages, Debian's headless Chromium
# for the browser tests (playwright cannot download its own browser here; tests/browser.py says why the headless
# shell) and Debian's nginx for the tests of `python -m mirror.cluster` (tests/test_cluster.py), Debian's
# redis-server for the budget shared across hosts (tests/test_redis_budget.py starts its own on a free port), and the
# venvs of older gradio for the test matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
# uv when it can (scripts/pip_install.py says why and when not), else pip
python3 scripts/pip_install.py -r requirements-dev.txt
# the test matrix's gradio 4.44 and 5.20 venvs (tests/gradio_spaces/requirements-gradio*.txt), built once, cached
PYTHONPATH=. python3 tests/gradio_matrix.py
missing=()
[ -x /usr/bin/chromium-headless-shell ] || missing+=(chromium-headless-shell)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -x /usr/bin/redis-server ] || command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  # RUNLEVEL=1: a package's own service (nginx's, redis-server's) is not started by its install; the tests start
  # their own
  $SUDO env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
