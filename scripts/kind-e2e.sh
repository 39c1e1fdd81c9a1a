#!/usr/bin/env bash
# First contact with a real Kind cluster, for a user with Docker (with buildx) and kind v0.24.0:
#   1. create the Kind cluster "ttg" from kind/kind-config.yaml (or reuse it),
#   2. build ttg-worker:dev without attestations (loads with either Docker image store) and
#      load it into the nodes,
#   3. deploy both brokers (random credentials generated into the Secret on first deploy),
#   4. run the small demo on Redis, then on RabbitMQ, each with a worker pod hard-killed at 30 %;
#      `ttg run` prints the milestone table (Target vs Observed) and the verdict of each,
#   5. tear down: TTG's objects always; the cluster too if this script created it
#      (TTG_E2E_KEEP_CLUSTER=1 keeps it).
# Usage: scripts/kind-e2e.sh [--scale tiny|small] [--keep]
# Exit code: 0 when both runs verified every result and recovered from the kill.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SCALE=small
KEEP="${TTG_E2E_KEEP_CLUSTER:-0}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scale) SCALE="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "kind-e2e.sh: unknown option $1 (allowed: --scale tiny|small, --keep)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1;34m[kind-e2e]\033[0m %s\n' "$*"; }
[[ -x .venv/bin/ttg ]] || scripts/setup.sh --extras dev,k8s
PY=.venv/bin/python
KIND=( "$PY" -m ttg_lib.cluster.kind )

say "checking docker (engine + buildx) and kind"
TOOLS="$("${KIND[@]}" status)"
echo "$TOOLS"
if ! grep -q "^docker: ok" <<<"$TOOLS" || ! grep -q "^kind: ok" <<<"$TOOLS"; then
  echo "kind-e2e.sh: docker (with buildx) and kind $("$PY" -c 'from ttg_lib.cluster.kind import KIND_VERSION; print(KIND_VERSION)') are needed (see above); nothing was changed" >&2
  exit 3
fi
CREATED=0
grep -q "Kind cluster 'ttg': not created yet" <<<"$TOOLS" && CREATED=1
OUT="$(mktemp -d -t ttg-kind-e2e.XXXXXX)"

teardown() {
  say "removing TTG's objects (the cluster's own objects and other namespaces are untouched)"
  "${KIND[@]}" down || true
  if [[ $CREATED -eq 1 && $KEEP != 1 ]]; then
    say "deleting the Kind cluster this script created"
    "${KIND[@]}" delete-cluster || true
  fi
}
trap teardown EXIT

say "cluster, image (buildx, no attestations), brokers"
"${KIND[@]}" up --backend both
"${KIND[@]}" credentials | sed -E 's/(PASS(WORD)?=|:\/\/[^:]*:)[^@ ]+/\1***/'  # shown masked here

STATUS=0
for backend in redis rabbitmq; do
  say "demo on $backend: $SCALE sweep, 3 worker pods, one hard-killed at 30 %"
  if ! .venv/bin/ttg run --cluster kind --backend "$backend" --scale "$SCALE" --workers 3 \
        --fault-demo --kill-at 0.3 --output-dir "$OUT/$backend"; then
    STATUS=1
    echo "kind-e2e.sh: the $backend run did not pass (its table and problems are above)" >&2
    continue
  fi
  # The kill must have been a hard one: the victim's chunk redelivered and timed.
  "$PY" - "$OUT/$backend" "$backend" <<'PY' || STATUS=1
import json, pathlib, sys
(summary,) = pathlib.Path(sys.argv[1]).glob("runs/*/summary.json")
fault = json.loads(summary.read_text())["fault"] or {}
recovered = fault.get("recovered_after_s")
print(f"{sys.argv[2]}: killed {fault.get('killed_worker')}, chunk recovered after "
      f"{recovered} s" if recovered is not None else
      f"{sys.argv[2]}: NO RECOVERY measured after killing {fault.get('killed_worker')}")
sys.exit(0 if recovered is not None else 1)
PY
done
say "run records: $OUT"
exit $STATUS
