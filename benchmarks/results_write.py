"""ResultsWriter: rows/s and peak RSS while writing results.parquet, as an orchestrator would.

    nice -n 10 python benchmarks/results_write.py # 1,000,000 points, chunks of 1,000
    nice -n 10 python benchmarks/results_write.py --points 200000  # quicker

Cases, each in its own process (so peak RSS is that case's alone):

int          int values, no space (the large preset today)
int+space    int values, a 3-axis grid (100 x 100 x 100): axis columns computed per chunk
dict+space   {"loss": float, "steps": int} values, the same grid: a column per key

Chunks go through a result frame (encode, decode) first, untimed, so the writer gets what the
orchestrator gets (array('q'), ValueColumns). Timed: every ``add`` (which writes a durable part
every 65,536 rows) and the final ``close`` (the parts merged into results.parquet). RSS is
sampled every 100,000 rows: flat means the last sample is no higher than the first one after
the first part was written, give or take allocator noise.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.tables import text_table  # noqa: E402

CASES = ("int", "int+space", "dict+space")


def rss_mib() -> float:
    """Current resident set size, from /proc (psutil's figure without importing it)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_case(case: str, points: int, chunk: int) -> dict:
    from ttg_lib.compute import placeholder
    from ttg_lib.messages import Result, decode_results, encode_results
    from ttg_lib.results import RESULTS_FILE, ResultsWriter
    from ttg_lib.space import load_space

    side = round(points ** (1 / 3))
    space = None
    if case.endswith("+space"):
        space = load_space({"axes": {"lr": {"logspace": [-4, -1, side]},
                                     "depth": {"range": [0, side]},
                                     "act": [f"a{i}" for i in range(side)]}})
        points = space.size

    def values(start: int, count: int) -> list:
        if case.startswith("dict"):
            return [{"loss": placeholder(i, 0) / 2**53, "steps": i % 1000}
                    for i in range(start, start + count)]
        return [placeholder(i, 0) for i in range(start, start + count)]

    record = Path(tempfile.mkdtemp(prefix="ttg-results-bench-"))
    baseline = rss_mib()
    samples, writing_s, durable = [], 0.0, 0
    writer = ResultsWriter(record, space)
    for cid, start in enumerate(range(0, points, chunk)):
        count = min(chunk, points - start)
        (result,) = decode_results(encode_results([Result(
            run_id="bench", chunk_id=cid, start=start, count=count, worker=f"w-{cid % 3}",
            attempt=1, started_at=0.0, finished_at=0.0, values=values(start, count))]))
        began = time.perf_counter()
        durable += len(writer.add(result))
        writing_s += time.perf_counter() - began
        if (start + count) % 100_000 < chunk:
            samples.append(round(rss_mib(), 1))
    began = time.perf_counter()
    path = writer.close()
    close_s = time.perf_counter() - began
    size_mib = (record / RESULTS_FILE).stat().st_size / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import pyarrow.parquet as pq
    rows = pq.ParquetFile(path).metadata.num_rows
    assert rows == points, (rows, points)
    import shutil
    shutil.rmtree(record)
    total = writing_s + close_s
    return {"case": case, "points": points, "chunk": chunk, "rows_written": rows,
            "add_s": round(writing_s, 3), "close_s": round(close_s, 3),
            "rows_per_s": round(points / total), "add_rows_per_s": round(points / writing_s),
            "file_mib": round(size_mib, 1), "rss_before_mib": round(baseline, 1),
            "rss_samples_mib": samples, "peak_rss_mib": round(peak, 1),
            "chunks_durable_before_close": durable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=1_000)
    parser.add_argument("--case", choices=CASES, help="one case, in this process")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.points, args.chunk)))
        return
    rows = []
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", case, "--points",
                              str(args.points), "--chunk", str(args.chunk)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"ResultsWriter, {args.points:,} points in chunks of {args.chunk:,} "
          f"(one process per case)")
    print("\n".join(text_table(
        ["case", "rows/s", "add rows/s", "close s", "file MiB", "RSS before", "peak RSS",
         "RSS every 100k rows (MiB)"],
        [[r["case"], f"{r['rows_per_s']:,}", f"{r['add_rows_per_s']:,}", f"{r['close_s']:.2f}",
          f"{r['file_mib']:.1f}", f"{r['rss_before_mib']:.1f}", f"{r['peak_rss_mib']:.1f}",
          r["rss_samples_mib"]] for r in rows], align="<>>>>>><")))


if __name__ == "__main__":
    main()
