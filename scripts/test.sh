#!/usr/bin/env bash
# The whole test suite. Sets up .venv on first use; exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# headless Chromium (Debian's package) opens the trade-off report in tests/report
if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1; then
  echo "[setup] installing Debian's chromium-headless-shell for the report test" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell) >&2 \
    || echo "[setup] could not install chromium-headless-shell: tests/report will fail" >&2
fi
export RAY_AUTH_MODE=disabled
exec .venv/bin/python -m pytest -q "$@"
