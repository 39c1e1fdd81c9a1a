#!/usr/bin/env bash
# Idempotent set-up shared by scripts/demo.sh and scripts/test.sh:
#   .venv with TTG and its extras, Redis and RabbitMQ answering on loopback.
# Usage: scripts/setup.sh [--extras dev,notebooks,k8s[,bench]] [--brokers] [--browser]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

EXTRAS="dev,notebooks,k8s"
WANT_BROKERS=0
WANT_BROWSER=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --extras) EXTRAS="$2"; shift 2 ;;
    --brokers) WANT_BROKERS=1; shift ;;
    --browser) WANT_BROWSER=1; shift ;;
    *) echo "setup.sh: unknown option $1 (allowed: --extras LIST, --brokers, --browser)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { echo "setup.sh: please install: $*" >&2; return 1; }
  if [[ $APT_UPDATED -eq 0 ]]; then as_root apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# --- Python environment -----------------------------------------------------
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  echo "setup.sh: Python >= 3.10 is required ($PY is $("$PY" -V 2>&1))" >&2; exit 1; }
if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
# One stamp per pyproject.toml version, listing the extras installed so far.
STAMP=".venv/.ttg-installed-$(sha1sum pyproject.toml | cut -c1-12)"
HAVE="$(cat "$STAMP" 2>/dev/null || true)"
NEED=""
for extra in ${EXTRAS//,/ }; do
  [[ ",$HAVE," == *",$extra,"* ]] || NEED="$NEED,$extra"
done
if [[ -n "$NEED" || ! -f "$STAMP" ]]; then
  ALL="$(printf '%s' "$HAVE$NEED" | sed 's/^,//')"
  say "installing ttg[$ALL] into .venv (first time takes a minute or two)"
  .venv/bin/python -m pip install -q --upgrade pip >.venv/pip.log 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[$ALL]" >>.venv/pip.log 2>&1 || {
    cat .venv/pip.log >&2; echo "setup.sh: pip install failed (log above)" >&2; exit 1; }
  if [[ ",$ALL," == *",notebooks,"* ]]; then
    .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
  fi
  rm -f .venv/.ttg-installed-*
  printf '%s' "$ALL" > "$STAMP"
fi

# --- Brokers ------------------------------------------------------------------
port_open() { .venv/bin/python - "$1" <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}
wait_port() {  # port, seconds, name
  for _ in $(seq 1 $(( $2 * 5 ))); do port_open "$1" && return 0; sleep 0.2; done
  echo "setup.sh: $3 did not open port $1 within $2 s" >&2; return 1
}

if [[ $WANT_BROKERS -eq 1 ]]; then
  if ! port_open 6379; then
    command -v redis-server >/dev/null || { say "installing redis-server"; apt_install redis-server; }
    say "starting Redis on 127.0.0.1:6379"
    mkdir -p /tmp/ttg-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/ttg-redis --logfile /tmp/ttg-redis/redis.log
    wait_port 6379 20 Redis
  fi
  if ! port_open 5672; then
    command -v rabbitmq-server >/dev/null || [[ -x /usr/sbin/rabbitmq-server ]] || {
      say "installing rabbitmq-server"; apt_install rabbitmq-server; }
    say "starting RabbitMQ on 127.0.0.1:5672 (takes ~10 s)"
    PATH="$PATH:/usr/sbin" rabbitmq-server -detached
    wait_port 5672 90 RabbitMQ
  fi
  # The management API gives the unacked counts shown in the queue tables.
  if ! port_open 15672 && command -v rabbitmq-plugins >/dev/null; then
    rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null 2>&1 || true
    wait_port 15672 30 "RabbitMQ management" || true
  fi
fi

# --- Browser for the report and demo tests ------------------------------------------
# The tests drive the chromium at $TTG_CHROMIUM (default: Debian's /usr/bin/chromium). Without
# it they cannot run, so a failed install stops here instead of turning into skipped tests.
CHROMIUM="${TTG_CHROMIUM:-/usr/bin/chromium}"
if [[ $WANT_BROWSER -eq 1 && ! -x "$CHROMIUM" ]]; then
  if [[ "$CHROMIUM" == /usr/bin/chromium ]]; then
    say "installing Debian's chromium for the browser tests"
    apt_install chromium || true
  fi
  if [[ ! -x "$CHROMIUM" ]]; then
    echo "setup.sh: the browser tests need chromium at $CHROMIUM, and it is not there" \
         "(the install failed or was not possible). Install Debian's chromium" \
         "(apt-get install chromium) or set TTG_CHROMIUM to a chromium binary." >&2
    exit 1
  fi
fi
say "ready"
