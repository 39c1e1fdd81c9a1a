#!/bin/bash
# The quiet-machine sequence: nothing else may run meanwhile.
cd /work/main
out=${1:-/tmp/q/quiet}
mkdir -p $out
log() { echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) $*" >> $out/log.txt; }
log "start at $(git rev-parse --short HEAD)"
log "bench: python benchmarks/bench.py --baseline /tmp/base-f329c6f (f329c6f)"
.venv/bin/python benchmarks/bench.py --baseline /tmp/base-f329c6f --output-dir $out/bench > $out/bench.txt 2>&1
log "bench rc $?"
log "billion: python benchmarks/scale.py --total 1000000000"
.venv/bin/python benchmarks/scale.py --total 1000000000 --output-dir $out/billion > $out/billion.txt 2>&1
log "billion rc $?"
rm -rf $out/billion/*/runs-root
log "scale: python benchmarks/scale.py --read-back"
.venv/bin/python benchmarks/scale.py --read-back --output-dir $out/scale > $out/scale.txt 2>&1
log "scale rc $?"
rm -rf $out/scale/*/runs-root
log end
