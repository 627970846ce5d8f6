#!/usr/bin/env bash
# The whole test suite. Sets up .venv on first use; exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export RAY_AUTH_MODE=disabled
exec .venv/bin/python -m pytest -q "$@"
