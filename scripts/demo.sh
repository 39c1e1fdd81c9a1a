#!/usr/bin/env bash
# The main job: the small Redis demo on the local cluster, one worker killed at 30 %.
# Extra arguments go to `ttg run` (e.g. --backend rabbitmq, --no-restart, --scale medium).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh" --extras dev
cd "$ROOT"
exec .venv/bin/ttg run --backend redis --scale small --fault-demo --monitor cli "$@"
