#!/usr/bin/env bash
# Creates .venv with everything the project needs; fast (a stamp check) when already set up.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp=.venv/.holmes-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/holmes ]; then
  exit 0
fi
echo "[setup] creating .venv and installing holmes-icu (first run takes a few minutes)" >&2
if ! command -v uv >/dev/null 2>&1; then
  "$PY" -m pip install -q --disable-pip-version-check uv
fi
UV="$(command -v uv || echo "$PY -m uv")"
[ -d .venv ] || $UV venv -q --python "$PY" .venv
links=()
for d in ${PIP_FIND_LINKS:-} /opt/wheels; do
  [ -d "$d" ] && links+=(--find-links "$d")
done
# torch==2.13.0 comes from the local CPU wheel folder (PIP_FIND_LINKS), never a multi-GB CUDA build.
$UV pip install -q --python .venv/bin/python "${links[@]}" -e ".[dev]"
echo "$want" > "$stamp"
