#!/usr/bin/env bash
# First contact with a real Kind cluster, for a user with Docker (with buildx) and a kind release
# TTG has a node image for (KIND_NODE_IMAGES in ttg_lib/cluster/kind/__init__.py, v0.24.0 and later):
#   1. create the Kind cluster "ttg" from kind/kind-config.yaml (or reuse it),
#   2. build ttg-worker:dev without attestations (loads with either Docker image store) and
#      load it into the nodes,
#   3. deploy both brokers (random credentials generated into the Secret on first deploy),
#   4. run the small demo on Redis, then on RabbitMQ, each with a worker pod hard-killed at 30 %;
#      `ttg run` prints the milestone table (Target vs Observed) and the verdict of each,
#   5. sweep a user module with a dependency of its own: `kind up --requirements --code`
#      builds ttg-worker:user-<hash> with it, `ttg run --image` that tag; mymodel.py exists only
#      in a scratch folder, not in ttg-worker:dev,
#   6. tear down: TTG's objects always; the cluster too if this script created it
#      (TTG_E2E_KEEP_CLUSTER=1 keeps it).
# Usage: scripts/kind-e2e.sh [--scale tiny|small] [--keep]
# Exit code: 0 when both runs verified every result and recovered from the kill, and the user
# module's sweep verified every point.
# Not run by TTG's CI (no Docker engine there): kept correct by construction and `bash -n`.
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
# TTG_PYTHON: an interpreter that has ttg_lib already (the tests'): nothing is installed
[[ -n "${TTG_PYTHON:-}" || -x .venv/bin/ttg ]] || scripts/setup.sh --extras dev,k8s
PY="${TTG_PYTHON:-$ROOT/.venv/bin/python}"
KIND=( "$PY" -m ttg_lib.cluster.kind )

say "checking docker (engine + buildx) and kind"
TOOLS="$("${KIND[@]}" status)"
echo "$TOOLS"
if ! grep -q "^docker: ok" <<<"$TOOLS" || ! grep -q "^kind: ok" <<<"$TOOLS"; then
  echo "kind-e2e.sh: docker (with buildx) and kind ($("$PY" -c 'from ttg_lib.cluster.kind import KIND_NODE_IMAGES; print(", ".join(KIND_NODE_IMAGES))')) are needed (see above); nothing was changed" >&2
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
  if ! "$PY" -m ttg_lib.cli run --cluster kind --backend "$backend" --scale "$SCALE" --workers 3 \
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
say "a user module with a dependency of its own, through --requirements and --code"
USER_DIR="$(mktemp -d -t ttg-kind-user.XXXXXX)"
cat >"$USER_DIR/requirements.txt" <<'REQ'
more-itertools==10.5.0
REQ
cat >"$USER_DIR/mymodel.py" <<'MODEL'
import more_itertools


def simulate(alpha, beta):
    return alpha * beta + more_itertools.ilen(range(alpha))
MODEL
cat >"$USER_DIR/space.yaml" <<'SPACE'
axes:
  alpha: [1, 2, 3, 4, 5]
  beta: [10, 20, 30]
SPACE
# The orchestrator imports the module too (it checks the function before anything starts).
"$PY" -m pip install --quiet -r "$USER_DIR/requirements.txt"
UP="$("${KIND[@]}" up --no-build --backend redis --requirements "$USER_DIR/requirements.txt" \
        --code "$USER_DIR")" || STATUS=1
echo "$UP"
IMAGE="$(sed -n 's/^worker image: \([^ ]*\) .*/\1/p' <<<"$UP")"
if [[ -z "$IMAGE" ]]; then
  echo "kind-e2e.sh: \`up --requirements\` printed no worker image tag" >&2
  STATUS=1
elif ! (cd "$USER_DIR" && PYTHONPATH="$USER_DIR" "$PY" -m ttg_lib.cli run --cluster kind \
          --backend redis --image "$IMAGE" --space space.yaml --compute mymodel:simulate \
          --workers 3 --output-dir "$OUT/user"); then
  STATUS=1
  echo "kind-e2e.sh: the user module's sweep did not pass (its table and problems are above)" >&2
fi

say "run records: $OUT"
exit $STATUS
