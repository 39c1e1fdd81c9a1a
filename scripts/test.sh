#!/usr/bin/env bash
# The whole test suite against the real Redis and RabbitMQ (started here if not running).
# Extra arguments go to pytest (e.g. -k redis, -x). With CI=true an unexpected skip fails the
# run (tests/conftest.py); set-up that cannot install what the tests need fails first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The bench extra (Dask, Ray; ~20 s to install) lets tests/test_peers_bench.py run the peers
# benchmark's smoke instead of failing for want of it.
"$ROOT/scripts/setup.sh" --brokers --browser --extras dev,notebooks,k8s,bench || {
  echo "test.sh: set-up failed (above); no tests were run" >&2; exit 1; }
cd "$ROOT"
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest (library, brokers, faults, k8s, notebooks)"
set +e
# Two test processes (pytest-xdist), each with a Redis database and a RabbitMQ vhost of its own;
# tests that time runs never share the machine with CPU-heavy ones (tests/conftest.py).
# TTG_TEST_PROCS=0 runs everything in one process.
.venv/bin/python -m pytest -p no:cacheprovider -n "${TTG_TEST_PROCS:-2}" "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then echo "no tests ran: that is a failure" >&2; exit 1; fi
exit $status
