"""A 10^6-point run's results.parquet: in param_id order, the orchestrator under 300 MiB.

    nice -n 10 python benchmarks/results_order.py                 # Redis, 10^6 points
    nice -n 10 python benchmarks/results_order.py --backend rabbitmq --points 200000

One real ``ttg run`` (local workers, TTG's placeholder function, no simulated work), then the
table is read back a row group at a time: every group sorted, each group's ids above the
last one's (so a point lookup reads one group, by its statistics). The orchestrator's peak
RSS is the run's own figure (summary.json ``peak_rss_mib``, taken after the close, so the
sorted merge is in it). Prints one JSON line; writes nothing under benchmarks/results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MIB = 300.0


def check_order(path: Path) -> dict:
    """Row groups in order and each one sorted, read one group (one column) at a time."""
    import numpy as np
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    last, rows, ordered = -1, 0, True
    for g in range(parquet.num_row_groups):
        ids = parquet.read_row_group(g, columns=["param_id"]).column(0).to_numpy()
        rows += len(ids)
        ordered &= bool(len(ids) == 0 or (ids[0] > last and np.all(ids[1:] > ids[:-1])))
        last = int(ids[-1]) if len(ids) else last
    return {"rows": rows, "row_groups": parquet.num_row_groups, "in_order": ordered}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="redis")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--verify", default="none")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="ttg-order-"))
    run_id = f"order-{int(time.time())}"
    command = [sys.executable, "-m", "ttg_lib.cli", "run", "--backend", args.backend,
               "--total-params", str(args.points), "--chunk-size", str(args.chunk_size),
               "--work-ms", "0", "--workers", str(args.workers), "--verify", args.verify,
               "--monitor", "none", "--json", "--run-id", run_id, "--output-dir", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        return done.returncode
    summary = json.loads(done.stdout)
    figures = {"backend": args.backend, "points": args.points, "chunk_size": args.chunk_size,
               "workers": args.workers, "verify": args.verify,
               "wall_s": round(time.monotonic() - started, 1),
               "runtime_s": summary.get("runtime_s"),
               "peak_rss_mib": summary.get("orchestrator_peak_rss_mib"),
               **check_order(Path(summary["results_file"]))}
    figures["ok"] = bool(figures["in_order"] and figures["rows"] == args.points
                         and (figures["peak_rss_mib"] or 0) < LIMIT_MIB)
    print(json.dumps(figures))
    subprocess.run(["rm", "-rf", str(out)], check=False)
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
