#!/usr/bin/env bash
# The main job on embedded defaults. Sets up .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/holmes demo "$@"
