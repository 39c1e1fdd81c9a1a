"""A 10^6-point run's results.parquet: in param_id order, the orchestrator under 300 MiB.

    nice -n 10 python benchmarks/results_order.py                 # Redis, 10^6 points
    nice -n 10 python benchmarks/results_order.py --backend rabbitmq --points 200000
    nice -n 10 python benchmarks/results_order.py --synthetic 100000000   # the close alone

One real ``ttg run`` (local workers, TTG's placeholder function, no simulated work), then the
table is read back a row group at a time: every group sorted, each group's ids above the
last one's (so a point lookup reads one group, by its statistics). The orchestrator's peak
RSS is the run's own figure (summary.json ``peak_rss_mib``, taken after the close, so the
sorted merge is in it). Prints one JSON line; writes nothing under benchmarks/results.

``--synthetic N``: no broker, no workers: N rows written by the ResultsWriter as the
orchestrator would (chunks of 1,000 int values, arriving shuffled within a window of 64
chunks, a durable part every 65,536 rows), then the close timed alone, with the RSS sampled
every 10 ms before and during it: flat means the close's peak is about the writer's before it,
whatever N.
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


def rss_mib() -> float:
    import resource

    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def synthetic(rows: int, chunk: int = 1000, window: int = 64) -> dict:
    """The close of an N-row table on its own: time, and RSS before and at its peak."""
    import random
    import threading
    from array import array

    sys.path.insert(0, str(ROOT))
    from ttg_lib.messages import Result
    from ttg_lib.results import ResultsWriter

    record = Path(tempfile.mkdtemp(prefix="ttg-order-synthetic-"))
    writer = ResultsWriter(record)
    rng = random.Random(0)
    chunks = -(-rows // chunk)
    started = time.monotonic()
    for base in range(0, chunks, window):
        ids = list(range(base, min(chunks, base + window)))
        rng.shuffle(ids)  # workers finish the chunks in flight in any order
        for cid in ids:
            start = cid * chunk
            count = min(chunk, rows - start)
            writer.add(Result(run_id="s", chunk_id=cid, start=start, count=count, worker="w1",
                              attempt=1, started_at=0.0, finished_at=0.0,
                              values=array("q", range(start, start + count))))
    write_s = time.monotonic() - started
    before = rss_mib()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], rss_mib())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.monotonic()
    path = writer.close()
    close_s = time.monotonic() - started
    done.set()
    thread.join()
    figures = {"synthetic_rows": rows, "write_s": round(write_s, 1), "close_s": round(close_s, 1),
               "rss_before_close_mib": round(before, 1), "rss_peak_close_mib": round(peak[0], 1),
               **check_order(path)}
    subprocess.run(["rm", "-rf", str(record)], check=False)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="redis")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--verify", default="none")
    parser.add_argument("--synthetic", type=float, default=0,
                        help="rows: time the close alone, in this process (no broker)")
    args = parser.parse_args()
    if args.synthetic:
        figures = synthetic(int(args.synthetic))
        figures["ok"] = bool(figures["in_order"] and figures["rows"] == int(args.synthetic)
                             and figures["rss_peak_close_mib"] < LIMIT_MIB)
        print(json.dumps(figures))
        return 0 if figures["ok"] else 1
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
